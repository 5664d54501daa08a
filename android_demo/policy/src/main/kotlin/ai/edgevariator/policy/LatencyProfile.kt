package ai.edgevariator.policy

import java.io.File

/*
 * The latency profile a phone writes for `edge-variator profile BUNDLE --import profile.json`:
 * the same format (version 2, docs/BUNDLE.md) and the same statistics as edge_variator/profile.py's
 * measure(); the check of a profile against a bundle and its runtime (profile.py's check_profile);
 * and where a bundle keeps a device's profile and calibrated policy (profiles/<runtime>/<device>).
 */

const val PROFILE_FORMAT = "edge-variator-latency-profile"
const val PROFILE_VERSION = 2

/** The folder of a bundle that holds device files, written after export and outside its checksums. */
const val PROFILES_FOLDER = "profiles"

/** A latency profile or calibrated policy that is malformed or does not belong to this bundle and runtime (Python's ProfileError). */
class ProfileException(message: String) : IllegalArgumentException(message)

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

/**
 * The profile as JSON values, ready for [Json.write]: version 2, of the bundle's [runtime] program
 * (its program_sha256 is the manifest's files.<runtime>.sha256), [runtimeVersion] saying what ran
 * it, e.g. "executorch-android 1.4.0 (XnnpackBackend)".
 */
fun latencyProfileJson(
    manifest: Manifest,
    device: String,
    runtimeVersion: String,
    warmup: Int,
    repeats: Int,
    timings: Map<String, Map<Int, Timing>>,
    runtime: String = RUNTIME_EXECUTORCH,
): Map<String, Any?> = linkedMapOf(
    "format" to PROFILE_FORMAT,
    "version" to PROFILE_VERSION,
    "runtime" to runtime,
    "runtime_version" to runtimeVersion,
    "device" to device,
    "program_sha256" to (manifest.program(runtime) ?: throw ProfileException("the bundle has no $runtime program")).sha256,
    "warmup" to warmup,
    "repeats" to repeats,
    "methods" to timings.mapValues { (_, byLength) ->
        byLength.entries.associate { (length, timing) ->
            length.toString() to linkedMapOf("median_ms" to timing.medianMs, "p90_ms" to timing.p90Ms)
        }
    },
)

/** A latency profile as read (the manifest schema's latency_profile), checked when read against a bundle's runtime. */
data class LatencyProfile(
    val runtime: String,  // which of the bundle's programs was timed: "executorch" or "coreml"
    val runtimeVersion: String?,
    val device: String,
    val programSha256: String,  // files.<runtime>.sha256 of the program timed
    val warmup: Int?,
    val repeats: Int?,
    val timings: Map<String, Map<Int, Timing>>,  // method -> length -> median and p90
) {
    /** Throws ProfileException unless this profile timed [manifest]'s [runtime] program and covers its methods. */
    fun checkFor(manifest: Manifest, runtime: String = RUNTIME_EXECUTORCH) {
        checkProgram(this.runtime, programSha256, manifest, runtime, "latency profile")
        val missing = manifest.methods.keys.filter { it !in timings }.sorted()
        if (missing.isNotEmpty()) throw ProfileException("the profile lacks methods this bundle has: ${missing.take(5)}")
    }

    companion object {
        /**
         * The profile in [json], refused unless it is of this format and version 2 and, given a
         * [manifest], timed that bundle's [runtime] program and covers its methods.
         */
        fun fromJson(json: Any?, manifest: Manifest? = null, runtime: String = RUNTIME_EXECUTORCH): LatencyProfile {
            val fields = deviceFileFields(json, "latency profile", PROFILE_FORMAT, PROFILE_VERSION)
            val methods = fields.obj("methods")
            if (methods.keys.isEmpty()) throw ProfileException("${methods.where} is empty: a profile times at least one method")
            val timings = methods.keys.associateWith { method ->
                val byLength = methods.obj(method)
                byLength.keys.associate { length ->
                    val tokens = length.takeIf { it.isNotEmpty() && it.all { char -> char in '0'..'9' } }?.toIntOrNull()
                        ?: throw ProfileException("${byLength.where} has '$length', not a length in tokens")
                    val row = byLength.obj(length)
                    fun ms(key: String) = row.double(key).takeIf { it >= 0.0 }
                        ?: throw ProfileException("${row.where}.$key must be a number >= 0")
                    tokens to Timing(ms("median_ms"), ms("p90_ms"))
                }
            }
            fun count(key: String, least: Int): Int? = fields.optional(key)?.let {
                fields.int(key).takeIf { it >= least }
                    ?: throw ProfileException("${fields.where}.$key must be a whole number of at least $least")
            }
            return LatencyProfile(
                runtime = deviceFileRuntime(fields),
                runtimeVersion = fields.optional("runtime_version")?.let { fields.string("runtime_version") },
                device = fields.string("device"),
                programSha256 = fields.sha256("program_sha256"),
                warmup = count("warmup", 0),
                repeats = count("repeats", 1),
                timings = timings,
            ).also { profile -> manifest?.let { profile.checkFor(it, runtime) } }
        }

        /** The profile in [file], checked as [fromJson] does. */
        fun load(file: File, manifest: Manifest? = null, runtime: String = RUNTIME_EXECUTORCH): LatencyProfile =
            fromJson(readDeviceFile(file, "latency profile"), manifest, runtime)
    }
}

/**
 * The fields of a [what] ("latency profile", "calibrated policy") of [format] at [version]: another
 * format is refused, and then another version, naming it (profile.py's _follows).
 */
internal fun deviceFileFields(json: Any?, what: String, format: String, version: Int): Fields {
    val fields = Fields(json, what, ::ProfileException)
    val found = fields.optional("format")
    if (found != format) throw ProfileException("not a $what: its format is ${quoted(found)}, not '$format'")
    val foundVersion = fields.optional("version")
    if (foundVersion != version.toLong()) {
        throw ProfileException(
            "a $what of version ${quoted(foundVersion)} is not version $version (an older edge-variator or app wrote it): " +
                "make it again",
        )
    }
    return fields
}

internal fun deviceFileRuntime(fields: Fields): String = fields.string("runtime").also {
    if (it !in RUNTIMES) throw ProfileException("${fields.where}.runtime must be one of $RUNTIMES, not '$it'")
}

private fun quoted(value: Any?): String = if (value is String) "'$value'" else value.toString()

internal fun readDeviceFile(file: File, what: String): Any? = try {
    Json.parse(file.readText())
} catch (error: java.io.IOException) {
    throw ProfileException("cannot read the $what $file: ${error.message}")
} catch (error: JsonException) {
    throw ProfileException("cannot read the $what $file: ${error.message}")
}

/** Throws ProfileException unless a device file of [documentRuntime] and [programSha256] was made on [manifest]'s [runtime] program. */
internal fun checkProgram(documentRuntime: String, programSha256: String, manifest: Manifest, runtime: String, what: String) {
    if (documentRuntime != runtime) {
        throw ProfileException("the $what is for the bundle's $documentRuntime program, not its $runtime one")
    }
    val program = manifest.program(runtime) ?: throw ProfileException("the bundle has no $runtime program")
    if (programSha256 != program.sha256) {
        throw ProfileException("the $what was made on another ${program.path} (program_sha256 differs); profile this bundle")
    }
}

/** A device name as a file name (profile.py's device_slug): lower case, every run of other characters than a-z0-9 one '-'. */
fun deviceSlug(device: String): String =
    NOT_SLUG.replace(device.lowercase(), "-").trim('-').ifEmpty { "device" }

private val NOT_SLUG = Regex("[^a-z0-9]+")

/** Where a bundle keeps the latency profile of [runtime] on [device]: profiles/<runtime>/<device>.json. */
fun profileFile(bundleDir: File, runtime: String, device: String): File {
    if (runtime !in RUNTIMES) throw ProfileException("runtime must be one of $RUNTIMES, not '$runtime'")
    return File(File(File(bundleDir, PROFILES_FOLDER), runtime), "${deviceSlug(device)}.json")
}

/** Where a bundle keeps the policy calibrated from that profile: profiles/<runtime>/<device>.policy.json, beside it. */
fun calibratedPolicyFile(bundleDir: File, runtime: String, device: String): File =
    profileFile(bundleDir, runtime, device).let { File(it.parentFile, "${deviceSlug(device)}.policy.json") }

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
