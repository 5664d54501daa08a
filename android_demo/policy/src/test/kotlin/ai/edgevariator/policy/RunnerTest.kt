package ai.edgevariator.policy

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertSame
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.DynamicNode
import org.junit.jupiter.api.DynamicTest.dynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory
import java.io.File

/**
 * A stand-in for ExecuTorch that replays recorded exit logits. The hidden state counts the layers
 * run (embed gives zeros, each layer adds one), so a layer or an exit called out of turn, or on
 * another call's hidden state, is caught; every call and its inputs are recorded.
 */
class ReplayMethods(
    override val names: Set<String>,
    private val hidden: Int,
    private val logits: Map<Int, DoubleArray>,  // exit index -> its recorded logits; [0, 0] for the others
    private val checkTurns: Boolean = true,  // false for the profiler, which feeds random hidden states
    private val backendsOf: (String) -> List<String> = { emptyList() },
) : Methods {
    override val runtime = "replay"
    val loaded = ArrayList<String>()
    val calls = ArrayList<String>()
    val inputs = ArrayList<List<MethodInput>>()
    var closed = false

    override fun load(name: String) {
        if (name !in names) throw MethodException(name, "no method $name")
        assertTrue(calls.isEmpty(), "load($name) after a call: every method is loaded before the first run")
        loaded.add(name)
    }

    override fun run(name: String, inputs: List<MethodInput>): FloatArray {
        if (name !in names) throw MethodException(name, "no method $name")
        calls.add(name)
        this.inputs.add(inputs)
        if (name == "embed") return FloatArray((inputs.single() as MethodInput.Int64).count * hidden)
        val state = inputs[0] as MethodInput.Float32
        val mask = inputs[1] as MethodInput.Int64
        assertArrayEquals(longArrayOf(1, mask.shape[1], hidden.toLong()), state.shape, "$name: hidden shape")
        val layersRun = state.values[0]
        if (checkTurns) assertTrue(state.values.all { it == layersRun }, "$name: a hidden state that no layer made")
        LAYER.matchEntire(name)?.let { match ->
            if (checkTurns) assertEquals(match.groupValues[1].toFloat(), layersRun, "$name after $layersRun layers")
            return FloatArray(state.values.size) { state.values[it] + 1f }
        }
        val exit = name.removePrefix("exit_").toInt()
        if (checkTurns) assertEquals(exit + 1f, layersRun, "$name after $layersRun layers")
        return (logits[exit] ?: doubleArrayOf(0.0, 0.0)).map { it.toFloat() }.toFloatArray()
    }

    override fun backends(name: String): List<String> = backendsOf(name)

    override fun close() {
        closed = true
    }

    companion object {
        private val LAYER = Regex("layer_(\\d+)_k\\d+")
    }
}

class RunnerTest {
    private val text = "a charming and affecting journey"
    private val exitVectors = TestFiles.json(TestFiles.exitVectors)

    /** A valid manifest for [layers] layers with exits after [afterLayers], checked by Manifest.fromJson. */
    private fun manifest(
        layers: Int,
        afterLayers: List<Int> = (0 until layers).toList(),
        criterion: String = "entropy",
        ratios: List<Int> = listOf(1, 2, 4, 8),
    ): Manifest {
        fun tensor(name: String, dtype: String, vararg shape: Any) = mapOf("name" to name, "dtype" to dtype, "shape" to shape.toList())
        val hidden = tensor("hidden", "float32", 1L, "seq", HIDDEN.toLong())
        val mask = tensor("attention_mask", "int64", 1L, "seq")
        val methods = linkedMapOf<String, Any?>(
            "embed" to mapOf("inputs" to listOf(tensor("input_ids", "int64", 1L, "seq")), "outputs" to listOf(hidden)),
        )
        for (k in ratios) for (i in 0 until layers) {
            methods["layer_${i}_k$k"] = mapOf("inputs" to listOf(hidden, mask), "outputs" to listOf(hidden))
        }
        for (i in afterLayers) {
            methods["exit_$i"] = mapOf("inputs" to listOf(hidden, mask), "outputs" to listOf(tensor("logits", "float32", 1L, 2L)))
        }
        val zeros = "0".repeat(64)
        return Manifest.fromJson(mapOf(
            "schema_version" to 2L,
            "library_version" to "0.1.0",
            "backbone" to mapOf("id" to "replay", "sha256" to zeros),
            "model" to mapOf(
                "layers" to layers.toLong(), "hidden" to HIDDEN.toLong(), "vocab_size" to 30522L, "max_length" to 128L,
                "min_length" to 16L, "pad_multiple" to 8L, "pad_token_id" to 0L, "labels" to listOf("negative", "positive"),
            ),
            "methods" to methods,
            "ratios" to ratios.associate { k -> k.toString() to (0 until layers).map { "layer_${it}_k$k" } },
            "exits" to mapOf(
                "after_layers" to afterLayers.map { it.toLong() }, "criterion" to criterion,
                "thresholds" to mapOf("drop_1" to 0.3, "drop_2" to 0.5),
            ),
            "files" to mapOf(
                "executorch" to mapOf("path" to "model.pte", "sha256" to zeros, "bytes" to 1L),
                "tokenizer" to listOf("tokenizer.json"),
            ),
            "checksums" to mapOf("model.pte" to zeros, "tokenizer/tokenizer.json" to zeros),
            "inputs" to mapOf("export_key" to zeros),
            "policy" to mapOf(
                "rules" to listOf(mapOf("name" to "default", "when" to emptyMap<String, Any?>(), "ratio" to 1L, "threshold" to "drop_1")),
            ),
        ))
    }

    private fun decision(ratio: Int, threshold: Double?) =
        Decision(ratio, threshold, threshold?.let { "test" }, rule = "test", budgetApplied = false)

    private fun replay(manifest: Manifest, logits: Map<Int, DoubleArray> = emptyMap(), checkTurns: Boolean = true) =
        ReplayMethods(manifest.methods.keys, manifest.model.hidden, logits, checkTurns)

    /** A clock that moves 1 ms each time it is read. */
    private fun clock(): () -> Long {
        var now = 0L
        return { now += 1_000_000L; now }
    }

    private val shippedBundle: File by lazy {
        TestFiles.bundles.firstOrNull()
            ?: throw AssertionError("no bundle under edge_variator/default/bundles: run python scripts/ship_bundle.py")
    }

    /** What a run that stops after [exitLayer] layers calls, in order. */
    private fun expectedCalls(layerMethods: List<String>, afterLayers: List<Int>, exitLayer: Int): List<String> =
        listOf("embed") + (0 until exitLayer).flatMap { index ->
            listOf(layerMethods[index]) + if (index in afterLayers) listOf("exit_$index") else emptyList()
        }

    @TestFactory
    fun replaysTheExitVectorsAtEachRatio(): List<DynamicNode> = (exitVectors["runs"] as List<*>).flatMap { item ->
        val case = item as Map<*, *>
        val layers = (case["layers"] as Long).toInt()
        val afterLayers = intsOf(case["after_layers"])
        val criterion = case["criterion"] as String
        val rows = (case["logits"] as List<*>).map { row -> (row as List<*>).map(::vectorNumber).toDoubleArray() }
        val logits = afterLayers.zip(rows).toMap()  // one row per exit, in after_layers order
        val threshold = case["threshold"]?.let(::vectorNumber)
        val expect = case["expect"] as Map<*, *>
        listOf(1, 2, 4, 8).map { ratio ->
            dynamicTest("$criterion: ${case["name"]}, k=$ratio") {
                val manifest = manifest(layers, afterLayers, criterion)
                val methods = replay(manifest, logits)
                val runner = BundleRunner(manifest, tokenizer, methods, nanoTime = clock())
                assertEquals(manifest.methods.keys.toList(), methods.loaded, "every method loaded up front")
                val result = runner.run(text, decision(ratio, threshold))
                val exitLayer = (expect["exit_layer"] as Long).toInt()
                assertEquals(exitLayer, result.exitLayer, "exit_layer")
                assertEquals(layers, result.layers, "layers")
                assertEquals((expect["label"] as Long).toInt(), result.labelIndex, "label")
                assertEquals(manifest.model.labels[result.labelIndex], result.label, "label name")
                assertEquals(vectorNumber(expect["score"]), result.uncertainty, 1e-6, "score")
                assertEquals(1.0, result.probabilities.sum(), 1e-9, "probabilities")
                val expected = expectedCalls(manifest.layerMethods(ratio), afterLayers, exitLayer)
                assertEquals(expected, methods.calls, "methods called: the ratio's layers, the exits up to the one that answered")
                assertTrue(methods.calls.filter { it.startsWith("layer_") }.all { it.endsWith("_k$ratio") }, "only k=$ratio layers")
                assertEquals(expected, result.stepMs.keys.toList(), "steps timed, in call order")
                assertEquals(expected.size.toDouble(), result.totalMs, 1e-9, "1 ms a call on the test clock")
                assertEquals(16, result.tokens)
                assertFalse(result.truncated)
            }
        }
    }

    @Test
    fun stopsAtTheFirstConfidentExitAndRunsEveryLayerWithoutAThreshold() {
        val manifest = manifest(6)
        val confident = mapOf(1 to doubleArrayOf(0.0, 8.0), 3 to doubleArrayOf(8.0, 0.0))  // entropy ~0.003 at exits 1 and 3
        val early = replay(manifest, confident)
        val result = BundleRunner(manifest, tokenizer, early).run(text, decision(2, 0.3))
        assertEquals(2, result.exitLayer)
        assertEquals("positive", result.label)
        assertEquals(listOf("embed", "layer_0_k2", "exit_0", "layer_1_k2", "exit_1"), early.calls)

        val never = replay(manifest, confident)
        val full = BundleRunner(manifest, tokenizer, never).run(text, decision(2, null))
        assertEquals(6, full.exitLayer, "no threshold: every layer runs")
        assertEquals(expectedCalls(manifest.layerMethods(2), (0 until 6).toList(), 6), never.calls)
        assertEquals("negative", full.label, "the last exit answers, whatever the earlier ones said")
        assertEquals(0.6931, full.uncertainty, 1e-4, "the last exit's [0, 0]: ln 2")
    }

    @Test
    fun runsTheShippedBundleAtTheRatioThePolicyDecides() {
        val runner = BundleRunner.open(shippedBundle) { program ->
            assertEquals(File(shippedBundle, "model.pte").canonicalFile, program.canonicalFile)
            replay(Manifest.load(shippedBundle), mapOf(2 to doubleArrayOf(0.0, 5.0)))
        }
        val manifest = runner.manifest
        val methods = runner.methods as ReplayMethods
        val policy = Policy.fromManifest(manifest)
        val encoding = Tokenizer.fromFolder(File(shippedBundle, "tokenizer"), manifest.model).encode(text)
        val seen = HashSet<Int>()
        for (state in listOf(DeviceState(1.0), DeviceState(0.4), DeviceState(1.0, thermal = Thermal.SERIOUS), DeviceState(1.0, lowPower = true))) {
            val decision = policy.decide(state)
            seen.add(decision.ratio)
            methods.calls.clear()
            methods.inputs.clear()
            val result = runner.run(text, decision)
            val layerMethods = manifest.ratios.getValue(decision.ratio)
            assertEquals(3, result.exitLayer, "$state: exit 2 is the first confident one (entropy 0.04)")
            assertEquals(expectedCalls(layerMethods, manifest.exits.afterLayers, 3), methods.calls, "$state at k=${decision.ratio}")
            assertArrayEquals(encoding.inputIds, (methods.inputs[0].single() as MethodInput.Int64).values, "embed takes the token ids")
            assertArrayEquals(longArrayOf(1, encoding.length.toLong()), methods.inputs[0].single().shape)
            for (call in methods.inputs.drop(1)) {
                assertArrayEquals(encoding.attentionMask, (call[1] as MethodInput.Int64).values, "every layer and exit takes the mask")
            }
        }
        assertEquals(setOf(1, 2, 4, 8), seen, "the states cover every ratio of the exported table")
        assertEquals(shippedBundle, runner.bundleDir)
        runner.close()
        assertTrue(methods.closed)
    }

    @Test
    fun decidesAtTheTextsPaddedLengthAfterTokenizing() {
        val runner = BundleRunner.open(shippedBundle) { replay(Manifest.load(shippedBundle), mapOf(2 to doubleArrayOf(0.0, 5.0))) }
        val manifest = runner.manifest
        // k = 1 is fastest on 16 tokens, k = 4 from there on: battery_low asks for k = 4 at both.
        val latency = mapOf(
            16 to mapOf(1 to 1.0, 2 to 2.0, 4 to 3.0, 8 to 4.0),
            manifest.model.maxLength to mapOf(1 to 4.0, 2 to 3.0, 4 to 2.0, 8 to 2.0),
        )
        val policy = Policy.fromManifest(manifest, manifest.policy.copy(latencyMs = latency))
        val low = DeviceState(battery = 0.1)
        val short = runner.run("good", low, policy)
        assertEquals(16, short.tokens)
        assertEquals(1, short.decision.ratio, "on 16 tokens k = 1 is the fastest of those no larger than 4")
        assertTrue(short.decision.lengthApplied)
        val long = runner.run(List(40) { "a long review of a film" }.joinToString(" "), low, policy)
        assertTrue(long.tokens > 16, "the long text pads past 16 (${long.tokens})")
        assertEquals(4, long.decision.ratio, "past 16 tokens the longest row, where k = 4 is faster than 1 and 2")
        assertFalse(long.decision.lengthApplied)
        assertEquals("battery_low", policy.activeRule)
        assertThrows(TextException::class.java) { runner.run("", DeviceState(battery = 1.0), policy) }
        assertEquals("battery_low", policy.activeRule, "an empty text is refused before the policy decides")
        runner.close()
    }

    @Test
    fun refusesARatioTheBundleLacksBeforeAnyCall() {
        val manifest = manifest(3, ratios = listOf(1, 2))
        val methods = replay(manifest)
        val error = assertThrows(ManifestException::class.java) { BundleRunner(manifest, tokenizer, methods).run(text, decision(8, 0.3)) }
        assertTrue("no ratio 8" in error.message!!, error.message)
        assertEquals(emptyList<String>(), methods.calls)
    }

    @Test
    fun refusesALayerOrExitMethodMissingFromTheManifest() {
        val full = manifest(6)
        for (missing in listOf("layer_3_k2", "exit_4", "embed")) {
            val manifest = full.copy(methods = full.methods - missing)  // as a hand-made Manifest could be
            val methods = replay(full)  // the program still has it: the manifest is what is checked
            val runner = BundleRunner(manifest, tokenizer, methods)
            val error = assertThrows(ManifestException::class.java) { runner.run(text, decision(2, 0.3)) }
            assertTrue(missing in error.message!!, error.message)
            assertEquals(emptyList<String>(), methods.calls, "$missing: refused before any call")
        }
        // Only runs that call it are refused.
        val withoutK2Layer = BundleRunner(full.copy(methods = full.methods - "layer_3_k2"), tokenizer, replay(full))
        assertEquals(6, withoutK2Layer.run(text, decision(4, null)).exitLayer)
    }

    @Test
    fun refusesABundleWithoutAnExitAfterItsLastLayer() {
        val full = manifest(6)
        val manifest = full.copy(exits = full.exits.copy(afterLayers = listOf(0, 1, 2, 3, 4)))
        val methods = replay(full)
        val error = assertThrows(ManifestException::class.java) { BundleRunner(manifest, tokenizer, methods).run(text, decision(1, 0.3)) }
        assertTrue("last layer (5)" in error.message!!, error.message)
        assertEquals(emptyList<String>(), methods.calls)
    }

    @Test
    fun refusesAProgramWithoutAMethodTheManifestDescribes() {
        val manifest = manifest(6)
        val lacking = ReplayMethods(manifest.methods.keys - "exit_3", HIDDEN, emptyMap())
        val error = assertThrows(ManifestException::class.java) { BundleRunner(manifest, tokenizer, lacking) }
        assertTrue("exit_3" in error.message!!, error.message)
        assertEquals(emptyList<String>(), lacking.loaded, "nothing loaded")

        // open() closes what its loader opened when the runner cannot be made.
        var opened: ReplayMethods? = null
        assertThrows(ManifestException::class.java) {
            BundleRunner.open(shippedBundle) { _ ->
                val shipped = Manifest.load(shippedBundle)
                ReplayMethods(shipped.methods.keys - "embed", shipped.model.hidden, emptyMap()).also { opened = it }
            }
        }
        assertTrue(opened!!.closed)
    }

    @Test
    fun refusesOutputsOfTheWrongSizeAndPassesMethodErrorsOn() {
        val manifest = manifest(2)
        val threeLogits = ReplayMethods(manifest.methods.keys, HIDDEN, mapOf(0 to doubleArrayOf(1.0, 2.0, 3.0)))
        val error = assertThrows(MethodException::class.java) { BundleRunner(manifest, tokenizer, threeLogits).run(text, decision(1, 0.3)) }
        assertEquals("exit_0", error.method)
        assertTrue("3 values, not the 2" in error.message!!, error.message)

        val wrongWidth = ReplayMethods(manifest.methods.keys, HIDDEN + 1, emptyMap())
        assertEquals("embed", assertThrows(MethodException::class.java) {
            BundleRunner(manifest, tokenizer, wrongWidth).run(text, decision(1, 0.3))
        }.method)

        val failing = object : Methods by replay(manifest) {
            override fun run(name: String, inputs: List<MethodInput>): FloatArray = throw MethodException(name, "out of memory")
        }
        assertEquals("out of memory", assertThrows(MethodException::class.java) {
            BundleRunner(manifest, tokenizer, failing).run(text, decision(1, 0.3))
        }.message)
    }

    @Test
    fun refusesAnEmptyTextBeforeAnyCall() {
        val manifest = manifest(2)
        val methods = replay(manifest)
        assertThrows(TextException::class.java) { BundleRunner(manifest, tokenizer, methods).run(" \n ", decision(1, 0.3)) }
        assertEquals(emptyList<String>(), methods.calls)
    }

    @Test
    fun profileTimesEveryMethodAtEachLengthOnInputsMadeOncePerLength() {
        val manifest = manifest(2, afterLayers = listOf(1))
        val methods = replay(manifest, checkTurns = false)
        val runner = BundleRunner(manifest, tokenizer, methods, nanoTime = clock())
        val lengthsBegun = ArrayList<Int>()
        val timings = runner.profile(listOf(16, 32), warmup = 1, repeats = 2) { lengthsBegun.add(it) }
        assertEquals(listOf(16, 32), lengthsBegun)
        assertEquals(manifest.methods.keys, timings.keys)
        for ((method, byLength) in timings) {
            assertEquals(setOf(16, 32), byLength.keys, method)
            assertEquals(Timing(1.0, 1.0), byLength.getValue(16), "$method: 1 ms a call on the test clock")
            assertEquals(6, methods.calls.count { it == method }, "$method: (1 warm-up + 2 timed) x 2 lengths")
        }
        val embedInputs = methods.inputs.filterIndexed { index, _ -> methods.calls[index] == "embed" }
        assertEquals(listOf(16L, 16L, 16L, 32L, 32L, 32L), embedInputs.map { it.single().shape[1] })
        assertTrue(embedInputs.all { (it.single() as MethodInput.Int64).values.all { id -> id == 1000L } })
        val layerInputs = methods.inputs.filterIndexed { index, _ -> methods.calls[index] == "layer_0_k1" }
        assertSame(layerInputs[0], layerInputs[2], "made once per length")
        val states = (layerInputs[0][0] as MethodInput.Float32).values
        assertTrue(states.toSet().size > states.size / 2, "random hidden states")
        assertTrue((layerInputs[0][1] as MethodInput.Int64).values.all { it == 1L }, "every position a real token")
        assertEquals(4.0, depthLatencyMs(manifest, timings, 1, 32).last(), 1e-9, "embed + 2 layers + exit_1")

        val before = methods.calls.size
        assertThrows(IllegalArgumentException::class.java) { runner.profile(listOf(20), 1, 2) }
        assertThrows(IllegalArgumentException::class.java) { runner.profile(listOf(16), 1, 0) }
        assertEquals(before, methods.calls.size, "bad lengths or rounds are refused before any call")
    }

    @Test
    fun backendsAreThoseOfEveryMethodOnce() {
        val manifest = manifest(2)
        val methods = ReplayMethods(manifest.methods.keys, HIDDEN, emptyMap(), backendsOf = { name ->
            if (name.startsWith("layer_")) listOf("XnnpackBackend") else if (name == "embed") listOf("CoreMLBackend", "XnnpackBackend") else emptyList()
        })
        assertEquals(listOf("CoreMLBackend", "XnnpackBackend"), BundleRunner(manifest, tokenizer, methods).backends)
    }

    @Test
    fun inputsMustFillTheirShapeAndErrorCodesHaveNames() {
        assertThrows(IllegalArgumentException::class.java) { MethodInput.Int64(LongArray(15), longArrayOf(1, 16)) }
        assertThrows(IllegalArgumentException::class.java) { MethodInput.Float32(FloatArray(16 * 4), longArrayOf(1, 16, 3)) }
        assertEquals(64, MethodInput.Float32(FloatArray(64), longArrayOf(1, 16, 4)).count)
        assertEquals("InvalidProgram", executorchErrorName(0x23))
        assertEquals("OperatorMissing", executorchErrorName(0x14))
        assertEquals("error 0x99", executorchErrorName(0x99))
    }

    companion object {
        const val HIDDEN = 4

        /** The repository's tokenizer at the synthetic manifests' lengths (128 max, 16 min, multiples of 8). */
        val tokenizer: Tokenizer by lazy {
            Tokenizer.fromTokenizerJson(
                TestFiles.defaultTokenizerJson.readText(),
                ModelInfo(2, HIDDEN, 30522, 128, 16, 8, 0, listOf("negative", "positive")),
            )
        }
    }
}
