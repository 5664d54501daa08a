package ai.edgevariator.policy

/*
 * The latency profile a phone writes for `edge-variator profile BUNDLE --import profile.json`:
 * the same format and the same statistics as edge_variator/profile.py's measure().
 */

const val PROFILE_FORMAT = "edge-variator-latency-profile"
const val PROFILE_VERSION = 1

data class Timing(val medianMs: Double, val p90Ms: Double)

/** statistics.median and Python's p90 pick, values[min(n - 1, int(0.9 n))] of the sorted times. */
fun timing(samplesMs: List<Double>): Timing {
    require(samplesMs.isNotEmpty()) { "no samples to summarise" }
    val sorted = samplesMs.sorted()
    val middle = sorted.size / 2
    val median = if (sorted.size % 2 == 1) sorted[middle] else (sorted[middle - 1] + sorted[middle]) / 2.0
    return Timing(median, sorted[minOf(sorted.size - 1, (0.9 * sorted.size).toInt())])
}

/** Refuses lengths the exported methods cannot take, as measure() does. */
fun checkProfileLengths(model: ModelInfo, lengths: List<Int>) {
    val bad = lengths.filter { it % model.padMultiple != 0 || it < model.minLength || it > model.maxLength }
    require(lengths.isNotEmpty() && bad.isEmpty()) {
        "lengths $bad are not multiples of ${model.padMultiple} from ${model.minLength} to ${model.maxLength}"
    }
}

/**
 * Times [call] for every method at every length: [warmup] untimed rounds, then [repeats] timed
 * ones. Methods take turns within each round, as in measure(), so a slow moment of the phone
 * falls on all of them alike rather than on one.
 */
fun measureLatency(
    methods: List<String>,
    lengths: List<Int>,
    warmup: Int,
    repeats: Int,
    call: (method: String, length: Int) -> Unit,
    nanoTime: () -> Long = System::nanoTime,
): Map<String, Map<Int, Timing>> {
    require(repeats >= 1 && warmup >= 0) { "repeats must be at least 1 and warmup at least 0" }
    val timings = methods.associateWith { LinkedHashMap<Int, Timing>() }
    for (length in lengths) {
        val samples = methods.associateWith { ArrayList<Double>(repeats) }
        for (round in 0 until warmup + repeats) {
            for (method in methods) {
                val began = nanoTime()
                call(method, length)
                val elapsedMs = (nanoTime() - began) / 1e6
                if (round >= warmup) samples.getValue(method).add(elapsedMs)
            }
        }
        for (method in methods) timings.getValue(method)[length] = timing(samples.getValue(method))
    }
    return timings
}

/** The profile as JSON values, ready for [Json.write]. */
fun latencyProfileJson(
    device: String,
    runtime: String,
    pteSha256: String?,
    warmup: Int,
    repeats: Int,
    timings: Map<String, Map<Int, Timing>>,
): Map<String, Any?> = linkedMapOf(
    "format" to PROFILE_FORMAT,
    "version" to PROFILE_VERSION,
    "device" to device,
    "runtime" to runtime,
    "pte_sha256" to pteSha256,
    "warmup" to warmup,
    "repeats" to repeats,
    "methods" to timings.mapValues { (_, byLength) ->
        byLength.entries.associate { (length, timing) ->
            length.toString() to linkedMapOf("median_ms" to timing.medianMs, "p90_ms" to timing.p90Ms)
        }
    },
)

/**
 * Median ms of a run that stops after layer 1, 2, ..., L at [ratio]: embed, the layers, and every
 * exit asked on the way (profile.py's depth_latency); the last is what the policy's budget uses.
 */
fun depthLatencyMs(manifest: Manifest, timings: Map<String, Map<Int, Timing>>, ratio: Int, length: Int): List<Double> {
    fun ms(method: String): Double = timings[method]?.get(length)?.medianMs
        ?: throw IllegalArgumentException("no timing of $method at $length tokens")

    val exits = manifest.exits.afterLayers.toSet()
    var total = ms("embed")
    return manifest.layerMethods(ratio).mapIndexed { index, method ->
        total += ms(method) + if (index in exits) ms("exit_$index") else 0.0
        total
    }
}
