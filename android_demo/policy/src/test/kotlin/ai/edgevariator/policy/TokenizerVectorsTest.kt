package ai.edgevariator.policy

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.DynamicNode
import org.junit.jupiter.api.DynamicTest.dynamicTest
import org.junit.jupiter.api.TestFactory
import java.io.File

/**
 * Each tokenizer kind against tests/vectors/tokenizers/<kind>.json (scripts/tokenizer_vectors.py:
 * what edge_variator/tokenizer.py makes of 375 texts with <kind>/tokenizer.json): every case must
 * give the same ids, mask and truncation flag.
 */
class TokenizerVectorsTest {
    @TestFactory
    fun everyKindMatchesPython(): List<DynamicNode> = TokenizerKind.entries.flatMap { kind ->
        val vectors by lazy { TestFiles.json(TestFiles.tokenizerVectors(kind)) }
        listOf(
            dynamicTest("${kind.wireName}: every case gives Python's ids, mask and truncation flag") {
                val cases = (vectors["cases"] as List<*>).map { it as Map<*, *> }
                val tokenizers = HashMap<Int, Tokenizer>()
                val mismatches = ArrayList<String>()
                for (case in cases) {
                    val maxLength = (case["max_length"] as Long).toInt()
                    val tokenizer = tokenizers.getOrPut(maxLength) { vectorTokenizer(kind, maxLength) }
                    val text = case["text"] as String
                    val encoding = tokenizer.encode(text)
                    val expected = Triple(longs(case["input_ids"]), longs(case["attention_mask"]), case["truncated"])
                    val actual = Triple(encoding.inputIds.toList(), encoding.attentionMask.toList(), encoding.truncated)
                    if (expected != actual) {
                        mismatches.add("max_length $maxLength, ${Json.write(text, 0).trim()}:\n  python ${expected.first}\n  kotlin ${actual.first}")
                    }
                }
                val passed = cases.size - mismatches.size
                println("${kind.wireName}: $passed/${cases.size}")
                assertEquals(cases.size, passed, "${kind.wireName}: $passed/${cases.size} cases match; first mismatches:\n" + mismatches.take(5).joinToString("\n"))
            },
            dynamicTest("${kind.wireName}: the texts Python refuses as empty are refused") {
                val tokenizer = vectorTokenizer(kind, 128)
                for (error in (vectors["errors"] as List<*>).map { it as Map<*, *> }) {
                    assertEquals("TextError", error["error"])
                    assertThrows(TextException::class.java, { tokenizer.encode(error["text"] as String) }, "${error["text"]}")
                }
            },
            dynamicTest("${kind.wireName}: the pad id is tokenizer_config.json's pad token when the manifest names none") {
                assertEquals((vectors["pad_token_id"] as Long).toInt(), vectorTokenizer(kind, 128).padId)
            },
        )
    }

    private fun vectorTokenizer(kind: TokenizerKind, maxLength: Int): Tokenizer = Tokenizer.fromFolder(
        File(TestFiles.tokenizerVectors(kind).parentFile, kind.wireName),
        ModelInfo(2, 8, 0, maxLength, 16, 8, null, listOf("negative", "positive"), kind),
    )

    private fun longs(json: Any?): List<Long> = (json as List<*>).map { it as Long }
}
