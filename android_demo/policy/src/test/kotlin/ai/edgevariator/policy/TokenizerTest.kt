package ai.edgevariator.policy

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import java.io.File

/** What the tokenizer factory refuses, and the behaviours the shared vectors do not reach. */
class TokenizerTest {
    private fun info(kind: TokenizerKind, maxLength: Int = 128) =
        ModelInfo(2, 8, 0, maxLength, 16, 8, null, listOf("negative", "positive"), kind)

    private fun vectorFolder(kind: TokenizerKind) = File(TestFiles.tokenizerVectors(kind).parentFile, kind.wireName)

    /** The vectors' tokenizer.json of [kind] as a mutable tree, to change one component. */
    @Suppress("UNCHECKED_CAST")
    private fun tokenizerJson(kind: TokenizerKind): MutableMap<String, Any?> =
        Json.parse(File(vectorFolder(kind), "tokenizer.json").readText()) as MutableMap<String, Any?>

    private fun load(json: Map<String, Any?>, kind: TokenizerKind, padToken: String? = "<pad>") =
        Tokenizer.fromTokenizerJson(Json.write(json, 0), info(kind), padToken)

    private fun assertRefusedByName(kind: TokenizerKind, component: String, type: String, change: (MutableMap<String, Any?>) -> Unit) {
        val json = tokenizerJson(kind).also(change)
        val refused = assertThrows(UnsupportedComponentException::class.java) { load(json, kind) }
        assertEquals(component to type, refused.component to refused.type)
        assertTrue("$component '$type'" in refused.message!!, refused.message)
    }

    @Test
    fun anUnsupportedNormalizerIsRefusedByName() {
        assertRefusedByName(TokenizerKind.BPE, "normalizer", "NFKC") { it["normalizer"] = mapOf("type" to "NFKC") }
    }

    @Test
    fun anUnsupportedNormalizerInsideASequenceIsRefusedByName() {
        assertRefusedByName(TokenizerKind.UNIGRAM, "normalizer", "Lowercase") { json ->
            @Suppress("UNCHECKED_CAST")
            val sequence = json["normalizer"] as MutableMap<String, Any?>
            sequence["normalizers"] = (sequence["normalizers"] as List<*>) + mapOf("type" to "Lowercase")
        }
    }

    @Test
    fun anUnsupportedPreTokenizerIsRefusedByName() {
        assertRefusedByName(TokenizerKind.BPE, "pre_tokenizer", "Whitespace") { it["pre_tokenizer"] = mapOf("type" to "Whitespace") }
    }

    @Test
    fun anUnsupportedPostProcessorIsRefusedByName() {
        assertRefusedByName(TokenizerKind.UNIGRAM, "post_processor", "Sequence") {
            it["post_processor"] = mapOf("type" to "Sequence", "processors" to listOf(it["post_processor"]))
        }
    }

    @Test
    fun anUnsupportedModelIsRefusedByName() {
        assertRefusedByName(TokenizerKind.BPE, "model", "WordLevel") { json ->
            json["model"] = mapOf("type" to "WordLevel", "vocab" to mapOf("a" to 0L), "unk_token" to "a")
        }
    }

    @Test
    fun modelOptionsThisPortDoesNotRunAreRefused() {
        val dropout = tokenizerJson(TokenizerKind.BPE).also { @Suppress("UNCHECKED_CAST") (it["model"] as MutableMap<String, Any?>)["dropout"] = 0.1 }
        assertTrue("dropout" in assertThrows(TokenizerException::class.java) { load(dropout, TokenizerKind.BPE) }.message!!)
        val fallback = tokenizerJson(TokenizerKind.UNIGRAM).also { @Suppress("UNCHECKED_CAST") (it["model"] as MutableMap<String, Any?>)["byte_fallback"] = true }
        assertTrue("byte_fallback" in assertThrows(TokenizerException::class.java) { load(fallback, TokenizerKind.UNIGRAM) }.message!!)
    }

    @Test
    fun aManifestKindThatContradictsTokenizerJsonIsRefused() {
        val refused = assertThrows(TokenizerException::class.java) {
            Tokenizer.fromFolder(vectorFolder(TokenizerKind.BPE), info(TokenizerKind.UNIGRAM))
        }
        assertTrue("model.tokenizer 'unigram'" in refused.message!! && "BPE model" in refused.message!!, refused.message)
        val bundle = TestFiles.bundles.first()
        assertThrows(TokenizerException::class.java) { Tokenizer.fromFolder(File(bundle, "tokenizer"), info(TokenizerKind.BPE)) }
    }

    @Test
    fun aManifestKindOtherThanWordPieceIsRefusedForAVocabTxtFolder(@TempDir folder: File) {
        File(folder, "vocab.txt").writeText("[PAD]\n[UNK]\n[CLS]\n[SEP]\na\n")
        assertEquals(listOf(2L, 4L, 3L), Tokenizer.fromFolder(folder, info(TokenizerKind.WORDPIECE)).encode("a").inputIds.take(3))
        val refused = assertThrows(TokenizerException::class.java) { Tokenizer.fromFolder(folder, info(TokenizerKind.UNIGRAM)) }
        assertTrue("vocab.txt" in refused.message!!, refused.message)
    }

    @Test
    fun aVocabTxtFolderEncodesAsItsTokenizerJson(@TempDir folder: File) {
        @Suppress("UNCHECKED_CAST")
        val vocab = ((tokenizerJson(TokenizerKind.WORDPIECE)["model"] as Map<String, Any?>)["vocab"] as Map<String, Long>)
        File(folder, "vocab.txt").writeText(vocab.entries.sortedBy { it.value }.joinToString("\n", postfix = "\n") { it.key })
        val fromVocab = Tokenizer.fromFolder(folder, info(TokenizerKind.WORDPIECE))
        val fromJson = Tokenizer.fromFolder(vectorFolder(TokenizerKind.WORDPIECE), info(TokenizerKind.WORDPIECE))
        for (text in listOf("Héllo, naïve [MASK] café!", "東京 and 北京", "tabs\tand\nnewlines")) {
            assertEquals(fromJson.encode(text).inputIds.toList(), fromVocab.encode(text).inputIds.toList(), text)
        }
    }

    @Test
    fun mergesReadAsStringsOrAsPairsAlike() {
        val pairs = Tokenizer.fromFolder(vectorFolder(TokenizerKind.BPE), info(TokenizerKind.BPE))
        val strings = tokenizerJson(TokenizerKind.BPE).also { json ->
            @Suppress("UNCHECKED_CAST")
            val model = json["model"] as MutableMap<String, Any?>
            model["merges"] = (model["merges"] as List<*>).map { (it as List<*>).joinToString(" ") }
        }
        for (text in listOf("a gripping, beautifully acted film.", "don't won't 1990s", "café 東京 😀")) {
            assertEquals(pairs.encode(text).inputIds.toList(), load(strings, TokenizerKind.BPE).encode(text).inputIds.toList(), text)
        }
    }

    @Test
    fun addedTokenFlagsAreHonouredAsTheLibraryDoes() {
        // Ids from tokenizers 0.23.3 after add_tokens([AddedToken("ｘｙ", normalized=True),
        // AddedToken("cat", single_word=True, normalized=False), AddedToken("[R]", rstrip=True, normalized=False)]).
        val json = tokenizerJson(TokenizerKind.UNIGRAM)
        json["added_tokens"] = (json["added_tokens"] as List<*>) + listOf(
            mapOf("id" to 4002L, "content" to "ｘｙ", "single_word" to false, "lstrip" to false, "rstrip" to false, "normalized" to true, "special" to false),
            mapOf("id" to 4003L, "content" to "cat", "single_word" to true, "lstrip" to false, "rstrip" to false, "normalized" to false, "special" to false),
            mapOf("id" to 4004L, "content" to "[R]", "single_word" to false, "lstrip" to false, "rstrip" to true, "normalized" to false, "special" to false),
        )
        val tokenizer = load(json, TokenizerKind.UNIGRAM)
        val expected = mapOf(
            "say xy and ｘｙ" to listOf(274, 12, 4002, 9, 12, 4002),  // matched in the normalized text, typed either way
            "a cat, concatenate cats" to listOf(6, 4003, 12, 43, 305, 58, 313, 37, 313, 2164, 4),  // only the whole word
            "x [R]   y [R]" to listOf(137, 4004, 578, 4004),  // the spaces after it are its own
            "[R]  <mask>  z" to listOf(4004, 4001, 500),
        )
        for ((text, ids) in expected) assertEquals(ids, tokenizer.tokenIds(text), text)
    }

    @Test
    fun aBrokenPrecompiledCharsmapIsRefused() {
        val json = tokenizerJson(TokenizerKind.UNIGRAM)
        @Suppress("UNCHECKED_CAST")
        val precompiled = ((json["normalizer"] as Map<String, Any?>)["normalizers"] as List<MutableMap<String, Any?>>)[0]
        precompiled["precompiled_charsmap"] = "AAAA/w=="  // a trie of 0xFF000000 bytes in 5 bytes
        assertTrue("Precompiled" in assertThrows(TokenizerException::class.java) { load(json, TokenizerKind.UNIGRAM) }.message!!)
    }

    @Test
    fun anEmptyTextIsRefusedAsPythonStripsIt() {
        val tokenizer = Tokenizer.fromFolder(vectorFolder(TokenizerKind.WORDPIECE), info(TokenizerKind.WORDPIECE))
        for (text in listOf("", " \n\t ", "\u0085\u001f", "\u3000\u00a0")) {
            assertThrows(TextException::class.java, { tokenizer.encode(text) }, Json.write(text, 0))
        }
        assertEquals(2, tokenizer.encode("\u200b").realTokens, "a zero-width space is not whitespace to Python: [CLS] [SEP]")
    }

    @Test
    fun vocabTxtGivesEachLineItsIndex() {
        assertEquals(mapOf("[PAD]" to 0, "a" to 1, "##b" to 2), Tokenizer.vocabFromTxt("[PAD]\na\r\n##b\n"))
    }
}
