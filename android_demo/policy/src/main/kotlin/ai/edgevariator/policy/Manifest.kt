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

/** What the app reads from a bundle's manifest.json (edge_variator/runtime/manifest.schema.json). */
data class Manifest(
    val schemaVersion: Int,
    val backboneId: String,
    val backboneSha256: String,
    val model: ModelInfo,
    val methods: Map<String, MethodSpec>,
    val ratios: Map<Int, List<String>>,  // k -> the layer methods to call, in order
    val exits: Exits,
    val executorch: BundleFile,
    val tokenizerFiles: List<String>,
    val policy: PolicyTable?,  // null: the runtime's defaultPolicy for these ratios and thresholds
    val latencyProfile: Map<String, Any?>?,
) {
    /** The layer methods of ratio [ratio], in call order. */
    fun layerMethods(ratio: Int): List<String> =
        ratios[ratio] ?: throw ManifestException("the bundle has no ratio $ratio; it has ${ratios.keys.sorted()}")

    companion object {
        const val SCHEMA_VERSION = 1

        fun parse(text: String): Manifest {
            val json = try {
                Json.parse(text)
            } catch (error: JsonException) {
                throw ManifestException("manifest.json is not valid JSON: ${error.message}")
            }
            return fromJson(json)
        }

        fun load(bundleDir: File): Manifest {
            val file = File(bundleDir, "manifest.json")
            if (!file.isFile) throw ManifestException("$bundleDir is not a bundle: no manifest.json")
            return parse(file.readText())
        }

        fun fromJson(json: Any?): Manifest {
            val root = Fields(json, "manifest")
            val version = root.int("schema_version")
            if (version != SCHEMA_VERSION) {
                throw ManifestException("manifest schema_version $version is not $SCHEMA_VERSION: export the bundle again")
            }
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
            val executorch = files.obj("executorch").let { BundleFile(it.string("path"), it.string("sha256"), it.long("bytes")) }
            val policy = root.optional("policy")?.let { value ->
                // As Python's `manifest.get("policy") or default_policy(...)`: an empty table means none.
                if (value is Map<*, *> && value.isEmpty()) null else PolicyTable.fromJson(value)
            }
            @Suppress("UNCHECKED_CAST")
            val profile = root.optional("latency_profile")?.let {
                it as? Map<String, Any?> ?: throw ManifestException("manifest latency_profile must be an object or null")
            }
            return Manifest(
                version, backbone.string("id"), backbone.string("sha256"), model, methods, ratios, exits, executorch,
                files.strings("tokenizer"), policy, profile,
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

/** model.pte of [bundleDir], refused when it is missing or not the file that was exported. */
fun checkedProgram(bundleDir: File, manifest: Manifest): File {
    val program = File(bundleDir, manifest.executorch.path)
    if (!program.isFile) throw ManifestException("$bundleDir: the manifest names ${manifest.executorch.path}, which is missing")
    if (program.length() != manifest.executorch.bytes || sha256Hex(program) != manifest.executorch.sha256) {
        throw ManifestException("$program is not the file that was exported (size or sha256 differs): copy the bundle again")
    }
    return program
}

/** Typed access to one JSON object; errors name the field, e.g. "manifest.model.max_length". */
private class Fields(json: Any?, val where: String) {
    private val map: Map<*, *> = json as? Map<*, *> ?: throw ManifestException("$where must be a JSON object")

    val keys: List<String> get() = map.keys.map { it.toString() }

    fun optional(key: String): Any? = map[key]

    private fun value(key: String): Any? {
        if (key !in map) throw ManifestException("$where.$key is missing")
        return map[key]
    }

    fun obj(key: String) = Fields(value(key), "$where.$key")

    fun string(key: String): String = value(key) as? String ?: throw ManifestException("$where.$key must be a string")

    fun long(key: String): Long = value(key) as? Long ?: throw ManifestException("$where.$key must be an integer")

    fun int(key: String): Int = long(key).let {
        if (it < Int.MIN_VALUE || it > Int.MAX_VALUE) throw ManifestException("$where.$key is out of range")
        it.toInt()
    }

    fun double(key: String): Double = when (val number = value(key)) {
        is Long -> number.toDouble()
        is Double -> number
        else -> throw ManifestException("$where.$key must be a number")
    }

    fun list(key: String): List<Any?> = value(key) as? List<*> ?: throw ManifestException("$where.$key must be a list")

    fun strings(key: String): List<String> =
        list(key).map { it as? String ?: throw ManifestException("$where.$key must hold strings, not $it") }
}
