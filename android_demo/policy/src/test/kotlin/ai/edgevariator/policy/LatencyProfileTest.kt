package ai.edgevariator.policy

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Assertions.fail
import org.junit.jupiter.api.Test
import java.io.File

/** The profile a phone writes: Python's statistics, call order and JSON format (profile.py, the schema). */
class LatencyProfileTest {
    @Test
    fun medianAndP90AreComputedAsInPython() {
        // statistics.median averages the middle two; p90 is sorted[min(n - 1, int(0.9 n))].
        assertEquals(Timing(2.0, 3.0), timing(listOf(3.0, 1.0, 2.0)))
        assertEquals(Timing(2.5, 4.0), timing(listOf(4.0, 1.0, 3.0, 2.0)))
        val twenty = (1..20).map { it.toDouble() }.shuffled(java.util.Random(7))
        assertEquals(Timing(10.5, 19.0), timing(twenty))
        assertEquals(Timing(5.0, 5.0), timing(listOf(5.0)))
    }

    @Test
    fun methodsTakeTurnsAndWarmupIsNotTimed() {
        val calls = ArrayList<String>()
        var clock = 0L
        val elapsed = mapOf("embed" to 1_000_000L, "layer_0_k1" to 3_000_000L)
        var pending = 0L
        val timings = measureLatency(
            methods = listOf("embed", "layer_0_k1"), lengths = listOf(16, 32), warmup = 1, repeats = 3,
            call = { method, length ->
                calls.add("$method@$length")
                pending = elapsed.getValue(method) * length / 16
            },
            nanoTime = { clock += pending; pending = 0; clock },
        )
        assertEquals(listOf("embed@16", "layer_0_k1@16").let { round -> List(4) { round }.flatten() }, calls.take(8))
        assertEquals(16, calls.size)
        assertEquals(Timing(1.0, 1.0), timings.getValue("embed").getValue(16))
        assertEquals(Timing(6.0, 6.0), timings.getValue("layer_0_k1").getValue(32))
    }

    @Test
    fun theJsonHasTheFormatProfileImportReads() {
        // The shipped bundle when there is one, else the small bundle of the shared vectors.
        val bundle = TestFiles.bundles.firstOrNull() ?: File(TestFiles.bundleVectors.parentFile, "bundle")
        val manifest = Manifest.load(bundle)
        val methods = manifest.methods.keys.toList()
        val lengths = listOf(16, 32)
        checkProfileLengths(manifest.model, lengths)
        val timings = methods.associateWith { lengths.associateWith { Timing(1.25, 1.5) } }
        val text = Json.write(latencyProfileJson(manifest, "Pixel 8 (Tensor G3)", "executorch-android 1.4.0", 3, 20, timings))
        val profile = Json.parse(text) as Map<*, *>
        assertEquals(PROFILE_FORMAT, profile["format"])
        assertEquals(2L, profile["version"])
        assertEquals(RUNTIME_EXECUTORCH, profile["runtime"], "which of the bundle's programs was timed")
        assertEquals("executorch-android 1.4.0", profile["runtime_version"])
        assertEquals(manifest.executorch.sha256, profile["program_sha256"])
        assertEquals(3L, profile["warmup"])
        assertEquals(20L, profile["repeats"])
        assertTrue("pte_sha256" !in profile, "version 1's field is gone")
        val byMethod = profile["methods"] as Map<*, *>
        assertEquals(methods.toSet(), byMethod.keys)
        for (rows in byMethod.values) {
            for ((length, row) in rows as Map<*, *>) {
                assertTrue((length as String).matches(Regex("[0-9]+")))
                assertEquals(mapOf("median_ms" to 1.25, "p90_ms" to 1.5), row)
            }
        }
        // The schema's latency_profile requires these; File keeps the schema's path honest.
        val schema = TestFiles.json(File(TestFiles.root, "edge_variator/runtime/manifest.schema.json"))
        val required = ((schema["\$defs"] as Map<*, *>)["latency_profile"] as Map<*, *>)["required"] as List<*>
        assertTrue(profile.keys.containsAll(required), "$required")
        // And the port's own check reads it back as a profile of this bundle's ExecuTorch program.
        val read = LatencyProfile.fromJson(profile, manifest, RUNTIME_EXECUTORCH)
        assertEquals(timings, read.timings)
        assertEquals(LatencyProfile(RUNTIME_EXECUTORCH, "executorch-android 1.4.0", "Pixel 8 (Tensor G3)", manifest.executorch.sha256, 3, 20, timings), read)
        val coreml = assertThrows(ProfileException::class.java) { LatencyProfile.fromJson(profile, manifest, RUNTIME_COREML) }
        assertTrue("executorch" in coreml.message!!, coreml.message)
    }

    @Test
    fun malformedProfilesAreRefusedNamingTheField() {
        val manifest = Manifest.load(File(TestFiles.bundleVectors.parentFile, "bundle"))
        val timings = manifest.methods.keys.associateWith { mapOf(16 to Timing(1.0, 2.0)) }

        // As read back from the text the app writes (the JSON reader's Longs and Doubles).
        @Suppress("UNCHECKED_CAST")
        fun written() = Json.parse(Json.write(latencyProfileJson(manifest, "a phone", "test", 1, 3, timings))) as MutableMap<String, Any?>
        val cases: List<Pair<String, (MutableMap<String, Any?>) -> Unit>> = listOf(
            "device" to { it.remove("device") },
            "runtime" to { it["runtime"] = "tflite" },
            "program_sha256" to { it["program_sha256"] = "ABC" },
            "repeats" to { it["repeats"] = 0L },
            "methods" to { it["methods"] = emptyMap<String, Any?>() },
            "'x'" to { it["methods"] = mapOf("embed" to mapOf("x" to mapOf("median_ms" to 1.0, "p90_ms" to 1.0))) },
            "median_ms" to { it["methods"] = mapOf("embed" to mapOf("16" to mapOf("median_ms" to -1.0, "p90_ms" to 1.0))) },
            "format" to { it["format"] = "something else" },
        )
        for ((mentions, edit) in cases) {
            val profile = written().also(edit)
            val refused = assertThrows(ProfileException::class.java, { LatencyProfile.fromJson(profile) }, mentions)
            assertTrue(mentions in refused.message!!, refused.message)
        }
        LatencyProfile.fromJson(written(), manifest)
    }

    @Test
    fun depthLatencyAddsEmbedLayersAndTheExitsOnTheWay() {
        val manifest = Manifest.load(TestFiles.bundles.firstOrNull() ?: return fail("no shipped bundle"))
        // Every layer 2 ms at k=1 and 1 ms at k=4, every exit 0.5 ms, embed 3 ms.
        val timings = manifest.methods.keys.associateWith { method ->
            val ms = when {
                method == "embed" -> 3.0
                method.startsWith("exit_") -> 0.5
                method.endsWith("_k1") -> 2.0
                else -> 1.0
            }
            mapOf(16 to Timing(ms, ms))
        }
        val layers = manifest.model.layers
        val exits = manifest.exits.afterLayers.toSet()
        val expected = (1..layers).map { depth -> 3.0 + 2.0 * depth + 0.5 * (0 until depth).count { it in exits } }
        assertEquals(expected, depthLatencyMs(manifest, timings, 1, 16))
        assertEquals(3.0 + layers * 1.0 + 0.5 * exits.size, depthLatencyMs(manifest, timings, 4, 16).last(), 1e-12)
        assertThrows(IllegalArgumentException::class.java) { depthLatencyMs(manifest, timings, 1, 32) }
    }

    @Test
    fun lengthsTheMethodsCannotTakeAreRefused() {
        val model = ModelInfo(2, 8, 100, 128, 16, 8, 0, listOf("a", "b"))
        checkProfileLengths(model, listOf(16, 64, 128))
        for (bad in listOf(listOf(8), listOf(20), listOf(136), emptyList())) {
            assertThrows(IllegalArgumentException::class.java) { checkProfileLengths(model, bad) }
        }
    }
}
