package ai.edgevariator.policy

import java.io.File

/**
 * Where the shared files are: a system property (-DedgeVariator.root=...), else an environment
 * variable (EDGE_VARIATOR_ROOT), else the first folder above the working directory that holds
 * tests/vectors/policy.json. Each vectors file can be pointed elsewhere on its own the same way.
 */
object TestFiles {
    val root: File by lazy {
        setting("edgeVariator.root", "EDGE_VARIATOR_ROOT")?.let { return@lazy File(it).absoluteFile }
        var folder: File? = File("").absoluteFile
        while (folder != null) {
            if (File(folder, "tests/vectors/policy.json").isFile) return@lazy folder
            folder = folder.parentFile
        }
        throw IllegalStateException(
            "cannot find the edge_variator repository: set -DedgeVariator.root or EDGE_VARIATOR_ROOT",
        )
    }

    val policyVectors: File
        get() = setting("edgeVariator.policyVectors", "EDGE_VARIATOR_POLICY_VECTORS")?.let(::File)
            ?: File(root, "tests/vectors/policy.json")

    val exitVectors: File
        get() = setting("edgeVariator.exitVectors", "EDGE_VARIATOR_EXIT_VECTORS")?.let(::File)
            ?: File(root, "tests/vectors/exits.json")

    /** tests/vectors/bundle.json; the small bundle its cases edit is the folder it names beside it (bundle/). */
    val bundleVectors: File
        get() = setting("edgeVariator.bundleVectors", "EDGE_VARIATOR_BUNDLE_VECTORS")?.let(::File)
            ?: File(root, "tests/vectors/bundle.json")

    /** The shipped bundles: edge_variator/default/bundles/<name>/ with a manifest.json. */
    val bundles: List<File>
        get() = File(root, "edge_variator/default/bundles").listFiles()
            ?.filter { File(it, "manifest.json").isFile }?.sortedBy { it.name } ?: emptyList()

    val defaultTokenizerJson: File get() = File(root, "edge_variator/default/mr_slender/tokenizer.json")

    /** tests/vectors/tokenizers/<kind>.json; its tokenizer folder is <kind>/ beside it. */
    fun tokenizerVectors(kind: TokenizerKind): File = File(root, "tests/vectors/tokenizers/${kind.wireName}.json")

    fun json(file: File): Map<*, *> = Json.parse(file.readText()) as Map<*, *>

    private fun setting(property: String, environment: String): String? =
        System.getProperty(property)?.takeIf { it.isNotBlank() } ?: System.getenv(environment)?.takeIf { it.isNotBlank() }
}

/** A JSON number, or the strings "NaN" / "Infinity" / "-Infinity" the vectors use for what JSON lacks. */
fun vectorNumber(value: Any?): Double = when (value) {
    is Long -> value.toDouble()
    is Double -> value
    "NaN" -> Double.NaN
    "Infinity" -> Double.POSITIVE_INFINITY
    "-Infinity" -> Double.NEGATIVE_INFINITY
    else -> throw IllegalArgumentException("not a number in the vectors: $value")
}

fun thresholdsOf(json: Any?): Map<String, Double> =
    (json as Map<*, *>).entries.associate { (name, value) -> name as String to vectorNumber(value) }

fun intsOf(json: Any?): List<Int> = (json as List<*>).map { (it as Long).toInt() }
