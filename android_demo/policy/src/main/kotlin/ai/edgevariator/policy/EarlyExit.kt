package ai.edgevariator.policy

import kotlin.math.exp
import kotlin.math.ln

/*
 * The early-exit decision of edge_variator/runtime/runner.py and exits.py, apart from any model:
 * after each layer with an exit, ask it; stop at the first whose uncertainty is below the
 * threshold (strictly), or at the last layer. tests/vectors/exits.json holds the cases.
 */

/** log-softmax in Double: large logits (1000, -1000) stay finite where exp() alone would overflow. */
fun logSoftmax(logits: DoubleArray): DoubleArray {
    require(logits.isNotEmpty()) { "an exit needs at least one logit" }
    val max = logits.max()
    var sum = 0.0
    for (logit in logits) sum += exp(logit - max)
    val logSum = max + ln(sum)
    return DoubleArray(logits.size) { logits[it] - logSum }
}

fun softmax(logits: DoubleArray): DoubleArray = logSoftmax(logits).let { logProbs -> DoubleArray(logProbs.size) { exp(logProbs[it]) } }

/** Lower is more confident: softmax entropy in nats, or 1 - the largest probability. */
fun uncertainty(logits: DoubleArray, criterion: Criterion): Double {
    val logProbs = logSoftmax(logits)
    return when (criterion) {
        Criterion.ENTROPY -> {
            var sum = 0.0
            for (logProb in logProbs) sum += exp(logProb) * logProb
            -sum
        }
        Criterion.MAX_PROB -> 1.0 - exp(logProbs.max())
    }
}

fun uncertainty(logits: FloatArray, criterion: Criterion): Double = uncertainty(logits.toDoubles(), criterion)

/** The index of the largest logit; ties go to the first, as argmax does everywhere. */
fun argmax(logits: DoubleArray): Int {
    var best = 0
    for (index in 1 until logits.size) if (logits[index] > logits[best]) best = index
    return best
}

fun FloatArray.toDoubles(): DoubleArray = DoubleArray(size) { this[it].toDouble() }

data class ExitDecision(
    val exitLayer: Int,  // 1-based: how many layers ran
    val label: Int,
    val score: Double,  // the uncertainty of the exit that answered
    val probabilities: List<Double>,
)

/**
 * Runs layers 0 until [layers] through [runLayer] and, after each index in [afterLayers], asks
 * [exitLogits] for that exit's logits; stops at the first exit whose uncertainty is below
 * [threshold] (null: never early) or at the last layer. The model stays behind the two functions,
 * so the decision is tested without one.
 */
fun runEarlyExit(
    layers: Int,
    afterLayers: Collection<Int>,
    threshold: Double?,
    criterion: Criterion,
    runLayer: (index: Int) -> Unit,
    exitLogits: (index: Int) -> DoubleArray,
): ExitDecision {
    require(layers >= 1) { "a model has at least one layer, not $layers" }
    val exits = afterLayers.toSet()
    require(layers - 1 in exits) { "no exit after the last layer (${layers - 1}): every run must end at an exit" }
    for (index in 0 until layers) {
        runLayer(index)
        if (index !in exits) continue
        val logits = exitLogits(index)
        val score = uncertainty(logits, criterion)
        if ((threshold != null && score < threshold) || index == layers - 1) {
            return ExitDecision(index + 1, argmax(logits), score, softmax(logits).toList())
        }
    }
    throw IllegalStateException("unreachable: the last layer has an exit")
}
