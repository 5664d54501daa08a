package ai.edgevariator.policy

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.DynamicContainer.dynamicContainer
import org.junit.jupiter.api.DynamicNode
import org.junit.jupiter.api.DynamicTest.dynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory

/** tests/vectors/policy.json, the cases Python's policy and every port must pass; one test per step. */
class PolicyVectorsTest {
    private val vectors = TestFiles.json(TestFiles.policyVectors)
    private val ratios = intsOf(vectors["ratios"])
    private val thresholds = thresholdsOf(vectors["thresholds"])
    private val tables = vectors["tables"] as Map<*, *>

    @TestFactory
    fun cases(): List<DynamicNode> = (vectors["cases"] as List<*>).map { item ->
        val case = item as Map<*, *>
        // One stateful policy per case, for the case's own bundle when it names one: the steps run
        // in order and share its active rule.
        val caseRatios = case["ratios"]?.let(::intsOf) ?: ratios
        val caseThresholds = case["thresholds"]?.let(::thresholdsOf) ?: thresholds
        val policy by lazy { Policy(PolicyTable.fromJson(tables[case["table"]]), caseRatios, caseThresholds) }
        val steps = (case["steps"] as List<*>).mapIndexed { index, stepItem ->
            val step = stepItem as Map<*, *>
            val state = step["state"] as Map<*, *>
            val expect = step["expect"] as Map<*, *>
            // The text's padded length, when the step gives one (null: the policy does not know it).
            val length = step["length"]?.let { (it as Long).toInt() }
            val lengthText = if (length == null) "" else " length=$length"
            dynamicTest("step ${index + 1}: ${describe(state)}$lengthText -> ${describe(expect)}") {
                val unknownStepKeys = step.keys.map { it.toString() }.filter { it !in STEP_KEYS }
                assertTrue(unknownStepKeys.isEmpty(), "step has keys this test does not know: $unknownStepKeys")
                val error = expect["error"]
                if (error != null) {
                    val ruleBefore = policy.activeRule
                    val thrown = assertThrows(exceptionClass(error as String)) { policy.decide(stateOf(state), length) }
                    assertTrue(thrown.message!!.isNotBlank())
                    assertEquals(ruleBefore, policy.activeRule, "a refused state must keep the previous rule")
                } else {
                    val unknown = expect.keys.map { it.toString() }.filter { it !in EXPECT_KEYS }
                    assertTrue(unknown.isEmpty(), "expect has keys this test does not check: $unknown")
                    val decision = policy.decide(stateOf(state), length)
                    expect["budget_applied"]?.let { assertEquals(it, decision.budgetApplied, "budget_applied") }
                    expect["length_applied"]?.let { assertEquals(it, decision.lengthApplied, "length_applied") }
                    assertEquals((expect["ratio"] as Long).toInt(), decision.ratio, "ratio")
                    assertEquals(expect["rule"], decision.rule, "rule")
                    assertEquals(expect["threshold_name"], decision.thresholdName, "threshold_name")
                    val threshold = expect["threshold"]
                    if (threshold == null) assertNull(decision.threshold, "threshold") else {
                        assertEquals(vectorNumber(threshold), decision.threshold!!, 1e-9, "threshold")
                    }
                    assertEquals(decision.rule, policy.activeRule)
                }
            }
        }
        dynamicContainer("${case["name"]} [${case["table"]}]", steps)
    }

    @TestFactory
    fun badTablesAreRefused(): List<DynamicNode> = (vectors["bad_tables"] as List<*>).map { item ->
        val bad = item as Map<*, *>
        val bundleRatios = intsOf(bad["ratios"] ?: vectors["ratios"])
        dynamicTest(bad["name"] as String) {
            val thrown = assertThrows(PolicyException::class.java) {
                Policy(PolicyTable.fromJson(bad["table"]), bundleRatios, thresholds)
            }
            assertTrue(thrown.message!!.isNotBlank())
            assertThrows(PolicyException::class.java) { checkPolicy(bad["table"], bundleRatios, thresholds) }
        }
    }

    @TestFactory
    fun androidThermal(): List<DynamicNode> = (vectors["android_thermal"] as List<*>).map { item ->
        val entry = item as Map<*, *>
        val status = (entry["status"] as Long).toInt()
        dynamicTest("THERMAL_STATUS $status -> ${entry["thermal"] ?: entry["error"]}") {
            val error = entry["error"]
            if (error != null) {
                assertThrows(exceptionClass(error as String)) { thermalFromAndroid(status) }
            } else {
                assertEquals(entry["thermal"], thermalFromAndroid(status).wireName)
            }
        }
    }

    @Test
    fun everyTableInTheVectorsIsUsableWithItsCases() {
        for (item in vectors["cases"] as List<*>) {
            val case = item as Map<*, *>
            // Throws, naming the problem, if the port refuses a table Python accepts.
            checkPolicy(tables[case["table"]], case["ratios"]?.let(::intsOf) ?: ratios,
                case["thresholds"]?.let(::thresholdsOf) ?: thresholds)
        }
    }

    @Test
    fun budgetIsIgnoredWithoutLatency() {
        val policy = Policy(PolicyTable.fromJson(tables["full"]), ratios, thresholds)
        val decision = policy.decide(DeviceState(battery = 1.0, budgetMs = 1.0))
        assertEquals(1, decision.ratio)
        assertFalse(decision.budgetApplied)
    }

    private companion object {
        val STEP_KEYS = setOf("state", "length", "expect")
        val EXPECT_KEYS = setOf("ratio", "rule", "threshold_name", "threshold", "budget_applied", "length_applied")
    }

    private fun exceptionClass(name: String): Class<out Throwable> = when (name) {
        "DeviceStateError" -> DeviceStateException::class.java
        "PolicyError" -> PolicyException::class.java
        else -> throw IllegalArgumentException("unknown error in the vectors: $name")
    }

    private fun stateOf(state: Map<*, *>): DeviceState {
        // Kotlin's types keep a non-boolean flag or a non-string thermal state out of DeviceState;
        // reading the vector refuses them as Python's DeviceState does.
        fun flag(key: String): Boolean = when (val value = state[key]) {
            null -> false
            is Boolean -> value
            else -> throw DeviceStateException("$key must be true or false, not $value")
        }
        return DeviceState(
            battery = vectorNumber(state["battery"]),
            charging = flag("charging"),
            lowPower = flag("low_power"),
            thermal = when (val thermal = state["thermal"]) {
                null -> Thermal.NOMINAL
                is String -> Thermal.named(thermal)
                else -> throw DeviceStateException("unknown thermal state $thermal; use one of ${Thermal.NAMES}")
            },
            budgetMs = state["budget_ms"]?.let(::vectorNumber),
        )
    }

    private fun describe(fields: Map<*, *>): String = fields.entries.joinToString(" ") { (key, value) -> "$key=$value" }
}
