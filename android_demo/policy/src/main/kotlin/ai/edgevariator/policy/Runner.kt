package ai.edgevariator.policy

import java.io.Closeable
import java.io.File
import java.util.Random

/*
 * The app's side of edge_variator/runtime/runner.py and profile.measure, over any [Methods]:
 * ExecuTorch's Module on the phone (ExecuTorchMethods, src/executorch/kotlin), a stand-in that
 * replays recorded outputs in the tests. The loop, its checks and its timing are plain Kotlin.
 */

/** One input of a method call: row-major values and their shape. */
sealed class MethodInput {
    abstract val shape: LongArray

    /** How many values [shape] holds. */
    val count: Int get() = shape.fold(1L) { product, dim -> product * dim }.toInt()

    /** int64, e.g. input_ids [1, seq] and attention_mask [1, seq]. */
    class Int64(val values: LongArray, override val shape: LongArray) : MethodInput() {
        init {
            require(values.size == count) { "${values.size} values do not fill shape ${shape.toList()}" }
        }
    }

    /** float32, e.g. the hidden state [1, seq, hidden]. */
    class Float32(val values: FloatArray, override val shape: LongArray) : MethodInput() {
        init {
            require(values.size == count) { "${values.size} values do not fill shape ${shape.toList()}" }
        }
    }
}

/** A method of the program failed to load or run, or returned something the runner cannot use. */
class MethodException(val method: String, message: String, cause: Throwable? = null) : RuntimeException(message, cause)

/**
 * How the runner calls a bundle's program: `embed`, `layer_{i}_k{k}` and `exit_{i}`, each taking
 * [MethodInput]s and returning one float32 tensor. Implementations raise [MethodException].
 */
interface Methods : Closeable {
    /** The methods the program holds. */
    val names: Set<String>

    /** What a latency profile's "runtime" says, e.g. "executorch-android 1.4.0 (XnnpackBackend)". */
    val runtime: String

    /** Prepares [name] now, so that its first call's latency is the model's and not the loader's. */
    fun load(name: String)

    /** Runs [name]; its one float32 output, row-major, in an array the caller may keep. */
    fun run(name: String, inputs: List<MethodInput>): FloatArray

    /** The delegates [name] runs on, e.g. XnnpackBackend; empty when the runtime cannot say. */
    fun backends(name: String): List<String> = emptyList()

    override fun close() {}
}

/** An ExecuTorch runtime error code (runtime/core/error.h, as of v1.4.0) by name, for messages. */
fun executorchErrorName(code: Int): String = when (code) {
    0x00 -> "Ok"
    0x01 -> "Internal"
    0x02 -> "InvalidState"
    0x03 -> "EndOfMethod"
    0x04 -> "AlreadyLoaded"
    0x10 -> "NotSupported"
    0x11 -> "NotImplemented"
    0x12 -> "InvalidArgument"
    0x13 -> "InvalidType"
    0x14 -> "OperatorMissing"
    0x15 -> "RegistrationExceedingMaxKernels"
    0x16 -> "RegistrationAlreadyRegistered"
    0x20 -> "NotFound"
    0x21 -> "MemoryAllocationFailed"
    0x22 -> "AccessFailed"
    0x23 -> "InvalidProgram"
    0x24 -> "InvalidExternalData"
    0x25 -> "OutOfResources"
    0x30 -> "DelegateInvalidCompatibility"
    0x31 -> "DelegateMemoryAllocationFailed"
    0x32 -> "DelegateInvalidHandle"
    else -> "error 0x${code.toString(16)}"
}

data class RunResult(
    val label: String,
    val labelIndex: Int,
    val probabilities: List<Double>,
    val exitLayer: Int,  // 1-based: how many layers ran
    val layers: Int,
    val decision: Decision,
    val uncertainty: Double,
    val truncated: Boolean,  // the text was longer than max_length and lost its tail
    val tokens: Int,  // the padded length it ran at
    val stepMs: Map<String, Double>,  // method -> wall time, in call order
) {
    val totalMs: Double get() = stepMs.values.sum()
}

/**
 * A bundle's program behind [methods]: tokenize, `embed`, then the layers of the decided ratio,
 * asking the exit after each layer that has one and stopping at the first confident one
 * (runtime/runner.py's loop). Every method the manifest describes must be in the program; all are
 * loaded here. Not thread-safe: call it from one thread. Closing it closes [methods]; when the
 * constructor throws, [methods] stays the caller's to close.
 */
class BundleRunner(
    val manifest: Manifest,
    private val tokenizer: Tokenizer,
    val methods: Methods,
    val bundleDir: File? = null,
    private val nanoTime: () -> Long = System::nanoTime,
) : Closeable {
    init {
        val lacking = manifest.methods.keys.filter { it !in methods.names }.sorted()
        if (lacking.isNotEmpty()) {
            throw ManifestException(
                "the program lacks ${lacking.size} of the methods the manifest describes, e.g. ${lacking.take(3)}: " +
                    "is model.pte the one the manifest names?",
            )
        }
        manifest.methods.keys.forEach(methods::load)
    }

    /** The delegates the program runs on, e.g. XnnpackBackend, as the runtime reports them. */
    val backends: List<String> by lazy {
        manifest.methods.keys.flatMap(methods::backends).distinct().sorted()
    }

    /**
     * The layer methods of [ratio], once the bundle is known to hold everything a run at it calls:
     * refused before any call when a method is not in the manifest or the last layer has no exit.
     */
    fun layerMethods(ratio: Int): List<String> {
        val layerMethods = manifest.layerMethods(ratio)
        if (layerMethods.isEmpty()) throw ManifestException("ratio $ratio lists no layer methods")
        val exits = manifest.exits.afterLayers
        val last = layerMethods.size - 1
        if (last !in exits) {
            throw ManifestException(
                "the bundle has no exit after its last layer ($last): exits.after_layers is $exits, and every run must end at an exit",
            )
        }
        val needed = listOf("embed") + layerMethods + exits.filter { it <= last }.map { "exit_$it" }
        val missing = needed.filter { it !in manifest.methods }
        if (missing.isNotEmpty()) {
            throw ManifestException("a run at ratio $ratio calls methods the manifest does not describe: $missing")
        }
        return layerMethods
    }

    /**
     * The text tokenized and padded as the bundle runs it (at most model.max_length tokens): its
     * `length` is the padded length the policy decides at. Refuses an empty text.
     */
    fun encode(text: String): Encoding = tokenizer.encode(text)

    /**
     * runner.py's Runner.run(text, state): tokenize, then [policy]'s decision for [state] at the
     * text's padded length, then the loop. An empty text or a refused state or length leaves the
     * policy's active rule as it was.
     */
    fun run(text: String, state: DeviceState, policy: Policy): RunResult {
        val encoding = encode(text)
        return run(encoding, policy.decide(state, encoding.length))
    }

    /** A decision given outright, whatever the text's length. */
    fun run(text: String, decision: Decision): RunResult = run(encode(text), decision)

    /**
     * The loop over a text tokenized by [encode]: an app that decides elsewhere (on its main
     * thread, say) tokenizes first, decides at `encoding.length`, then runs this.
     */
    fun run(encoding: Encoding, decision: Decision): RunResult {
        val layerMethods = layerMethods(decision.ratio)
        val model = manifest.model
        val length = encoding.length.toLong()
        val ids = MethodInput.Int64(encoding.inputIds, longArrayOf(1, length))
        val mask = MethodInput.Int64(encoding.attentionMask, longArrayOf(1, length))
        val hiddenShape = longArrayOf(1, length, model.hidden.toLong())
        val hiddenCount = encoding.length * model.hidden
        val stepMs = LinkedHashMap<String, Double>()

        fun call(method: String, inputs: List<MethodInput>, expected: Int, what: String): FloatArray {
            val began = nanoTime()
            val output = methods.run(method, inputs)
            stepMs[method] = (nanoTime() - began) / 1e6
            if (output.size != expected) {
                throw MethodException(
                    method,
                    "$method returned ${output.size} values, not the $expected of $what: " +
                        "is model.pte the one the manifest names?",
                )
            }
            return output
        }

        fun hiddenFrom(method: String, inputs: List<MethodInput>) = MethodInput.Float32(
            call(method, inputs, hiddenCount, "a hidden state [1, ${encoding.length}, ${model.hidden}]"), hiddenShape,
        )

        var hidden = hiddenFrom("embed", listOf(ids))
        val exit = runEarlyExit(
            layers = layerMethods.size,
            afterLayers = manifest.exits.afterLayers,
            threshold = decision.threshold,
            criterion = manifest.exits.criterion,
            runLayer = { index -> hidden = hiddenFrom(layerMethods[index], listOf(hidden, mask)) },
            exitLogits = { index ->
                call("exit_$index", listOf(hidden, mask), model.labels.size, "${model.labels.size} logits").toDoubles()
            },
        )
        return RunResult(
            model.labels[exit.label], exit.label, exit.probabilities, exit.exitLayer, layerMethods.size,
            decision, exit.score, encoding.truncated, encoding.length, stepMs,
        )
    }

    /**
     * Every method timed at each length, the way profile.py's measure() does it on a host: all
     * positions real tokens (ids 1000, mask 1, the worst case for that shape), standard normal
     * hidden states made once per length. [onLength] is told when a length begins.
     */
    fun profile(
        lengths: List<Int>,
        warmup: Int,
        repeats: Int,
        random: Random = Random(0),
        onLength: (Int) -> Unit = {},
    ): Map<String, Map<Int, Timing>> {
        checkProfileLengths(manifest.model, lengths)
        require(repeats >= 1 && warmup >= 0) { "repeats must be at least 1 and warm-up at least 0" }
        val inputs = HashMap<String, List<MethodInput>>()
        var currentLength = -1
        return measureLatency(manifest.methods.keys.toList(), lengths, warmup, repeats, call = { method, length ->
            if (length != currentLength) {
                currentLength = length
                inputs.clear()
                onLength(length)
            }
            methods.run(method, inputs.getOrPut(method) { profileInputs(method, length, random) })
        }, nanoTime = nanoTime)
    }

    private fun profileInputs(method: String, length: Int, random: Random): List<MethodInput> {
        val tokens = longArrayOf(1, length.toLong())
        if (method == "embed") return listOf(MethodInput.Int64(LongArray(length) { 1000L }, tokens))
        val hidden = manifest.model.hidden
        return listOf(
            MethodInput.Float32(
                FloatArray(length * hidden) { random.nextGaussian().toFloat() },
                longArrayOf(1, length.toLong(), hidden.toLong()),
            ),
            MethodInput.Int64(LongArray(length) { 1L }, tokens),
        )
    }

    override fun close() = methods.close()

    companion object {
        /**
         * The bundle in [bundleDir]: its manifest, with every file its checksums list (model.pte,
         * the tokenizer's) checked against its sha256 ([Manifest.load]), its tokenizer/ folder (of
         * the manifest's model.tokenizer kind, [Tokenizer.fromFolder]), and its program opened by
         * [load] (ExecuTorchMethods::load on a phone). [load]'s methods are closed again if the
         * runner cannot be made.
         */
        fun open(bundleDir: File, load: (program: File) -> Methods): BundleRunner {
            val manifest = Manifest.load(bundleDir)
            val tokenizer = Tokenizer.fromFolder(File(bundleDir, "tokenizer"), manifest.model)
            val methods = load(manifest.programFile(bundleDir))
            return try {
                BundleRunner(manifest, tokenizer, methods, bundleDir)
            } catch (error: Throwable) {
                methods.close()
                throw error
            }
        }
    }
}
