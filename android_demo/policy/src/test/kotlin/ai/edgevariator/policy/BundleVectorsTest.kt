package ai.edgevariator.policy

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.DynamicNode
import org.junit.jupiter.api.DynamicTest.dynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory
import org.junit.jupiter.api.io.TempDir
import java.io.File
import java.nio.file.Files

/**
 * tests/vectors/bundle.json and its small schema-2 bundle, tests/vectors/bundle/
 * (scripts/bundle_vectors.py): the bundle contract of docs/BUNDLE.md as cases Python, this port and
 * the Swift one decide alike. A refused case must be refused (ManifestException, ProfileException or
 * PolicyException) with a message holding its "mentions" word; an accepted one must pass. Each list
 * prints its count, e.g. "bundle manifest_cases: 7/7".
 */
class BundleVectorsTest {
    private val vectors = TestFiles.json(TestFiles.bundleVectors)
    private val fixture = File(TestFiles.bundleVectors.parentFile, vectors["bundle"] as String)
    private val manifest by lazy { Manifest.load(fixture) }

    private val kinds: Map<String, (Map<*, *>) -> String?> = linkedMapOf(
        "manifest_cases" to ::manifestCase,
        "file_cases" to ::fileCase,
        "profile_cases" to ::profileCase,
        "calibrated_policy_cases" to ::calibratedPolicyCase,
    )

    @TestFactory
    fun everyCaseIsDecidedAsPythonDecidesIt(): List<DynamicNode> = kinds.map { (kind, decide) ->
        dynamicTest("$kind: every case refused or accepted as in Python") {
            val cases = (vectors[kind] as List<*>).map { it as Map<*, *> }
            val mismatches = cases.mapNotNull { case ->
                val problem = try {
                    decide(case)
                } catch (error: AssertionError) {
                    error.message
                }
                problem?.let { "${case["name"]}: $it" }
            }
            val passed = cases.size - mismatches.size
            println("bundle $kind: $passed/${cases.size}")
            assertEquals(cases.size, passed, "$kind: $passed/${cases.size} cases hold; the others:\n" + mismatches.joinToString("\n"))
        }
    } + dynamicTest("device_files: the profile and calibrated policy file names") {
        val cases = (vectors["device_files"] as List<*>).map { it as Map<*, *> }
        val mismatches = cases.mapNotNull { case ->
            val device = case["device"] as String
            val expected = case["file"] as String
            val profile = profileFile(fixture, RUNTIME_EXECUTORCH, device)
            val policy = calibratedPolicyFile(fixture, RUNTIME_EXECUTORCH, device)
            val expectedPolicy = expected.removeSuffix(".json") + ".policy.json"
            when {
                profile.name != expected -> "${Json.write(device, 0).trim()}: ${profile.name}, not $expected"
                profile.parentFile != File(fixture, "profiles/executorch") -> "${profile.name} lies in ${profile.parentFile}"
                policy != File(profile.parentFile, expectedPolicy) -> "${Json.write(device, 0).trim()}: $policy, not $expectedPolicy beside the profile"
                else -> null
            }
        }
        val passed = cases.size - mismatches.size
        println("bundle device_files: $passed/${cases.size}")
        assertEquals(cases.size, passed, mismatches.joinToString("\n"))
    }

    @Test
    fun everyListOfCasesInTheVectorsIsRun() {
        val lists = vectors.keys.map { it as String }.filter { it.endsWith("_cases") }
        assertEquals(lists.sorted(), kinds.keys.sorted(), "a list of cases this test does not know")
        for (kind in lists) {
            val cases = (vectors[kind] as List<*>).map { it as Map<*, *> }
            assertTrue(cases.any { it["refused"] == true }, "$kind refuses something")
        }
    }

    @Test
    fun theFixtureIsASchema2BundleWithItsTable() {
        val raw = TestFiles.json(File(fixture, "manifest.json"))
        assertEquals(Manifest.SCHEMA_VERSION, manifest.schemaVersion)
        assertEquals(raw["library_version"], manifest.libraryVersion)
        assertEquals((raw["inputs"] as Map<*, *>)["export_key"], manifest.inputs.exportKey)
        assertEquals(raw["inputs"], manifest.inputs.values)
        assertEquals(raw["checksums"], manifest.checksums)
        assertEquals(sha256Hex(File(fixture, "model.pte")), manifest.checksums.getValue("model.pte"))
        assertNull(manifest.coreml)
        // The table export wrote (Python's default_policy for ratios 1 and 2): every rule asks for the
        // largest ratio the bundle has that is no larger than its own, and the port reads it rule by rule.
        assertEquals(PolicyTable.fromJson(raw["policy"]), manifest.policy)
        assertEquals(listOf(2, 2, 2, 2, 2, 2, 1), manifest.policy.rules.map { it.ratio })
        assertEquals(manifest.policy, Policy.fromManifest(manifest).table)
    }

    @Test
    fun aCalibratedPolicyIsFoundBesideItsProfileAndUsed(@TempDir folder: File) {
        val bundle = File(folder, "bundle").also { fixture.copyRecursively(it) }
        val device = "Pixel 8 (Tensor G3)"
        assertNull(CalibratedPolicy.forDevice(bundle, manifest, device), "no profiles/: the manifest's table")
        val accepted = (vectors["calibrated_policy_cases"] as List<*>).map { it as Map<*, *> }.first { it["refused"] == false }
        val file = calibratedPolicyFile(bundle, RUNTIME_EXECUTORCH, device)
        file.parentFile.mkdirs()
        file.writeText(Json.write(accepted["document"]))
        val calibrated = CalibratedPolicy.forDevice(bundle, Manifest.load(bundle), device)!!
        assertEquals(device, calibrated.device)
        assertEquals(mapOf("default" to 20.0), calibrated.budgets)
        assertEquals(2, Policy.fromCalibrated(manifest, calibrated).decide(DeviceState(battery = 1.0)).ratio)
        assertEquals(1, Policy.fromManifest(manifest).decide(DeviceState(battery = 1.0)).ratio, "the manifest's table")
        file.writeText("{\"format\": ")
        val refused = assertThrows(ProfileException::class.java) { CalibratedPolicy.forDevice(bundle, manifest, device) }
        assertTrue("cannot read" in refused.message!!, refused.message)
    }

    /** A copy of the fixture bundle in a fresh folder, handed to [use], then removed. */
    private fun <T> withCopy(use: (File) -> T): T {
        val folder = Files.createTempDirectory("bundle-vectors").toFile()
        try {
            val copy = File(folder, "bundle")
            fixture.copyRecursively(copy)
            return use(copy)
        } finally {
            folder.deleteRecursively()
        }
    }

    private fun manifestCase(case: Map<*, *>): String? = withCopy { copy ->
        val raw = mutableJson(TestFiles.json(File(copy, "manifest.json")))
        for (edit in case["edits"] as List<*>) applyEdit(raw, edit as Map<*, *>)
        File(copy, "manifest.json").writeText(Json.write(raw))
        holds(case) { Manifest.load(copy) }
    }

    private fun fileCase(case: Map<*, *>): String? = withCopy { copy ->
        val target = File(copy, case["path"] as String)
        when (val how = case["how"]) {
            "append" -> target.appendBytes("altered\n".toByteArray())
            "truncate" -> target.writeBytes(target.readBytes().copyOf((target.length() / 2).toInt()))
            "delete" -> check(target.delete()) { "cannot delete $target" }
            else -> throw AssertionError("unknown \"how\": $how")
        }
        holds(case) { Manifest.load(copy) }
    }

    private fun profileCase(case: Map<*, *>): String? =
        holds(case) { LatencyProfile.fromJson(case["profile"], manifest, case["runtime"] as String) }

    private fun calibratedPolicyCase(case: Map<*, *>): String? {
        var calibrated: CalibratedPolicy? = null
        holds(case) { calibrated = CalibratedPolicy.fromJson(case["document"], manifest, case["runtime"] as String) }?.let { return it }
        if (case["refused"] == true) return null
        val state = case["state"] as Map<*, *>
        val decision = Policy.fromCalibrated(manifest, calibrated!!).decide(
            DeviceState(
                battery = vectorNumber(state["battery"]),
                charging = state["charging"] as Boolean,
                lowPower = state["low_power"] as Boolean,
                thermal = Thermal.named(state["thermal"] as String),
            ),
        )
        val expect = case["expect"] as Map<*, *>
        val got = mapOf("ratio" to decision.ratio.toLong(), "rule" to decision.rule, "threshold_name" to decision.thresholdName)
        return if (got == expect) null else "decided $got, Python $expect"
    }

    /** Null when [check] does what the case says (refused naming its word, or accepted); else what went wrong. */
    private fun holds(case: Map<*, *>, check: () -> Unit): String? {
        val message = try {
            check()
            null
        } catch (error: ManifestException) {
            error.message ?: ""
        } catch (error: ProfileException) {
            error.message ?: ""
        } catch (error: PolicyException) {
            error.message ?: ""
        }
        val refused = case["refused"] == true
        val mentions = case["mentions"] as String?
        return when {
            !refused && message != null -> "refused, and Python accepts it: $message"
            refused && message == null -> "accepted, and Python refuses it (naming '$mentions')"
            refused && !message!!.lowercase().contains(mentions!!.lowercase()) -> "refused without naming '$mentions': $message"
            else -> null
        }
    }

    /** [json] with every object and array mutable, so that the vectors' edits can be applied to it. */
    private fun mutableJson(json: Any?): Any? = when (json) {
        is Map<*, *> -> json.entries.associateTo(LinkedHashMap<String, Any?>()) { (key, value) -> key as String to mutableJson(value) }
        is List<*> -> json.mapTo(ArrayList()) { mutableJson(it) }
        else -> json
    }

    /** {"path": [...], "value": v} sets, {"path": [...], "delete": true} removes (bundle_vectors.py's edited). */
    @Suppress("UNCHECKED_CAST")
    private fun applyEdit(document: Any?, edit: Map<*, *>) {
        val path = edit["path"] as List<*>
        val parent = path.dropLast(1).fold(document) { target, key -> child(target, key) }
        val last = path.last()
        val delete = edit["delete"] == true
        when (parent) {
            is MutableMap<*, *> -> (parent as MutableMap<String, Any?>).let {
                if (delete) it.remove(last as String) else it[last as String] = edit["value"]
            }
            is MutableList<*> -> (parent as MutableList<Any?>).let {
                if (delete) it.removeAt((last as Long).toInt()) else it[(last as Long).toInt()] = edit["value"]
            }
            else -> throw AssertionError("edit path $path goes through $parent")
        }
    }

    private fun child(target: Any?, key: Any?): Any? = when (target) {
        is Map<*, *> -> target[key as String]
        is List<*> -> target[(key as Long).toInt()]
        else -> throw AssertionError("cannot step into $target with $key")
    }
}
