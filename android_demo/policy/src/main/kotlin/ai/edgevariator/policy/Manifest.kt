package ai.edgevariator.policy

import java.io.File
import java.security.MessageDigest

/** manifest.json is not a bundle manifest this app can run, or a file it names is missing or altered. */
class ManifestException(message: String) : IllegalArgumentException(message)

/** How an exit's uncertainty is measured (manifest exits.criterion). */
enum class Criterion(val wireName: String) {
    ENTROPY("entropy"), MAX_PROB("max_prob");

    companion object {
        fun named(name: String): Criterion = entries.firstOrNull { it.wireName == name }
            ?: throw IllegalArgumentException("criterion must be one of ${entries.map { it.wireName }}, not '$name'")
    }
}

data class ModelInfo(
    val layers: Int,
    val hidden: Int,
    val vocabSize: Int,
    val maxLength: Int,
    val minLength: Int,
    val padMultiple: Int,
    val padTokenId: Int?,  // null: the tokenizer's pad token (tokenizer_config.json's, else [PAD])
    val labels: List<String>,
    val tokenizer: TokenizerKind = TokenizerKind.WORDPIECE,  // model.tokenizer; bundles from before other families have none
)

data class TensorSpec(val name: String, val dtype: String, val shape: List<Any>)  // shape: Long or "seq"

data class MethodSpec(val inputs: List<TensorSpec>, val outputs: List<TensorSpec>)

data class Exits(
    val afterLayers: List<Int>,  // 0-based layer indices with an exit_{i} method after them
    val criterion: Criterion,
    val thresholds: Map<String, Double>,  // name -> an exit answers when its uncertainty is below it
)

data class BundleFile(val path: String, val sha256: String, val bytes: Long)

/** What the bundle was exported from (manifest inputs); [exportKey], the sha256 of the rest, keys the export cache. */
data class ExportInputs(val exportKey: String, val values: Map<String, Any?>)

/** The runtimes a bundle may hold a program for (manifest files.<runtime>), as profiles name them. */
const val RUNTIME_EXECUTORCH = "executorch"
const val RUNTIME_COREML = "coreml"
val RUNTIMES = listOf(RUNTIME_EXECUTORCH, RUNTIME_COREML)

/** What the app reads from a bundle's manifest.json (docs/BUNDLE.md, edge_variator/runtime/manifest.schema.json). */
data class Manifest(
    val schemaVersion: Int,
    val libraryVersion: String,  // the edge-variator version that exported it
    val backboneId: String,
    val backboneSha256: String,
    val model: ModelInfo,
    val methods: Map<String, MethodSpec>,
    val ratios: Map<Int, List<String>>,  // k -> the layer methods to call, in order
    val exits: Exits,
    val executorch: BundleFile,
    val coreml: BundleFile?,  // model.mlpackage, when the bundle has one (its sha256 is the package's digest)
    val tokenizerFiles: List<String>,
    val checksums: Map<String, String>,  // relative path -> sha256 of every file but manifest.json and profiles/
    val inputs: ExportInputs,
    val policy: PolicyTable,  // the whole rule table, written at export: the app has none of its own
) {
    /** The layer methods of ratio [ratio], in call order. */
    fun layerMethods(ratio: Int): List<String> =
        ratios[ratio] ?: throw ManifestException("the bundle has no ratio $ratio; it has ${ratios.keys.sorted()}")

    /** The bundle's program for [runtime] ("executorch" or "coreml"), or null when it has none. */
    fun program(runtime: String): BundleFile? = when (runtime) {
        RUNTIME_EXECUTORCH -> executorch
        RUNTIME_COREML -> coreml
        else -> null
    }

    /** Where [program]'s file lies in [bundleDir]. */
    fun programFile(bundleDir: File, runtime: String = RUNTIME_EXECUTORCH): File = File(
        bundleDir,
        (program(runtime) ?: throw ManifestException("the bundle has no $runtime program")).path,
    )

    companion object {
        const val SCHEMA_VERSION = 2

        fun parse(text: String): Manifest {
            val json = try {
                Json.parse(text)
            } catch (error: JsonException) {
                throw ManifestException("manifest.json is not valid JSON: ${error.message}")
            }
            return fromJson(json)
        }

        /**
         * The manifest of [bundleDir], parsed and checked, and every file its checksums list hashed:
         * the first (in path order) that is missing or differs is named and the bundle refused.
         */
        fun load(bundleDir: File): Manifest {
            val file = File(bundleDir, "manifest.json")
            if (!file.isFile) throw ManifestException("$bundleDir is not a bundle: no manifest.json")
            return parse(file.readText()).also { checkFiles(bundleDir, it) }
        }

        /** Every file in [manifest]'s checksums is in [bundleDir] with its exported sha256 (runtime/bundle.py's check_files). */
        fun checkFiles(bundleDir: File, manifest: Manifest) {
            for ((path, expected) in manifest.checksums.toSortedMap()) {
                val file = File(bundleDir, path)
                if (!file.isFile) throw ManifestException("$bundleDir: $path is missing; copy the bundle again (or export it again)")
                if (sha256Hex(file) != expected) {
                    throw ManifestException(
                        "$bundleDir: $path is not the file that was exported (sha256 differs): truncated or altered; " +
                            "copy the bundle again (or export it again)",
                    )
                }
            }
        }

        fun fromJson(json: Any?): Manifest {
            val root = Fields(json, "manifest")
            val version = root.optional("schema_version")
            if (version != SCHEMA_VERSION.toLong()) {
                throw ManifestException(
                    "manifest schema_version $version is not $SCHEMA_VERSION: the bundle was written by an older " +
                        "edge-variator; export the bundle again",
                )
            }
            val policyJson = root.optional("policy") ?: throw ManifestException(
                "manifest.json has no policy table (policy is missing or null), and the app has none of its own " +
                    "to fall back on: export the bundle again",
            )
            val backbone = root.obj("backbone")
            val model = modelFrom(root.obj("model"))
            val methods = root.obj("methods").let { all ->
                all.keys.associateWith { name -> methodFrom(all.obj(name)) }
            }
            val ratios = root.obj("ratios").let { all ->
                all.keys.associate { key ->
                    val ratio = key.toIntOrNull()?.takeIf { it in listOf(1, 2, 4, 8) && it.toString() == key }
                        ?: throw ManifestException("manifest ratios: '$key' is not one of 1, 2, 4, 8")
                    ratio to all.strings(key)
                }
            }
            val exits = exitsFrom(root.obj("exits"))
            val files = root.obj("files")
            fun program(fields: Fields) = BundleFile(fields.string("path"), fields.sha256("sha256"), fields.long("bytes"))
            val executorch = program(files.obj("executorch"))
            val coreml = files.optional("coreml")?.let { program(files.obj("coreml")) }
            val checksums = root.obj("checksums").let { all -> all.keys.associateWith { path -> all.sha256(path) } }
            val inputs = root.obj("inputs").let { fields ->
                @Suppress("UNCHECKED_CAST")
                ExportInputs(fields.sha256("export_key"), root.optional("inputs") as Map<String, Any?>)
            }
            val policy = try {
                checkPolicy(policyJson, ratios.keys, exits.thresholds)
            } catch (error: PolicyException) {
                throw ManifestException("manifest policy: ${error.message}")
            }
            return Manifest(
                schemaVersion = SCHEMA_VERSION,
                libraryVersion = root.string("library_version"),
                backboneId = backbone.string("id"),
                backboneSha256 = backbone.string("sha256"),
                model = model,
                methods = methods,
                ratios = ratios,
                exits = exits,
                executorch = executorch,
                coreml = coreml,
                tokenizerFiles = files.strings("tokenizer"),
                checksums = checksums,
                inputs = inputs,
                policy = policy,
            ).also(::checkConsistent)
        }

        private fun modelFrom(fields: Fields): ModelInfo {
            val model = ModelInfo(
                layers = fields.int("layers"),
                hidden = fields.int("hidden"),
                vocabSize = fields.int("vocab_size"),
                maxLength = fields.int("max_length"),
                minLength = fields.int("min_length"),
                padMultiple = fields.int("pad_multiple"),
                padTokenId = if (fields.optional("pad_token_id") == null) null else fields.int("pad_token_id"),
                labels = fields.strings("labels"),
                tokenizer = fields.optional("tokenizer")?.let { kind ->
                    try {
                        TokenizerKind.named(kind as? String ?: throw IllegalArgumentException("tokenizer must be a string, not $kind"))
                    } catch (error: IllegalArgumentException) {
                        throw ManifestException("manifest model.${error.message}")
                    }
                } ?: TokenizerKind.WORDPIECE,
            )
            if (model.padMultiple < 1 || model.maxLength % model.padMultiple != 0 || model.maxLength < model.minLength) {
                throw ManifestException(
                    "manifest model: max_length ${model.maxLength} must be a multiple of pad_multiple " +
                        "${model.padMultiple} and at least min_length ${model.minLength}",
                )
            }
            if (model.labels.size < 2) throw ManifestException("manifest model.labels needs at least 2 labels")
            return model
        }

        private fun methodFrom(fields: Fields): MethodSpec {
            fun tensors(key: String) = fields.list(key).mapIndexed { index, item ->
                val tensor = Fields(item, "${fields.where}.$key[$index]")
                val shape = tensor.list("shape").map { dim ->
                    when (dim) {
                        is Long, is String -> dim
                        else -> throw ManifestException("${tensor.where}.shape holds $dim, not a size or \"seq\"")
                    }
                }
                TensorSpec(tensor.string("name"), tensor.string("dtype"), shape)
            }
            return MethodSpec(tensors("inputs"), tensors("outputs"))
        }

        private fun exitsFrom(fields: Fields): Exits {
            val afterLayers = fields.list("after_layers").map {
                (it as? Long)?.toInt()?.takeIf { layer -> layer >= 0 }
                    ?: throw ManifestException("manifest exits.after_layers holds $it, not a layer index")
            }
            val criterion = try {
                Criterion.named(fields.string("criterion"))
            } catch (error: IllegalArgumentException) {
                throw ManifestException("manifest exits.criterion: ${error.message}")
            }
            val thresholds = fields.obj("thresholds").let { all ->
                all.keys.associateWith { name ->
                    all.double(name).takeIf { it >= 0.0 }
                        ?: throw ManifestException("manifest exits.thresholds.$name must be a number >= 0")
                }
            }
            return Exits(afterLayers, criterion, thresholds)
        }

        /** What the runner relies on and the schema alone does not say (Python's validate and runner). */
        private fun checkConsistent(manifest: Manifest) {
            if (1 !in manifest.ratios) throw ManifestException("manifest ratios lacks ratio 1 (every layer uncompressed)")
            for ((ratio, layerMethods) in manifest.ratios) {
                val missing = layerMethods.filter { it !in manifest.methods }
                if (missing.isNotEmpty()) {
                    throw ManifestException("ratio $ratio lists methods the manifest does not describe: ${missing.take(3)}")
                }
                if (layerMethods.size != manifest.model.layers) {
                    throw ManifestException("ratio $ratio lists ${layerMethods.size} layers, the model has ${manifest.model.layers}")
                }
            }
            val exits = manifest.exits.afterLayers
            if (manifest.model.layers - 1 !in exits) {
                throw ManifestException("manifest exits.after_layers $exits lacks the last layer: every run must end at an exit")
            }
            val missing = (listOf("embed") + exits.map { "exit_$it" }).filter { it !in manifest.methods }
            if (missing.isNotEmpty()) throw ManifestException("the manifest lacks methods $missing")
            val program = manifest.executorch
            if (manifest.checksums[program.path] != program.sha256) {
                throw ManifestException("manifest checksums do not list ${program.path} with files.executorch's sha256")
            }
        }
    }
}

/** The lowercase hex SHA-256 of [file], read in blocks (model.pte is tens of MB). */
fun sha256Hex(file: File): String {
    val digest = MessageDigest.getInstance("SHA-256")
    file.inputStream().use { input ->
        val block = ByteArray(1 shl 16)
        while (true) {
            val read = input.read(block)
            if (read < 0) break
            digest.update(block, 0, read)
        }
    }
    return digest.digest().joinToString("") { "%02x".format(it) }
}

/**
 * Typed access to one JSON object; errors name the field, e.g. "manifest.model.max_length", and are
 * made by [refuse] (a ManifestException unless told otherwise).
 */
internal class Fields(
    json: Any?,
    val where: String,
    private val refuse: (String) -> IllegalArgumentException = ::ManifestException,
) {
    private val map: Map<*, *> = json as? Map<*, *> ?: throw refuse("$where must be a JSON object")

    val keys: List<String> get() = map.keys.map { it.toString() }

    fun optional(key: String): Any? = map[key]

    private fun value(key: String): Any? {
        if (key !in map) throw refuse("$where.$key is missing")
        return map[key]
    }

    /** The value of [key], whatever it is; refused when absent. */
    fun required(key: String): Any? = value(key)

    fun obj(key: String) = Fields(value(key), "$where.$key", refuse)

    fun string(key: String): String = value(key) as? String ?: throw refuse("$where.$key must be a string")

    fun long(key: String): Long = value(key) as? Long ?: throw refuse("$where.$key must be an integer")

    fun int(key: String): Int = long(key).let {
        if (it < Int.MIN_VALUE || it > Int.MAX_VALUE) throw refuse("$where.$key is out of range")
        it.toInt()
    }

    fun double(key: String): Double = when (val number = value(key)) {
        is Long -> number.toDouble()
        is Double -> number
        else -> throw refuse("$where.$key must be a number")
    }

    fun list(key: String): List<Any?> = value(key) as? List<*> ?: throw refuse("$where.$key must be a list")

    /** A sha256 as the schema writes it: 64 lowercase hex digits. */
    fun sha256(key: String): String = string(key).also {
        if (!SHA256.matches(it)) throw refuse("$where.$key must be a sha256 (64 lowercase hex digits), not '$it'")
    }

    fun strings(key: String): List<String> =
        list(key).map { it as? String ?: throw refuse("$where.$key must hold strings, not $it") }

    private companion object {
        val SHA256 = Regex("[0-9a-f]{64}")
    }
}
