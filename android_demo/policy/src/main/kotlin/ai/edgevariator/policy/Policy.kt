package ai.edgevariator.policy

/*
 * The runtime policy: from the device's state to the compression ratio k and the exit threshold.
 * A port of edge_variator/runtime/policy.py, which is the reference; tests/vectors/policy.json
 * holds the cases both must pass. Rules live in the bundle manifest (or a calibrated policy file
 * beside it, CalibratedPolicy.kt), never in code: the first rule whose conditions all hold wins,
 * and the last rule has none.
 */

const val DEFAULT_BATTERY_MARGIN = 0.05

// What latency_ms must hold, in every message that refuses one.
private const val LATENCY_SHAPE = "map each padded length to every ratio's ms, {\"256\": {\"1\": 40.0, \"2\": 34.0}}"

/** A policy table that cannot be used with this bundle (Python's PolicyError). */
class PolicyException(message: String) : IllegalArgumentException(message)

/** A call the policy cannot decide on: a device state it cannot read, or a text length below 1 (Python's DeviceStateError). */
class DeviceStateException(message: String) : IllegalArgumentException(message)

/** The policy's thermal scale, coolest first: iOS ProcessInfo.ThermalState names. */
enum class Thermal(val wireName: String) {
    NOMINAL("nominal"), FAIR("fair"), SERIOUS("serious"), CRITICAL("critical");

    companion object {
        val NAMES: List<String> = entries.map { it.wireName }

        fun namedOrNull(name: String): Thermal? = entries.firstOrNull { it.wireName == name }

        /** The state called [name] exactly (names are case-sensitive, as in Python). */
        fun named(name: String): Thermal = namedOrNull(name) ?: throw DeviceStateException(
            "unknown thermal state '$name'; use one of $NAMES " +
                "(thermalFromAndroid maps Android's THERMAL_STATUS_* levels)",
        )
    }
}

/** Android's PowerManager.THERMAL_STATUS_* constants, 0..6. */
val ANDROID_THERMAL_NAMES = listOf("NONE", "LIGHT", "MODERATE", "SEVERE", "CRITICAL", "EMERGENCY", "SHUTDOWN")

// LIGHT and MODERATE throttle little (fair); SEVERE is where Android asks apps to cut work (serious).
private val ANDROID_THERMAL = listOf(
    Thermal.NOMINAL, Thermal.FAIR, Thermal.FAIR, Thermal.SERIOUS, Thermal.CRITICAL, Thermal.CRITICAL, Thermal.CRITICAL,
)

/** PowerManager.getCurrentThermalStatus() (0..6) onto nominal/fair/serious/critical. */
fun thermalFromAndroid(status: Int): Thermal {
    if (status !in ANDROID_THERMAL.indices) {
        throw DeviceStateException(
            "Android thermal status must be 0..6 (THERMAL_STATUS_NONE..SHUTDOWN), not $status",
        )
    }
    return ANDROID_THERMAL[status]
}

/** What the phone reports; refused at construction when the policy could not decide on it. */
data class DeviceState(
    val battery: Double,  // a fraction, 0..1
    val charging: Boolean = false,
    val lowPower: Boolean = false,
    val thermal: Thermal = Thermal.NOMINAL,
    val budgetMs: Double? = null,  // null: no latency budget
) {
    init {
        if (battery.isNaN() || battery < 0.0 || battery > 1.0) {
            throw DeviceStateException("battery must be from 0 to 1 (a fraction, not a percentage), not $battery")
        }
        if (budgetMs != null && (budgetMs.isNaN() || budgetMs <= 0.0)) {
            throw DeviceStateException("budgetMs must be a positive number of milliseconds or null, not $budgetMs")
        }
    }
}

/** A rule's conditions; null means the rule does not look at that part of the state. */
data class Conditions(
    val thermalAtLeast: Thermal? = null,
    val batteryBelow: Double? = null,
    val charging: Boolean? = null,
    val lowPower: Boolean? = null,
) {
    val isEmpty: Boolean get() = thermalAtLeast == null && batteryBelow == null && charging == null && lowPower == null

    /** [active]: this rule matched last time, so it holds until the battery clears the margin. */
    fun match(state: DeviceState, active: Boolean, margin: Double): Boolean {
        if (thermalAtLeast != null && state.thermal < thermalAtLeast) return false
        if (charging != null && state.charging != charging) return false
        if (lowPower != null && state.lowPower != lowPower) return false
        if (batteryBelow != null) {
            val limit = batteryBelow + if (active) margin else 0.0
            if (!(state.battery < limit)) return false
        }
        return true
    }
}

data class Rule(
    val name: String,
    val ratio: Int,
    val threshold: String?,  // a name in manifest exits.thresholds; null: no early exit
    val conditions: Conditions = Conditions(),
)

/** A policy table as the manifest holds it (`manifest["policy"]`). */
data class PolicyTable(
    val rules: List<Rule>,
    val batteryMargin: Double = DEFAULT_BATTERY_MARGIN,
    /**
     * Every layer's ms at each ratio, per profiled padded length, on the target device:
     * length -> ratio -> ms (`{"16": {"1": 2.1, ...}, "256": {...}}` in the JSON); null: not profiled.
     */
    val latencyMs: Map<Int, Map<Int, Double>>? = null,
) {
    companion object {
        val CONDITION_NAMES = listOf("thermal_at_least", "battery_below", "charging", "low_power")

        /** The table from its JSON form; refuses shapes that no bundle could carry out. */
        fun fromJson(table: Any?): PolicyTable {
            val fields = table as? Map<*, *> ?: throw PolicyException("the policy table needs a non-empty list of rules")
            val rules = fields["rules"] as? List<*>
            if (rules.isNullOrEmpty()) throw PolicyException("the policy table needs a non-empty list of rules")
            val margin = if ("battery_margin" in fields) jsonNumber(fields["battery_margin"]) else DEFAULT_BATTERY_MARGIN
            margin ?: throw PolicyException("battery_margin must be from 0 to 1, not ${fields["battery_margin"]}")
            return PolicyTable(rules.map(::ruleFromJson), margin, latencyFromJson(fields["latency_ms"]))
        }

        private fun ruleFromJson(rule: Any?): Rule {
            val fields = rule as? Map<*, *> ?: throw PolicyException("every rule must be a JSON object, not $rule")
            val name = fields["name"] as? String
                ?: throw PolicyException("every rule needs a unique name; ${fields["name"]} is missing or repeated")
            val ratioValue = jsonNumber(fields["ratio"])
            // Python's `ratio in ratios` takes 4.0 for 4, so an integral number is a ratio here too.
            val ratio = ratioValue?.takeIf { it == Math.rint(it) && it >= Int.MIN_VALUE && it <= Int.MAX_VALUE }?.toInt()
                ?: throw PolicyException("rule '$name' asks for ratio ${fields["ratio"]}, which is not a whole number")
            val threshold = fields["threshold"]
            if (threshold != null && threshold !is String) {
                throw PolicyException("rule '$name' names exit threshold $threshold, which is not a threshold name")
            }
            val whenValue = if ("when" in fields) fields["when"] else emptyMap<String, Any?>()
            val conditions = whenValue as? Map<*, *>
                ?: throw PolicyException("rule '$name': \"when\" must be an object of conditions, not $whenValue")
            return Rule(name, ratio, threshold, conditionsFromJson(name, conditions))
        }

        private fun conditionsFromJson(rule: String, conditions: Map<*, *>): Conditions {
            val unknown = conditions.keys.map { it.toString() }.filter { it !in CONDITION_NAMES }.sorted()
            if (unknown.isNotEmpty()) {
                throw PolicyException("rule '$rule' has unknown conditions $unknown; known: $CONDITION_NAMES")
            }
            val thermal = conditions["thermal_at_least"]?.let { value ->
                (value as? String)?.let(Thermal::namedOrNull)
                    ?: throw PolicyException("rule '$rule': thermal_at_least must be one of ${Thermal.NAMES}, not $value")
            }
            val batteryBelow = conditions["battery_below"]?.let { value ->
                jsonNumber(value) ?: throw PolicyException("rule '$rule': battery_below must be in (0, 1], not $value")
            }
            // Python does not check these, but a non-boolean can never match: refuse it rather than ignore it.
            fun flag(key: String): Boolean? = conditions[key]?.let { value ->
                value as? Boolean ?: throw PolicyException("rule '$rule': $key must be true or false, not $value")
            }
            return Conditions(thermal, batteryBelow, flag("charging"), flag("low_power"))
        }

        // Python looks lengths and ratios up as str(n): only a plainly written integer key counts.
        private fun plainInteger(key: Any?): Int? = (key as? String)?.toIntOrNull()?.takeIf { it.toString() == key }

        private fun latencyFromJson(latency: Any?): Map<Int, Map<Int, Double>>? {
            if (latency == null) return null
            val fields = latency as? Map<*, *>
            if (fields.isNullOrEmpty()) throw PolicyException("latency_ms must $LATENCY_SHAPE, not $latency")
            // sorted: a table is refused with the same message every time
            return fields.entries.sortedBy { it.key.toString() }.associate { (key, rowValue) ->
                val row = rowValue as? Map<*, *> ?: throw PolicyException(
                    "latency_ms must $LATENCY_SHAPE; \"$key\" maps to $rowValue (a table of an older " +
                        "edge-variator, which had one length: calibrate again)",
                )
                val length = plainInteger(key)?.takeIf { it > 0 }
                    ?: throw PolicyException("latency_ms lengths must be positive whole numbers, not \"$key\"")
                length to row.entries.sortedBy { it.key.toString() }.associate { (ratioKey, ms) ->
                    val ratio = plainInteger(ratioKey)
                        ?: throw PolicyException("latency_ms at $key tokens has a key that is not a ratio: \"$ratioKey\"")
                    ratio to (jsonNumber(ms)
                        ?: throw PolicyException("latency_ms at $key tokens, ratio $ratioKey: a number of ms, not $ms"))
                }
            }
        }

        private fun jsonNumber(value: Any?): Double? = when (value) {
            is Long -> value.toDouble()
            is Int -> value.toDouble()
            is Double -> value
            else -> null  // booleans too: Python would take true as 1, which no table means
        }
    }
}

/** Throws PolicyException unless a bundle with these ratios and thresholds can carry out every rule. */
fun checkPolicy(table: PolicyTable, ratios: Collection<Int>, thresholds: Map<String, Double>) {
    if (table.rules.isEmpty()) throw PolicyException("the policy table needs a non-empty list of rules")
    val margin = table.batteryMargin
    if (!(margin >= 0.0 && margin < 1.0)) throw PolicyException("battery_margin must be from 0 to 1, not $margin")
    val names = HashSet<String>()
    for (rule in table.rules) {
        if (!names.add(rule.name)) {
            throw PolicyException("every rule needs a unique name; '${rule.name}' is missing or repeated")
        }
        if (rule.ratio !in ratios) {
            throw PolicyException("rule '${rule.name}' asks for ratio ${rule.ratio}, but the bundle has only ${ratios.sorted()}")
        }
        if (rule.threshold != null && rule.threshold !in thresholds) {
            val known = if (thresholds.isEmpty()) "none" else thresholds.keys.sorted().toString()
            throw PolicyException("rule '${rule.name}' names exit threshold '${rule.threshold}', but the bundle has $known")
        }
        val below = rule.conditions.batteryBelow
        if (below != null && !(below > 0.0 && below <= 1.0)) {
            throw PolicyException("rule '${rule.name}': battery_below must be in (0, 1], not $below")
        }
    }
    val last = table.rules.last()
    if (!last.conditions.isEmpty) {
        throw PolicyException("the last rule ('${last.name}') must have no conditions, so that every state gets a decision")
    }
    checkLatency(table.latencyMs, ratios)
}

/** Python's check_latency: null, or every profiled length (from 1) holds every ratio's ms, finite and >= 0. */
fun checkLatency(latency: Map<Int, Map<Int, Double>>?, ratios: Collection<Int>) {
    if (latency == null) return
    if (latency.isEmpty()) throw PolicyException("latency_ms must $LATENCY_SHAPE, not {}")
    for (length in latency.keys.sorted()) {
        if (length < 1) throw PolicyException("latency_ms lengths must be positive whole numbers, not $length")
        val row = latency.getValue(length)
        val missing = ratios.filter { it !in row }
        if (missing.isNotEmpty()) throw PolicyException("latency_ms at $length tokens lacks ratios $missing")
        for (ratio in row.keys.sorted()) {
            val ms = row.getValue(ratio)
            if (!(ms >= 0.0 && ms.isFinite())) {
                throw PolicyException("latency_ms at $length tokens, ratio $ratio: a number of ms, not $ms")
            }
        }
    }
}

/**
 * Ratio -> ms at the shortest profiled length at or above [length] (the longest past them all, or
 * when no length is given). [latency] must not be empty.
 */
fun latencyRow(latency: Map<Int, Map<Int, Double>>, length: Int?): Map<Int, Double> {
    val lengths = latency.keys.sorted()
    val at = lengths.firstOrNull { length != null && it >= length } ?: lengths.last()
    return latency.getValue(at)
}

/** The JSON form of a table, checked: what a manifest's "policy" must pass. */
fun checkPolicy(table: Any?, ratios: Collection<Int>, thresholds: Map<String, Double>): PolicyTable =
    PolicyTable.fromJson(table).also { checkPolicy(it, ratios, thresholds) }

data class Decision(
    val ratio: Int,
    val threshold: Double?,  // null: no early exit, every layer runs
    val thresholdName: String?,
    val rule: String,  // the rule that matched
    val budgetApplied: Boolean,  // the latency budget raised the ratio above the rule's
    val lengthApplied: Boolean = false,  // at this length a smaller ratio than the rule's is as fast or faster
)

/** Throws DeviceStateException for a text length below 1 (null: the length is not known). */
fun checkLength(length: Int?) {
    if (length != null && length < 1) {
        throw DeviceStateException("the text's length must be a whole number of tokens from 1, not $length")
    }
}

/**
 * The decision for one state and a text of [length] padded tokens (null: not known); [activeRule]
 * matched the previous call (hysteresis). Throws DeviceStateException for a length below 1.
 *
 * With latency_ms it reads the row for the length ([latencyRow]), lowers the rule's ratio to the
 * fastest there of those no larger (ties to the less compressed: on short texts the merge and
 * restore cost more than the FFN they save), then a budget raises it to the least compressed ratio
 * at least that whose latency fits, or the fastest of those when none fits.
 */
fun decide(
    table: PolicyTable,
    thresholds: Map<String, Double>,
    state: DeviceState,
    activeRule: String?,
    length: Int? = null,
): Decision {
    checkLength(length)
    val rule = table.rules.firstOrNull { it.conditions.match(state, it.name == activeRule, table.batteryMargin) }
        ?: throw PolicyException("no rule matched: the table's last rule must have no conditions")
    var ratio = rule.ratio
    var budgetApplied = false
    var lengthApplied = false
    val latency = table.latencyMs
    if (!latency.isNullOrEmpty()) {
        val row = latencyRow(latency, length)
        fun fastest(ratios: List<Int>): Int? =
            ratios.minWithOrNull(compareBy<Int>({ row.getValue(it) }, { it }))
        fastest(row.keys.filter { it <= rule.ratio })?.let { lowered ->
            lengthApplied = lowered != rule.ratio
            ratio = lowered
        }
        val budget = state.budgetMs
        if (budget != null) {
            val larger = row.keys.filter { it >= ratio }.sorted()  // least compressed first
            (larger.firstOrNull { row.getValue(it) <= budget } ?: fastest(larger))?.let { raised ->
                budgetApplied = raised != ratio
                ratio = raised
            }
        }
    }
    val threshold = rule.threshold?.let { thresholds.getValue(it) }
    return Decision(ratio, threshold, rule.threshold, rule.name, budgetApplied, lengthApplied)
}

/** The stateful policy an app holds: remembers the active rule so that the ratio does not flap. */
class Policy(table: PolicyTable, ratios: Collection<Int>, thresholds: Map<String, Double>) {
    val table: PolicyTable
    val thresholds: Map<String, Double> = LinkedHashMap(thresholds)
    var activeRule: String? = null
        private set

    init {
        checkPolicy(table, ratios, thresholds)
        // only the bundle's ratios take part, at every length
        val latency = table.latencyMs?.mapValues { (_, row) -> row.filterKeys { it in ratios } }
        this.table = table.copy(latencyMs = if (table.latencyMs.isNullOrEmpty()) table.latencyMs else latency)
    }

    /**
     * Decides for [state] and a text of [length] padded tokens (null: not known, the longest
     * profiled row) and remembers the rule; a refused state or length keeps the rule as it was.
     */
    fun decide(state: DeviceState, length: Int? = null): Decision =
        decide(table, thresholds, state, activeRule, length).also { activeRule = it.rule }

    companion object {
        /**
         * The manifest's table (written at export), or [table] in its place: a calibrated policy's
         * ([CalibratedPolicy.policy]), checked against the bundle's ratios and thresholds again.
         * There is no table of the app's own to fall back on.
         */
        fun fromManifest(manifest: Manifest, table: PolicyTable? = null): Policy =
            Policy(table ?: manifest.policy, manifest.ratios.keys.sorted(), manifest.exits.thresholds)

        /** The table of a calibrated policy file, checked against the bundle when it was read. */
        fun fromCalibrated(manifest: Manifest, calibrated: CalibratedPolicy): Policy = fromManifest(manifest, calibrated.policy)
    }
}
