package ai.edgevariator.demo

import ai.edgevariator.policy.Decision
import ai.edgevariator.policy.Manifest
import ai.edgevariator.policy.Timing
import ai.edgevariator.policy.WordPieceTokenizer
import ai.edgevariator.policy.checkedProgram
import ai.edgevariator.policy.measureLatency
import ai.edgevariator.policy.runEarlyExit
import ai.edgevariator.policy.toDoubles
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor
import java.io.Closeable
import java.io.File
import java.util.Random

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
 * A bundle's model.pte in ExecuTorch: tokenize, `embed`, then the layers of the decided ratio,
 * asking the exit after each and stopping at the first confident one (runtime/runner.py's loop).
 * Not thread-safe: the app calls it from one worker thread.
 */
class BundleRunner(val bundleDir: File) : Closeable {
    val manifest: Manifest = Manifest.load(bundleDir)
    private val tokenizer = WordPieceTokenizer.fromFolder(File(bundleDir, "tokenizer"), manifest.model)
    private val module: Module = Module.load(checkedProgram(bundleDir, manifest).absolutePath)

    init {
        // Load every method now, so that the first run's latency is the model's and not the loader's.
        manifest.methods.keys.forEach(module::loadMethod)
    }

    /** The delegates the program runs on, e.g. XnnpackBackend, as the runtime reports them. */
    val backends: List<String> by lazy {
        manifest.methods.keys.flatMap { module.getMethodMetadata(it).backends.toList() }.distinct().sorted()
    }

    fun run(text: String, decision: Decision): RunResult {
        val encoding = tokenizer.encode(text)
        val length = encoding.length.toLong()
        val ids = EValue.from(Tensor.fromBlob(encoding.inputIds, longArrayOf(1, length)))
        val mask = EValue.from(Tensor.fromBlob(encoding.attentionMask, longArrayOf(1, length)))
        val stepMs = LinkedHashMap<String, Double>()

        fun call(method: String, vararg inputs: EValue): Tensor {
            val began = System.nanoTime()
            val output = module.execute(method, *inputs)[0].toTensor()
            stepMs[method] = (System.nanoTime() - began) / 1e6
            return output
        }

        // An output tensor wraps the method's own memory (valid until that method runs again), so
        // the hidden state is copied into one buffer of ours that every layer reads from.
        val hiddenBuffer = Tensor.allocateFloatBuffer(encoding.length * manifest.model.hidden)
        val hidden = EValue.from(Tensor.fromBlob(hiddenBuffer, longArrayOf(1, length, manifest.model.hidden.toLong())))
        fun keep(output: Tensor) {
            hiddenBuffer.clear()
            output.copyDataInto(hiddenBuffer)
        }

        keep(call("embed", ids))
        val layerMethods = manifest.layerMethods(decision.ratio)
        val exit = runEarlyExit(
            layers = layerMethods.size,
            afterLayers = manifest.exits.afterLayers,
            threshold = decision.threshold,
            criterion = manifest.exits.criterion,
            runLayer = { index -> keep(call(layerMethods[index], hidden, mask)) },
            exitLogits = { index -> call("exit_$index", hidden, mask).dataAsFloatArray.toDoubles() },
        )
        return RunResult(
            manifest.model.labels[exit.label], exit.label, exit.probabilities, exit.exitLayer, layerMethods.size,
            decision, exit.score, encoding.truncated, encoding.length, stepMs,
        )
    }

    /**
     * Every method timed at each length, the way profile.py's measure() does it on a host: all
     * positions real tokens (ids 1000, mask 1, the worst case for that shape), random hidden states.
     */
    fun profile(lengths: List<Int>, warmup: Int, repeats: Int, onLength: (Int) -> Unit): Map<String, Map<Int, Timing>> {
        val random = Random(0)
        val inputs = HashMap<String, Array<EValue>>()
        var currentLength = -1
        return measureLatency(manifest.methods.keys.toList(), lengths, warmup, repeats, call = { method, length ->
            if (length != currentLength) {
                currentLength = length
                inputs.clear()
                onLength(length)
            }
            val methodInputs = inputs.getOrPut(method) { profileInputs(method, length, random) }
            module.execute(method, *methodInputs)
        })
    }

    private fun profileInputs(method: String, length: Int, random: Random): Array<EValue> {
        val tokens = longArrayOf(1, length.toLong())
        if (method == "embed") return arrayOf(EValue.from(Tensor.fromBlob(LongArray(length) { 1000L }, tokens)))
        val hidden = manifest.model.hidden
        val states = FloatArray(length * hidden) { random.nextGaussian().toFloat() }
        return arrayOf(
            EValue.from(Tensor.fromBlob(states, longArrayOf(1, length.toLong(), hidden.toLong()))),
            EValue.from(Tensor.fromBlob(LongArray(length) { 1L }, tokens)),
        )
    }

    override fun close() = module.destroy()
}
