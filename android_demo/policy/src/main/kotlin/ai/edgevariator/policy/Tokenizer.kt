package ai.edgevariator.policy

import java.io.File

/** A text that cannot be classified (empty), as Python's TextError. */
class TextException(message: String) : IllegalArgumentException(message)

/** A tokenizer folder this port cannot read, or one that contradicts the bundle's manifest. */
open class TokenizerException(message: String) : IllegalArgumentException(message)

/** A tokenizer.json [component] ("normalizer", "model", ...) of a [type] this port does not implement: refused, never skipped. */
class UnsupportedComponentException(val component: String, val type: String, supported: List<String>) :
    TokenizerException(
        "tokenizer.json $component '$type' is not supported by this app (it reads ${supported.joinToString()}): " +
            "export the bundle from a model whose tokenizer uses those",
    )

/** One text, encoded the way the exported graphs take it. */
class Encoding(
    val inputIds: LongArray,  // the post-processor's specials around the tokens, then padding: a multiple of padMultiple, at least minLength
    val attentionMask: LongArray,  // 1 for real tokens, 0 for padding
    val truncated: Boolean,  // the text was longer than maxLength and lost its tail
) {
    val length: Int get() = inputIds.size
    val realTokens: Int get() = attentionMask.count { it == 1L }
}

/** A tokenizer.json normalizer: what a stretch of text becomes before it is split into words. */
fun interface Normalizer {
    fun normalize(text: String): String
}

/** A tokenizer.json pre-tokenizer: the words of one normalized stretch of text. */
fun interface PreTokenizer {
    /** [atStart]: the stretch begins the text (Metaspace's prepend_scheme "first" asks). */
    fun words(text: String, atStart: Boolean): List<String>
}

/** A tokenizer.json model: the ids of one word, and the id of a token of its vocabulary. */
interface TokenModel {
    fun ids(word: String): List<Int>
    fun idOf(token: String): Int?
}

/** The tokenizer.json model types this port implements, as the manifest's model.tokenizer names them. */
enum class TokenizerKind(val wireName: String, val modelType: String) {
    WORDPIECE("wordpiece", "WordPiece"), BPE("bpe", "BPE"), UNIGRAM("unigram", "Unigram");

    companion object {
        fun named(name: String): TokenizerKind = entries.firstOrNull { it.wireName == name }
            ?: throw IllegalArgumentException("tokenizer must be one of ${entries.map { it.wireName }}, not '$name'")
    }
}

/**
 * Hugging Face's fast tokenizer pipeline for one bundle, as edge_variator/tokenizer.py runs it:
 * added tokens typed in the text split out first, each stretch between them normalized, split into
 * words and tokenized by the model, the post-processor's special tokens put around the result,
 * then padded to a multiple of [padMultiple], at least [minLength]. Texts past [maxLength] are
 * truncated (the special tokens kept) and flagged, never refused. Build one with [fromFolder].
 */
class Tokenizer(
    val kind: TokenizerKind,
    private val addedTokens: AddedTokens,  // with the normalizer, which runs between them
    private val preTokenizer: PreTokenizer?,  // null: each stretch is one word
    private val model: TokenModel,
    private val prefixIds: List<Int>,  // the post-processor's tokens before the text: [CLS] or <s>
    private val suffixIds: List<Int>,  // and after it: [SEP] or </s>
    val padId: Int,
    private val maxLength: Int,
    private val minLength: Int = 16,
    private val padMultiple: Int = 8,
) {
    init {
        require(padMultiple >= 1 && maxLength % padMultiple == 0 && maxLength > prefixIds.size + suffixIds.size) {
            "maxLength $maxLength must be a multiple of padMultiple $padMultiple and leave room for a token"
        }
    }

    fun encode(text: String): Encoding {
        if (text.codePoints().allMatch(::isPythonSpace)) {
            throw TextException("the text is empty: there is nothing to classify")
        }
        val tokens = tokenIds(text)
        val room = maxLength - prefixIds.size - suffixIds.size
        val kept = if (tokens.size > room) tokens.subList(0, room) else tokens
        val real = prefixIds + kept + suffixIds
        val padded = maxOf(minLength, (real.size + padMultiple - 1) / padMultiple * padMultiple)
        val ids = LongArray(padded) { padId.toLong() }
        val mask = LongArray(padded)
        real.forEachIndexed { index, id ->
            ids[index] = id.toLong()
            mask[index] = 1L
        }
        return Encoding(ids, mask, truncated = tokens.size > room)
    }

    /** The model's ids of [text] and the added tokens typed in it, without the post-processor's, untruncated. */
    fun tokenIds(text: String): List<Int> {
        val ids = ArrayList<Int>()
        for (segment in addedTokens.split(text)) {
            when (segment) {
                is Segment.Added -> ids.add(segment.id)
                is Segment.Text -> {
                    val words = preTokenizer?.words(segment.text, segment.atStart) ?: listOf(segment.text)
                    for (word in words) if (word.isNotEmpty()) ids.addAll(model.ids(word))
                }
            }
        }
        return ids
    }

    companion object {
        /**
         * The tokenizer of a bundle's tokenizer/ folder, of the kind [model] names (the manifest's
         * model.tokenizer): its tokenizer.json, refused when that holds another kind of model; a
         * WordPiece vocab.txt alone for older BERT folders. The pad id is the manifest's, else the
         * one of tokenizer_config.json's pad_token, as edge_variator/tokenizer.py reads it.
         */
        fun fromFolder(folder: File, model: ModelInfo): Tokenizer {
            val tokenizerJson = File(folder, "tokenizer.json")
            val vocabTxt = File(folder, "vocab.txt")
            val padToken = padTokenOf(File(folder, "tokenizer_config.json"))
            return when {
                tokenizerJson.isFile -> fromTokenizerJson(tokenizerJson.readText(), model, padToken)
                vocabTxt.isFile -> {
                    if (model.tokenizer != TokenizerKind.WORDPIECE) {
                        throw TokenizerException(
                            "the manifest says model.tokenizer '${model.tokenizer.wireName}' but $folder has only a " +
                                "WordPiece vocab.txt: export the bundle again",
                        )
                    }
                    bertFromVocab(vocabFromTxt(vocabTxt.readText()), model, padToken)
                }
                else -> throw TokenizerException("$folder has neither tokenizer.json nor vocab.txt")
            }
        }

        /** A Hugging Face tokenizer.json, refused unless its model is the kind [model] names and every component is one this port implements. */
        fun fromTokenizerJson(text: String, model: ModelInfo, padToken: String? = null): Tokenizer =
            TokenizerJson.read(text, model, padToken)

        /** What transformers makes of a BERT vocab.txt alone: the default BertNormalizer, [CLS] A [SEP], the special tokens split out. */
        private fun bertFromVocab(vocab: Map<String, Int>, model: ModelInfo, padToken: String?): Tokenizer {
            fun idOf(token: String) = vocab[token] ?: throw TokenizerException("the vocabulary has no $token token")
            val specials = listOf("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]").filter { it in vocab }.map { AddedToken(it, idOf(it)) }
            val normalizer = BertNormalizer()
            return Tokenizer(
                TokenizerKind.WORDPIECE, AddedTokens(specials, normalizer), BertPreTokenizer, WordPiece(vocab, idOf("[UNK]")),
                listOf(idOf("[CLS]")), listOf(idOf("[SEP]")), model.padTokenId ?: idOf(padToken ?: "[PAD]"),
                model.maxLength, model.minLength, model.padMultiple,
            )
        }

        /** vocab.txt: one token a line, its id the line number. */
        fun vocabFromTxt(text: String): Map<String, Int> =
            text.split('\n').map { it.removeSuffix("\r") }.dropLastWhile { it.isEmpty() }
                .withIndex().associate { (index, token) -> token to index }

        /** tokenizer_config.json's pad_token (a string, or {"content": ...} in newer files); null when it names none. */
        private fun padTokenOf(config: File): String? {
            if (!config.isFile) return null
            val json = try {
                Json.parse(config.readText()) as? Map<*, *>
            } catch (error: JsonException) {
                throw TokenizerException("${config.path} is not valid JSON: ${error.message}")
            }
            return when (val token = json?.get("pad_token")) {
                is String -> token
                is Map<*, *> -> token["content"] as? String
                else -> null
            }
        }
    }
}

/** Python's str.isspace for one character (what `text.strip()` removes): category Zs or bidi class WS, B or S. */
internal fun isPythonSpace(char: Int): Boolean =
    Character.getType(char) == Character.SPACE_SEPARATOR.toInt() ||
        when (Character.getDirectionality(char)) {
            Character.DIRECTIONALITY_WHITESPACE, Character.DIRECTIONALITY_PARAGRAPH_SEPARATOR,
            Character.DIRECTIONALITY_SEGMENT_SEPARATOR -> true
            else -> false
        }

// Unicode White_Space: Rust's char::is_whitespace and the regexes' \s (Java's isWhitespace leaves out no-break spaces).
internal fun isUnicodeWhitespace(char: Int): Boolean = char == 0x20 || char in 0x09..0x0D || char == 0x85 ||
    char == 0xA0 || char == 0x1680 || char in 0x2000..0x200A || char == 0x2028 || char == 0x2029 ||
    char == 0x202F || char == 0x205F || char == 0x3000
