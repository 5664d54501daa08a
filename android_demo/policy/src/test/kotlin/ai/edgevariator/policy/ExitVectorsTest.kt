package ai.edgevariator.policy

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.DynamicNode
import org.junit.jupiter.api.DynamicTest.dynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory

/** tests/vectors/exits.json: one exit's uncertainty and label, and whole early-exit runs. */
class ExitVectorsTest {
    private val vectors = TestFiles.json(TestFiles.exitVectors)

    @TestFactory
    fun scores(): List<DynamicNode> = (vectors["scores"] as List<*>).map { item ->
        val case = item as Map<*, *>
        val logits = doubles(case["logits"])
        val criterion = Criterion.named(case["criterion"] as String)
        dynamicTest("${criterion.wireName} of ${logits.toList()}") {
            assertEquals(vectorNumber(case["score"]), uncertainty(logits, criterion), 1e-6, "score")
            assertEquals((case["label"] as Long).toInt(), argmax(logits), "label")
        }
    }

    @TestFactory
    fun runs(): List<DynamicNode> = (vectors["runs"] as List<*>).map { item ->
        val case = item as Map<*, *>
        val criterion = Criterion.named(case["criterion"] as String)
        val afterLayers = intsOf(case["after_layers"])
        val logitsPerExit = (case["logits"] as List<*>).map(::doubles)  // one row per exit, in after_layers order
        val expect = case["expect"] as Map<*, *>
        dynamicTest("${criterion.wireName}: ${case["name"]}") {
            val layersRun = ArrayList<Int>()
            val exitsAsked = ArrayList<Int>()
            val decision = runEarlyExit(
                layers = (case["layers"] as Long).toInt(),
                afterLayers = afterLayers,
                threshold = case["threshold"]?.let(::vectorNumber),
                criterion = criterion,
                runLayer = { layersRun.add(it) },
                exitLogits = { index ->
                    exitsAsked.add(index)
                    logitsPerExit[afterLayers.indexOf(index)]
                },
            )
            val exitLayer = (expect["exit_layer"] as Long).toInt()
            assertEquals(exitLayer, decision.exitLayer, "exit_layer")
            assertEquals((expect["label"] as Long).toInt(), decision.label, "label")
            assertEquals(vectorNumber(expect["score"]), decision.score, 1e-6, "score")
            assertEquals((0 until exitLayer).toList(), layersRun, "layers run: none after the exit that answered")
            assertEquals(afterLayers.filter { it < exitLayer }, exitsAsked, "exits asked")
        }
    }

    @Test
    fun aModelWithoutAnExitAfterItsLastLayerIsRefused() {
        assertThrows(IllegalArgumentException::class.java) {
            runEarlyExit(3, listOf(0, 1), 0.5, Criterion.ENTROPY, {}, { doubleArrayOf(1.0, 0.0) })
        }
    }

    @Test
    fun floatLogitsScoreLikeDoubles() {
        val logits = floatArrayOf(2.0f, -1.0f, 0.5f)
        assertEquals(uncertainty(logits.toDoubles(), Criterion.ENTROPY), uncertainty(logits, Criterion.ENTROPY), 0.0)
        assertEquals(1.0, softmax(doubleArrayOf(1000.0, -1000.0, 3.0)).sum(), 1e-12)
    }

    private fun doubles(json: Any?): DoubleArray = (json as List<*>).map(::vectorNumber).toDoubleArray()
}
