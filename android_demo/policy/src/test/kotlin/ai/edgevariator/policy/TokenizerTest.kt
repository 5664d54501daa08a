package ai.edgevariator.policy

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.DynamicNode
import org.junit.jupiter.api.DynamicTest.dynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory

/** The WordPiece port against what edge_variator/tokenizer.py makes of tricky texts (make_tokenizer_cases.sh). */
class TokenizerTest {
    private val cases = Json.parse(
        TokenizerTest::class.java.getResource("/tokenizer_cases.json")!!.readText(),
    ) as Map<*, *>
    private val tokenizerJson by lazy { TestFiles.defaultTokenizerJson.readText() }

    private fun tokenizer(maxLength: Int) = WordPieceTokenizer.fromTokenizerJson(
        tokenizerJson, ModelInfo(2, 8, 30522, maxLength, 16, 8, null, listOf("negative", "positive")),
    )

    @TestFactory
    fun matchesPython(): List<DynamicNode> = (cases["cases"] as List<*>).map { item ->
        val case = item as Map<*, *>
        val text = case["text"] as String
        val maxLength = (case["max_length"] as Long).toInt()
        dynamicTest("max_length $maxLength: ${text.take(40).replace("\n", "\\n")}") {
            val encoding = tokenizer(maxLength).encode(text)
            assertArrayEquals(longs(case["input_ids"]), encoding.inputIds, "input_ids")
            assertArrayEquals(longs(case["attention_mask"]), encoding.attentionMask, "attention_mask")
            assertEquals(case["truncated"], encoding.truncated, "truncated")
        }
    }

    @Test
    fun anEmptyTextIsRefused() {
        assertThrows(TextException::class.java) { tokenizer(128).encode(" \n\t ") }
    }

    @Test
    fun vocabTxtGivesEachLineItsIndex() {
        assertEquals(mapOf("[PAD]" to 0, "a" to 1, "##b" to 2), WordPieceTokenizer.vocabFromTxt("[PAD]\na\r\n##b\n"))
    }

    private fun longs(json: Any?): LongArray = (json as List<*>).map { it as Long }.toLongArray()
}
