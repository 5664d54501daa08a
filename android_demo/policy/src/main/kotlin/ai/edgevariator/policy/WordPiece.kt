package ai.edgevariator.policy

import java.text.Normalizer.Form
import java.util.Locale

/*
 * BERT's tokenizer pieces (BERT, DistilBERT, ELECTRA): BertNormalizer, BertPreTokenizer and the
 * WordPiece model, as the `tokenizers` library runs them.
 */

/** BertNormalizer: clean the text, space out CJK characters, strip accents, lowercase. */
class BertNormalizer(
    private val cleanText: Boolean = true,
    private val handleChineseChars: Boolean = true,
    private val lowercase: Boolean = true,
    private val stripAccents: Boolean = lowercase,  // strip_accents null follows lowercase
) : Normalizer {
    override fun normalize(text: String): String {
        val cleaned = StringBuilder()
        text.codePoints().forEach { char ->
            when {
                cleanText && (char == 0 || char == 0xFFFD || isControl(char)) -> {}
                cleanText && isUnicodeWhitespace(char) -> cleaned.append(' ')
                handleChineseChars && isChineseChar(char) -> cleaned.append(' ').appendCodePoint(char).append(' ')
                else -> cleaned.appendCodePoint(char)
            }
        }
        var normalized = cleaned.toString()
        if (stripAccents) {
            val stripped = StringBuilder()
            java.text.Normalizer.normalize(normalized, Form.NFD).codePoints().forEach { char ->
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

    private fun isControl(char: Int): Boolean {
        if (char == '\t'.code || char == '\n'.code || char == '\r'.code) return false
        return when (Character.getType(char).toByte()) {
            Character.CONTROL, Character.FORMAT, Character.PRIVATE_USE, Character.UNASSIGNED, Character.SURROGATE -> true
            else -> false
        }
    }

    private fun isChineseChar(char: Int): Boolean = char in 0x4E00..0x9FFF || char in 0x3400..0x4DBF ||
        char in 0x20000..0x2A6DF || char in 0x2A700..0x2B73F || char in 0x2B740..0x2B81F ||
        char in 0x2B920..0x2CEAF || char in 0xF900..0xFAFF || char in 0x2F800..0x2FA1F
}

/** BertPreTokenizer: split on whitespace, and every punctuation character is a word of its own. */
object BertPreTokenizer : PreTokenizer {
    override fun words(text: String, atStart: Boolean): List<String> {
        val words = ArrayList<String>()
        val word = StringBuilder()
        fun flush() {
            if (word.isNotEmpty()) words.add(word.toString())
            word.setLength(0)
        }
        text.codePoints().forEach { char ->
            when {
                isUnicodeWhitespace(char) -> flush()
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

    private fun isPunctuation(char: Int): Boolean {
        if (char in 33..47 || char in 58..64 || char in 91..96 || char in 123..126) return true  // ASCII punctuation
        return when (Character.getType(char).toByte()) {
            Character.CONNECTOR_PUNCTUATION, Character.DASH_PUNCTUATION, Character.START_PUNCTUATION,
            Character.END_PUNCTUATION, Character.INITIAL_QUOTE_PUNCTUATION, Character.FINAL_QUOTE_PUNCTUATION,
            Character.OTHER_PUNCTUATION -> true
            else -> false
        }
    }
}

/** WordPiece: the longest vocabulary piece first, later pieces with [subwordPrefix]; [unkId] for a word that does not split. */
class WordPiece(
    private val vocab: Map<String, Int>,
    private val unkId: Int,
    private val subwordPrefix: String = "##",
    private val maxCharsPerWord: Int = 100,
) : TokenModel {
    override fun idOf(token: String): Int? = vocab[token]

    override fun ids(word: String): List<Int> {
        val codePoints = word.codePoints().toArray()
        if (codePoints.size > maxCharsPerWord) return listOf(unkId)
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
            if (found == null) return listOf(unkId)
            pieces.add(found)
            start = end
        }
        return pieces
    }
}
