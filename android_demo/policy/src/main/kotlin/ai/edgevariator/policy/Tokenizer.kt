package ai.edgevariator.policy

import java.io.File
import java.text.Normalizer
import java.util.Locale

/** A text that cannot be classified (empty), as Python's TextError. */
class TextException(message: String) : IllegalArgumentException(message)

/** A tokenizer folder this port cannot read: not a BERT WordPiece tokenizer. */
class TokenizerException(message: String) : IllegalArgumentException(message)

/** One text, encoded the way the exported graphs take it. */
class Encoding(
    val inputIds: LongArray,  // [CLS] tokens [SEP] then padding: a multiple of padMultiple, at least minLength
    val attentionMask: LongArray,  // 1 for real tokens, 0 for padding
    val truncated: Boolean,  // the text was longer than maxLength and lost its tail
) {
    val length: Int get() = inputIds.size
    val realTokens: Int get() = attentionMask.count { it == 1L }
}

/**
 * BERT WordPiece tokenization as Hugging Face's fast tokenizer does it for the bundle's
 * tokenizer/ folder (BertNormalizer, BertPreTokenizer, WordPiece, "[CLS] A [SEP]"), padded as
 * edge_variator/tokenizer.py pads: to a multiple of padMultiple, at least minLength; texts past
 * maxLength are truncated and flagged, never refused.
 */
class WordPieceTokenizer(
    private val vocab: Map<String, Int>,
    private val maxLength: Int,
    private val minLength: Int = 16,
    private val padMultiple: Int = 8,
    padTokenId: Int? = null,
    private val lowercase: Boolean = true,
    private val stripAccents: Boolean = lowercase,  // BertNormalizer: strip_accents null follows lowercase
    private val handleChineseChars: Boolean = true,
    private val maxCharsPerWord: Int = 100,
    private val subwordPrefix: String = "##",
) {
    private val clsId = idOf("[CLS]")
    private val sepId = idOf("[SEP]")
    private val unkId = idOf("[UNK]")
    private val padId = padTokenId ?: idOf("[PAD]")
    private val specialTokens = listOf("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]").filter { it in vocab }
        .sortedByDescending { it.length }  // longest match first

    init {
        require(maxLength >= 2 && padMultiple >= 1 && maxLength % padMultiple == 0) {
            "maxLength $maxLength must be a multiple of padMultiple $padMultiple"
        }
    }

    private fun idOf(token: String): Int = vocab[token] ?: throw TokenizerException("the vocabulary has no $token token")

    fun encode(text: String): Encoding {
        if (text.isBlank()) throw TextException("the text is empty: there is nothing to classify")
        val tokens = tokenIds(text)
        val room = maxLength - 2  // [CLS] and [SEP]
        val kept = if (tokens.size > room) tokens.subList(0, room) else tokens
        val real = kept.size + 2
        val padded = maxOf(minLength, (real + padMultiple - 1) / padMultiple * padMultiple)
        val ids = LongArray(padded) { padId.toLong() }
        val mask = LongArray(padded)
        ids[0] = clsId.toLong()
        kept.forEachIndexed { index, id -> ids[index + 1] = id.toLong() }
        ids[real - 1] = sepId.toLong()
        for (index in 0 until real) mask[index] = 1L
        return Encoding(ids, mask, truncated = tokens.size > room)
    }

    /** The WordPiece ids of [text], without special tokens around it and untruncated. */
    fun tokenIds(text: String): List<Int> {
        val ids = ArrayList<Int>()
        var segmentStart = 0
        var at = 0
        // Special tokens typed in the text ("[MASK]") are matched on the raw text, as the fast tokenizer does.
        while (at < text.length) {
            val special = specialTokens.firstOrNull { text.startsWith(it, at) }
            if (special == null) {
                at++
                continue
            }
            wordPieces(text.substring(segmentStart, at), ids)
            ids.add(vocab.getValue(special))
            at += special.length
            segmentStart = at
        }
        wordPieces(text.substring(segmentStart), ids)
        return ids
    }

    private fun wordPieces(segment: String, into: MutableList<Int>) {
        for (word in preTokenize(normalize(segment))) {
            val codePoints = word.codePoints().toArray()
            if (codePoints.size > maxCharsPerWord) {
                into.add(unkId)
                continue
            }
            val pieces = ArrayList<Int>()
            var start = 0
            while (start < codePoints.size) {
                var end = codePoints.size
                var found: Int? = null
                while (start < end) {
                    val piece = String(codePoints, start, end - start)
                    found = vocab[if (start > 0) subwordPrefix + piece else piece]
                    if (found != null) break
                    end--
                }
                if (found == null) break
                pieces.add(found)
                start = end
            }
            if (start < codePoints.size) into.add(unkId) else into.addAll(pieces)
        }
    }

    /** BertNormalizer: clean the text, space out CJK characters, strip accents, lowercase. */
    private fun normalize(text: String): String {
        val cleaned = StringBuilder()
        text.codePoints().forEach { char ->
            when {
                char == 0 || char == 0xFFFD || isControl(char) -> {}
                isWhitespace(char) -> cleaned.append(' ')
                handleChineseChars && isChineseChar(char) -> cleaned.append(' ').appendCodePoint(char).append(' ')
                else -> cleaned.appendCodePoint(char)
            }
        }
        var normalized = cleaned.toString()
        if (stripAccents) {
            val stripped = StringBuilder()
            Normalizer.normalize(normalized, Normalizer.Form.NFD).codePoints().forEach { char ->
                if (Character.getType(char) != Character.NON_SPACING_MARK.toInt()) stripped.appendCodePoint(char)
            }
            normalized = stripped.toString()
        }
        if (lowercase) {
            val lowered = StringBuilder()
            // One character at a time, as Rust's char::to_lowercase: no final-sigma context rule.
            normalized.codePoints().forEach { char ->
                if (char < 128) lowered.append(Character.toLowerCase(char).toChar())
                else lowered.append(String(Character.toChars(char)).lowercase(Locale.ROOT))
            }
            normalized = lowered.toString()
        }
        return normalized
    }

    /** BertPreTokenizer: split on whitespace, and every punctuation character is a word of its own. */
    private fun preTokenize(text: String): List<String> {
        val words = ArrayList<String>()
        val word = StringBuilder()
        fun flush() {
            if (word.isNotEmpty()) words.add(word.toString())
            word.setLength(0)
        }
        text.codePoints().forEach { char ->
            when {
                isWhitespace(char) -> flush()
                isPunctuation(char) -> {
                    flush()
                    words.add(String(Character.toChars(char)))
                }
                else -> word.appendCodePoint(char)
            }
        }
        flush()
        return words
    }

    companion object {
        /** The tokenizer of a bundle's tokenizer/ folder: tokenizer.json, else vocab.txt. */
        fun fromFolder(folder: File, model: ModelInfo): WordPieceTokenizer {
            val tokenizerJson = File(folder, "tokenizer.json")
            val vocabTxt = File(folder, "vocab.txt")
            return when {
                tokenizerJson.isFile -> fromTokenizerJson(tokenizerJson.readText(), model)
                vocabTxt.isFile -> WordPieceTokenizer(
                    vocabFromTxt(vocabTxt.readText()), model.maxLength, model.minLength, model.padMultiple, model.padTokenId,
                )
                else -> throw TokenizerException("$folder has neither tokenizer.json nor vocab.txt")
            }
        }

        /** A Hugging Face tokenizer.json; refuses anything but a BERT normalizer and a WordPiece model. */
        fun fromTokenizerJson(text: String, model: ModelInfo): WordPieceTokenizer {
            val json = Json.parse(text) as? Map<*, *> ?: throw TokenizerException("tokenizer.json is not an object")
            val wordPiece = json["model"] as? Map<*, *>
            if (wordPiece?.get("type") != "WordPiece") throw TokenizerException("tokenizer.json is not a WordPiece model")
            val normalizer = json["normalizer"] as? Map<*, *>
            if (normalizer?.get("type") != "BertNormalizer") throw TokenizerException("tokenizer.json has no BertNormalizer")
            val vocab = (wordPiece["vocab"] as? Map<*, *>)?.entries?.associate { (token, id) ->
                token as String to ((id as? Long)?.toInt() ?: throw TokenizerException("vocab id of $token is $id"))
            } ?: throw TokenizerException("tokenizer.json has no vocabulary")
            val lowercase = normalizer["lowercase"] as? Boolean ?: true
            return WordPieceTokenizer(
                vocab, model.maxLength, model.minLength, model.padMultiple, model.padTokenId,
                lowercase = lowercase,
                stripAccents = normalizer["strip_accents"] as? Boolean ?: lowercase,
                handleChineseChars = normalizer["handle_chinese_chars"] as? Boolean ?: true,
                maxCharsPerWord = (wordPiece["max_input_chars_per_word"] as? Long)?.toInt() ?: 100,
                subwordPrefix = wordPiece["continuing_subword_prefix"] as? String ?: "##",
            )
        }

        /** vocab.txt: one token a line, its id the line number. */
        fun vocabFromTxt(text: String): Map<String, Int> =
            text.split('\n').map { it.removeSuffix("\r") }.dropLastWhile { it.isEmpty() }
                .withIndex().associate { (index, token) -> token to index }

        // Unicode White_Space, as Rust's char::is_whitespace (Java's isWhitespace leaves out no-break spaces).
        private fun isWhitespace(char: Int): Boolean = char == 0x20 || char in 0x09..0x0D || char == 0x85 ||
            char == 0xA0 || char == 0x1680 || char in 0x2000..0x200A || char == 0x2028 || char == 0x2029 ||
            char == 0x202F || char == 0x205F || char == 0x3000

        private fun isControl(char: Int): Boolean {
            if (char == '\t'.code || char == '\n'.code || char == '\r'.code) return false
            return when (Character.getType(char).toByte()) {
                Character.CONTROL, Character.FORMAT, Character.PRIVATE_USE, Character.UNASSIGNED, Character.SURROGATE -> true
                else -> false
            }
        }

        private fun isPunctuation(char: Int): Boolean {
            if (char in 33..47 || char in 58..64 || char in 91..96 || char in 123..126) return true  // ASCII punctuation
            return when (Character.getType(char).toByte()) {
                Character.CONNECTOR_PUNCTUATION, Character.DASH_PUNCTUATION, Character.START_PUNCTUATION,
                Character.END_PUNCTUATION, Character.INITIAL_QUOTE_PUNCTUATION, Character.FINAL_QUOTE_PUNCTUATION,
                Character.OTHER_PUNCTUATION -> true
                else -> false
            }
        }

        private fun isChineseChar(char: Int): Boolean = char in 0x4E00..0x9FFF || char in 0x3400..0x4DBF ||
            char in 0x20000..0x2A6DF || char in 0x2A700..0x2B73F || char in 0x2B740..0x2B81F ||
            char in 0x2B920..0x2CEAF || char in 0xF900..0xFAFF || char in 0x2F800..0x2FA1F
    }
}
