package ai.edgevariator.policy

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Assertions.fail
import org.junit.jupiter.api.DynamicContainer.dynamicContainer
import org.junit.jupiter.api.DynamicNode
import org.junit.jupiter.api.DynamicTest.dynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory
import java.io.File

/** The manifest of each shipped bundle (edge_variator/default/bundles/x/manifest.json), read as the app reads it. */
class ManifestTest {
    @TestFactory
    fun shippedBundles(): List<DynamicNode> {
        val bundles = TestFiles.bundles
        if (bundles.isEmpty()) {
            return listOf(dynamicTest("a shipped bundle exists") {
                fail<Unit>("no bundle under ${File(TestFiles.root, "edge_variator/default/bundles")}: run python scripts/ship_bundle.py")
            })
        }
        return bundles.map { bundle -> dynamicContainer(bundle.name, bundleTests(bundle)) }
    }

    private fun bundleTests(bundle: File): List<DynamicNode> {
        val raw = TestFiles.json(File(bundle, "manifest.json"))
        val manifest by lazy { Manifest.load(bundle) }
        val rawModel = raw["model"] as Map<*, *>
        val rawExits = raw["exits"] as Map<*, *>
        return listOf(
            dynamicTest("model dimensions and labels") {
                with(manifest.model) {
                    assertEquals(rawModel["layers"], layers.toLong())
                    assertEquals(rawModel["hidden"], hidden.toLong())
                    assertEquals(rawModel["vocab_size"], vocabSize.toLong())
                    assertEquals(rawModel["max_length"], maxLength.toLong())
                    assertEquals(rawModel["min_length"], minLength.toLong())
                    assertEquals(rawModel["pad_multiple"], padMultiple.toLong())
                    assertEquals(rawModel["pad_token_id"], padTokenId?.toLong())
                    assertEquals(rawModel["labels"], labels)
                }
            },
            dynamicTest("ratios and their layer methods") {
                val rawRatios = raw["ratios"] as Map<*, *>
                assertEquals(rawRatios.keys.map { (it as String).toInt() }.sorted(), manifest.ratios.keys.sorted())
                for ((ratio, methods) in manifest.ratios) {
                    assertEquals(rawRatios[ratio.toString()], methods)
                    assertEquals(manifest.model.layers, methods.size)
                    assertTrue(methods.all { it in manifest.methods })
                }
                assertEquals((raw["methods"] as Map<*, *>).keys, manifest.methods.keys)
            },
            dynamicTest("exits: after_layers, criterion, thresholds") {
                assertEquals(intsOf(rawExits["after_layers"]), manifest.exits.afterLayers)
                assertEquals(rawExits["criterion"], manifest.exits.criterion.wireName)
                val rawThresholds = thresholdsOf(rawExits["thresholds"])
                assertEquals(rawThresholds.keys, manifest.exits.thresholds.keys)
                for ((name, value) in rawThresholds) assertEquals(value, manifest.exits.thresholds.getValue(name), 1e-9, name)
                assertTrue(manifest.exits.afterLayers.all { "exit_$it" in manifest.methods })
            },
            dynamicTest("model.pte is the file the manifest names") {
                val rawProgram = (raw["files"] as Map<*, *>)["executorch"] as Map<*, *>
                assertEquals(rawProgram["path"], manifest.executorch.path)
                assertEquals(rawProgram["sha256"], manifest.executorch.sha256)
                assertEquals(rawProgram["bytes"], manifest.executorch.bytes)
                assertEquals(File(bundle, manifest.executorch.path), checkedProgram(bundle, manifest))
            },
            dynamicTest("its policy: the manifest's table, or the default one") {
                val policy = Policy.fromManifest(manifest)
                val ratios = manifest.ratios.keys.sorted()
                if (raw["policy"] == null) {
                    assertEquals(defaultPolicy(ratios, manifest.exits.thresholds), policy.table)
                } else {
                    assertEquals(PolicyTable.fromJson(raw["policy"]).rules, policy.table.rules)
                }
                val decision = policy.decide(DeviceState(battery = 1.0))
                assertTrue(decision.ratio in ratios)
                decision.thresholdName?.let { assertEquals(manifest.exits.thresholds.getValue(it), decision.threshold!!, 1e-9) }
            },
            dynamicTest("Android thermal status through its policy") {
                val policy = Policy.fromManifest(manifest)
                val defaultRules = listOf("default", "fair", "fair", "serious", "critical", "critical", "critical")
                for (status in 0..6) {
                    val decision = policy.decide(DeviceState(battery = 1.0, thermal = thermalFromAndroid(status)))
                    if (raw["policy"] == null) assertEquals(defaultRules[status], decision.rule, "status $status")
                    assertTrue(decision.ratio in manifest.ratios.keys)
                }
                assertThrows(DeviceStateException::class.java) { thermalFromAndroid(7) }
            },
            dynamicTest("its tokenizer folder loads and pads to the exported shapes") {
                assertTrue(manifest.tokenizerFiles.any { it == "tokenizer.json" || it == "vocab.txt" }, "${manifest.tokenizerFiles}")
                val tokenizer = Tokenizer.fromFolder(File(bundle, "tokenizer"), manifest.model)
                val encoding = tokenizer.encode("a gripping, beautifully acted film")
                assertEquals(0, encoding.length % manifest.model.padMultiple)
                assertTrue(encoding.length >= manifest.model.minLength)
                val long = tokenizer.encode(List(400) { "word" }.joinToString(" "))
                assertTrue(long.truncated)
                assertEquals(manifest.model.maxLength, long.length)
            },
        )
    }

    @Test
    fun aManifestMissingAFieldNamesIt() {
        val bundle = TestFiles.bundles.firstOrNull() ?: return fail("no shipped bundle")
        @Suppress("UNCHECKED_CAST")
        val raw = TestFiles.json(File(bundle, "manifest.json")) as MutableMap<String, Any?>
        (raw["model"] as MutableMap<String, Any?>).remove("max_length")
        val thrown = assertThrows(ManifestException::class.java) { Manifest.fromJson(raw) }
        assertTrue("model.max_length" in thrown.message!!, thrown.message)
    }

    @Test
    fun modelTokenizerNamesTheKindAndIsWordPieceWhenAbsent() {
        val bundle = TestFiles.bundles.firstOrNull() ?: return fail("no shipped bundle")
        @Suppress("UNCHECKED_CAST")
        val raw = TestFiles.json(File(bundle, "manifest.json")) as MutableMap<String, Any?>
        @Suppress("UNCHECKED_CAST")
        val model = raw["model"] as MutableMap<String, Any?>
        model.remove("tokenizer")
        assertEquals(TokenizerKind.WORDPIECE, Manifest.fromJson(raw).model.tokenizer, "bundles from before other families")
        for (kind in TokenizerKind.entries) {
            model["tokenizer"] = kind.wireName
            assertEquals(kind, Manifest.fromJson(raw).model.tokenizer)
        }
        model["tokenizer"] = "sentencepiece"
        val refused = assertThrows(ManifestException::class.java) { Manifest.fromJson(raw) }
        assertTrue("model.tokenizer" in refused.message!! && "sentencepiece" in refused.message!!, refused.message)
    }

    @Test
    fun aPolicyTableInTheManifestIsUsed() {
        val bundle = TestFiles.bundles.firstOrNull() ?: return fail("no shipped bundle")
        @Suppress("UNCHECKED_CAST")
        val raw = TestFiles.json(File(bundle, "manifest.json")) as MutableMap<String, Any?>
        raw["policy"] = mapOf("rules" to listOf(mapOf("name" to "always_k2", "when" to emptyMap<String, Any?>(), "ratio" to 2L, "threshold" to null)))
        val decision = Policy.fromManifest(Manifest.fromJson(raw)).decide(DeviceState(battery = 0.5))
        assertEquals(Decision(2, null, null, "always_k2", false), decision)
        raw["policy"] = mapOf("rules" to listOf(mapOf("name" to "k3", "when" to emptyMap<String, Any?>(), "ratio" to 3L, "threshold" to null)))
        assertThrows(PolicyException::class.java) { Policy.fromManifest(Manifest.fromJson(raw)) }
        assertNotNull(Manifest.fromJson(raw).policy)
    }
}
