package ai.edgevariator.policy

/** One added_tokens entry of tokenizer.json: text typed in a text that stands for [id] whatever the model would make of it. */
data class AddedToken(
    val content: String,
    val id: Int,
    val singleWord: Boolean = false,  // only where no word character touches it on either side
    val lstrip: Boolean = false,  // it takes the whitespace on its left
    val rstrip: Boolean = false,  // and on its right
    val normalized: Boolean = false,  // matched in the normalized text, not the typed one
)

/** A piece of a text once its added tokens are split out. */
sealed class Segment {
    class Added(val id: Int) : Segment()

    /** Normalized text for the pre-tokenizer; [atStart]: it begins the typed text. */
    class Text(val text: String, val atStart: Boolean) : Segment()
}

/**
 * How the `tokenizers` library finds added tokens (its AddedVocabulary): tokens that are not
 * `normalized` in the typed text, then the others, each written as the normalizer writes it, in
 * the normalized stretches between; leftmost match first, the longest of those starting there.
 * The [normalizer] is the tokenizer's own: it runs on each stretch between typed tokens.
 */
class AddedTokens(tokens: List<AddedToken>, private val normalizer: Normalizer?) {
    private val typed = tokens.filter { !it.normalized && it.content.isNotEmpty() }.map { it.content to it }
        .sortedByDescending { it.first.length }
    private val normalized = tokens.filter { it.normalized && it.content.isNotEmpty() }
        .map { (normalizer?.normalize(it.content) ?: it.content) to it }
        .filter { it.first.isNotEmpty() }.sortedByDescending { it.first.length }

    /** The id of an added token by its content, as tokenizer.token_to_id looks it up before the model. */
    private val idsByContent = tokens.associate { it.content to it.id }

    fun idOf(content: String): Int? = idsByContent[content]

    /** [text] as its added tokens and the normalized stretches between them (the library's extract_and_normalize). */
    fun split(text: String): List<Segment> {
        val segments = ArrayList<Segment>()
        for (piece in matches(text, typed)) {
            if (piece.token != null) {
                segments.add(Segment.Added(piece.token.id))
                continue
            }
            val stretch = text.substring(piece.start, piece.end).let { normalizer?.normalize(it) ?: it }
            for (inner in matches(stretch, normalized)) {
                segments.add(
                    if (inner.token != null) Segment.Added(inner.token.id)
                    else Segment.Text(stretch.substring(inner.start, inner.end), atStart = piece.start == 0 && inner.start == 0),
                )
            }
        }
        return segments
    }

    private class Piece(val start: Int, val end: Int, val token: AddedToken?)

    /** [sentence] cut into tokens and the non-empty text between them, with each token's flags applied. */
    private fun matches(sentence: String, tokens: List<Pair<String, AddedToken>>): List<Piece> {
        if (sentence.isEmpty()) return emptyList()
        if (tokens.isEmpty()) return listOf(Piece(0, sentence.length, null))
        val pieces = ArrayList<Piece>()
        var pieceStart = 0  // where the text not yet given to a piece begins
        var searchFrom = 0
        while (true) {
            val (at, match) = leftmostLongest(sentence, tokens, searchFrom) ?: break
            val token = match.second
            var start = at
            var stop = at + match.first.length
            searchFrom = stop  // a refused match is not tried again shorter, as the Aho-Corasick scan goes on past it
            if (token.singleWord) {
                val wordBefore = start > 0 && isWordChar(sentence.codePointBefore(start))
                val wordAfter = stop < sentence.length && isWordChar(sentence.codePointAt(stop))
                if (wordBefore || wordAfter) continue
            }
            if (token.lstrip) {
                var newStart = start
                while (newStart > 0 && isUnicodeWhitespace(sentence.codePointBefore(newStart))) {
                    newStart -= Character.charCount(sentence.codePointBefore(newStart))
                }
                start = maxOf(newStart, pieceStart)
            }
            if (token.rstrip) {
                while (stop < sentence.length && isUnicodeWhitespace(sentence.codePointAt(stop))) {
                    stop += Character.charCount(sentence.codePointAt(stop))
                }
            }
            if (pieceStart < start) pieces.add(Piece(pieceStart, start, null))
            pieces.add(Piece(start, stop, token))
            pieceStart = stop
        }
        if (pieceStart < sentence.length) pieces.add(Piece(pieceStart, sentence.length, null))
        return pieces
    }

    private fun leftmostLongest(
        sentence: String, tokens: List<Pair<String, AddedToken>>, from: Int,
    ): Pair<Int, Pair<String, AddedToken>>? {
        for (at in from until sentence.length) {
            val match = tokens.firstOrNull { sentence.startsWith(it.first, at) }  // sorted longest first
            if (match != null) return at to match
        }
        return null
    }

    // The regex crate's Unicode \w: Alphabetic, marks, decimal digits, connector punctuation, joiners.
    private fun isWordChar(char: Int): Boolean = Character.isAlphabetic(char) || char == 0x200C || char == 0x200D ||
        when (Character.getType(char).toByte()) {
            Character.NON_SPACING_MARK, Character.ENCLOSING_MARK, Character.COMBINING_SPACING_MARK,
            Character.DECIMAL_DIGIT_NUMBER, Character.CONNECTOR_PUNCTUATION -> true
            else -> false
        }
}
