package ai.edgevariator.policy

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class JsonTest {
    @Test
    fun readsEveryKindOfValue() {
        val value = Json.parse("""{"a": [1, -2.5, 1e3, true, false, null], "b": "x\"\\\/\n\u00e9\ud83d\ude00", "c": {}}""")
        assertEquals(
            mapOf("a" to listOf(1L, -2.5, 1000.0, true, false, null), "b" to "x\"\\/\né😀", "c" to emptyMap<String, Any?>()),
            value,
        )
    }

    @Test
    fun readsWhatPythonWritesForNonFiniteNumbers() {
        val value = Json.parse("[NaN, Infinity, -Infinity]") as List<*>
        assertTrue((value[0] as Double).isNaN())
        assertEquals(listOf(Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY), value.drop(1))
    }

    @Test
    fun aRepeatedKeyKeepsItsLastValueAsInPython() {
        assertEquals(mapOf("k" to 2L), Json.parse("""{"k": 1, "k": 2}"""))
    }

    @Test
    fun badTextIsRefusedWithItsOffset() {
        for (bad in listOf("", "{", "[1,]", "{\"a\" 1}", "01", "1.", "\"unterminated", "[1] x", "tru")) {
            val thrown = assertThrows(JsonException::class.java, { Json.parse(bad) }, bad)
            assertTrue("offset" in thrown.message!!)
        }
    }

    @Test
    fun writesWhatItReads() {
        val value = mapOf("name" to "tab\there \"quoted\"", "ms" to listOf(1.5, 2L, 1e-7), "none" to null, "flag" to true)
        assertEquals(value, Json.parse(Json.write(value)))
        assertEquals(value, Json.parse(Json.write(value, indent = 0)))
        assertThrows(JsonException::class.java) { Json.write(Double.NaN) }
    }
}
