package ai.edgevariator.policy

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Assertions.fail
import org.junit.jupiter.api.DynamicContainer.dynamicContainer
import org.junit.jupiter.api.DynamicNode
import org.junit.jupiter.api.DynamicTest.dynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory
import java.io.File

/**
 * The manifest of each shipped bundle (edge_variator/default/bundles/x/manifest.json, schema 2), read
 * and its files checked as the app reads them; the contract's cases are BundleVectorsTest's.
 */
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
            dynamicTest("schema 2: its library version, export inputs and checksums") {
                assertEquals(Manifest.SCHEMA_VERSION.toLong(), raw["schema_version"])
                assertEquals(raw["library_version"], manifest.libraryVersion)
                assertEquals((raw["inputs"] as Map<*, *>)["export_key"], manifest.inputs.exportKey)
                assertEquals(raw["checksums"], manifest.checksums)
                val onDisk = bundle.walkTopDown().filter { it.isFile }.map { it.relativeTo(bundle).invariantSeparatorsPath }
                    .filter { it != "manifest.json" && !it.startsWith("$PROFILES_FOLDER/") }.toSortedSet()
                assertEquals(onDisk, manifest.checksums.keys.toSortedSet(), "every file but manifest.json and profiles/")
                assertTrue(manifest.tokenizerFiles.all { "tokenizer/$it" in manifest.checksums }, "${manifest.tokenizerFiles}")
            },
            dynamicTest("model.pte is the file the manifest names, and its checksum") {
                val rawProgram = (raw["files"] as Map<*, *>)["executorch"] as Map<*, *>
                assertEquals(rawProgram["path"], manifest.executorch.path)
                assertEquals(rawProgram["sha256"], manifest.executorch.sha256)
                assertEquals(rawProgram["bytes"], manifest.executorch.bytes)
                assertEquals(manifest.executorch.sha256, manifest.checksums[manifest.executorch.path])
                assertEquals(File(bundle, manifest.executorch.path), manifest.programFile(bundle))
                assertEquals(manifest.executorch, manifest.program(RUNTIME_EXECUTORCH))
            },
            dynamicTest("model.mlpackage, when there is one: its digest is that of its files' sha256 lines") {
                val coreml = manifest.coreml ?: return@dynamicTest
                assertEquals(((raw["files"] as Map<*, *>)["coreml"] as Map<*, *>)["sha256"], coreml.sha256)
                val prefix = "${coreml.path}/"
                val lines = manifest.checksums.filterKeys { it.startsWith(prefix) }.toSortedMap()
                    .entries.joinToString("") { (path, sha256) -> "$sha256  ${path.removePrefix(prefix)}\n" }
                val digest = java.security.MessageDigest.getInstance("SHA-256").digest(lines.toByteArray())
                assertEquals(coreml.sha256, digest.joinToString("") { "%02x".format(it) })
            },
            dynamicTest("its policy: the manifest's table") {
                val policy = Policy.fromManifest(manifest)
                val ratios = manifest.ratios.keys.sorted()
                assertEquals(PolicyTable.fromJson(raw["policy"]), manifest.policy)
                assertEquals(manifest.policy.rules, policy.table.rules)
                val decision = policy.decide(DeviceState(battery = 1.0))
                assertTrue(decision.ratio in ratios)
                decision.thresholdName?.let { assertEquals(manifest.exits.thresholds.getValue(it), decision.threshold!!, 1e-9) }
            },
            dynamicTest("Android thermal status through its policy") {
                val policy = Policy.fromManifest(manifest)
                // The rules export writes (runtime/policy.py's default_policy), when the table is that one.
                val exported = listOf("critical", "low_power", "serious", "battery_low", "fair", "battery_half", "default")
                val rules = listOf("default", "fair", "fair", "serious", "critical", "critical", "critical")
                for (status in 0..6) {
                    val decision = policy.decide(DeviceState(battery = 1.0, thermal = thermalFromAndroid(status)))
                    if (manifest.policy.rules.map { it.name } == exported) assertEquals(rules[status], decision.rule, "status $status")
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
    fun aPolicyTableInTheManifestIsUsedAndOneItCannotCarryOutIsRefusedAtParse() {
        val bundle = TestFiles.bundles.firstOrNull() ?: return fail("no shipped bundle")
        @Suppress("UNCHECKED_CAST")
        val raw = TestFiles.json(File(bundle, "manifest.json")) as MutableMap<String, Any?>
        raw["policy"] = mapOf("rules" to listOf(mapOf("name" to "always_k2", "when" to emptyMap<String, Any?>(), "ratio" to 2L, "threshold" to null)))
        val decision = Policy.fromManifest(Manifest.fromJson(raw)).decide(DeviceState(battery = 0.5))
        assertEquals(Decision(2, null, null, "always_k2", false), decision)
        raw["policy"] = mapOf("rules" to listOf(mapOf("name" to "k3", "when" to emptyMap<String, Any?>(), "ratio" to 3L, "threshold" to null)))
        val ratio = assertThrows(ManifestException::class.java) { Manifest.fromJson(raw) }
        assertTrue("ratio 3" in ratio.message!!, ratio.message)
        raw["policy"] = mapOf("rules" to listOf(mapOf("name" to "x", "when" to emptyMap<String, Any?>(), "ratio" to 1L, "threshold" to "drop_9")))
        val threshold = assertThrows(ManifestException::class.java) { Manifest.fromJson(raw) }
        assertTrue("drop_9" in threshold.message!!, threshold.message)
    }

    @Test
    fun aManifestWithoutAPolicyTableIsRefused() {
        val bundle = TestFiles.bundles.firstOrNull() ?: return fail("no shipped bundle")
        @Suppress("UNCHECKED_CAST")
        val raw = TestFiles.json(File(bundle, "manifest.json")) as MutableMap<String, Any?>
        raw["policy"] = null
        val nullTable = assertThrows(ManifestException::class.java) { Manifest.fromJson(raw) }
        assertTrue("no policy table" in nullTable.message!!, nullTable.message)
        raw.remove("policy")
        val missing = assertThrows(ManifestException::class.java) { Manifest.fromJson(raw) }
        assertTrue("no policy table" in missing.message!!, missing.message)
        raw["policy"] = emptyMap<String, Any?>()
        val empty = assertThrows(ManifestException::class.java) { Manifest.fromJson(raw) }
        assertTrue("policy" in empty.message!!, empty.message)
    }

    @Test
    fun aSchema1ManifestIsRefusedAskingForAnotherExport() {
        val bundle = TestFiles.bundles.firstOrNull() ?: return fail("no shipped bundle")
        @Suppress("UNCHECKED_CAST")
        val raw = TestFiles.json(File(bundle, "manifest.json")) as MutableMap<String, Any?>
        for (version in listOf(1L, 3L, "2", null)) {
            raw["schema_version"] = version
            val refused = assertThrows(ManifestException::class.java) { Manifest.fromJson(raw) }
            assertTrue("export the bundle again" in refused.message!!, refused.message)
        }
    }

    @Test
    fun aManifestWhoseChecksumsOmitTheProgramIsRefused() {
        val bundle = TestFiles.bundles.firstOrNull() ?: return fail("no shipped bundle")
        @Suppress("UNCHECKED_CAST")
        val raw = TestFiles.json(File(bundle, "manifest.json")) as MutableMap<String, Any?>
        raw["checksums"] = (raw["checksums"] as Map<*, *>).filterKeys { it != "model.pte" }
        val refused = assertThrows(ManifestException::class.java) { Manifest.fromJson(raw) }
        assertTrue("checksums" in refused.message!! && "model.pte" in refused.message!!, refused.message)
        raw["checksums"] = mapOf("model.pte" to "not a sha256")
        val bad = assertThrows(ManifestException::class.java) { Manifest.fromJson(raw) }
        assertTrue("manifest.checksums.model.pte" in bad.message!!, bad.message)
    }
}
