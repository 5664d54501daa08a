package ai.edgevariator.policy

import java.util.regex.Pattern

/*
 * Byte-level BPE (RoBERTa, DistilRoBERTa, GPT-2): the ByteLevel pre-tokenizer, which splits with
 * GPT-2's regex and writes every UTF-8 byte as one printable character, and the BPE model, which
 * merges a word's symbols pair by pair in the order of the merges list.
 */

/** The ByteLevel pre-tokenizer: GPT-2's words (when [useRegex]), each as its bytes in GPT-2's byte alphabet. */
class ByteLevel(private val addPrefixSpace: Boolean, private val useRegex: Boolean) : PreTokenizer {
    override fun words(text: String, atStart: Boolean): List<String> {
        val spaced = if (addPrefixSpace && !text.startsWith(' ')) " $text" else text
        val pieces = if (useRegex) isolate(spaced) else listOf(spaced)
        return pieces.map { piece ->
            val mapped = StringBuilder()
            for (byte in piece.toByteArray(Charsets.UTF_8)) mapped.append(BYTE_CHARS[byte.toInt() and 0xFF])
            mapped.toString()
        }
    }

    /** The regex's matches and the text between them, in order (the library's "Isolated" split). */
    private fun isolate(text: String): List<String> {
        val pieces = ArrayList<String>()
        val matcher = GPT2_WORDS.matcher(text)
        var end = 0
        while (matcher.find()) {
            if (matcher.start() > end) pieces.add(text.substring(end, matcher.start()))
            if (matcher.end() > matcher.start()) pieces.add(matcher.group())
            end = matcher.end()
        }
        if (end < text.length) pieces.add(text.substring(end))
        return pieces
    }

    companion object {
        // \s is Unicode White_Space here, as in Oniguruma, which the library runs this regex on.
        private val GPT2_WORDS: Pattern = Pattern.compile(
            """'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
            Pattern.UNICODE_CHARACTER_CLASS,
        )

        /**
         * GPT-2's bytes_to_unicode: the printable bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for
         * themselves, the other 68 for U+0100 onwards in byte order, so no byte becomes a space or
         * a control character.
         */
        private val BYTE_CHARS: CharArray = CharArray(256).also { chars ->
            var next = 256
            for (byte in 0 until 256) {
                val printable = byte in '!'.code..'~'.code || byte in 0xA1..0xAC || byte in 0xAE..0xFF
                chars[byte] = if (printable) byte.toChar() else (next++).toChar()
            }
        }
    }
}

/**
 * The BPE model: a word's characters looked up in [vocab], then the pair of neighbours whose merge
 * comes first in the merges list merged, leftmost first among equals, until no pair merges.
 * Characters outside the vocabulary become [unkId] (consecutive ones fused into one when
 * [fuseUnk]), or vanish when there is no unknown token, as the library does.
 */
class Bpe(
    private val vocab: Map<String, Int>,
    merges: List<Pair<String, String>>,
    private val unkId: Int?,
    private val fuseUnk: Boolean = false,
    private val ignoreMerges: Boolean = false,  // a word that is a whole vocabulary token is that token
) : TokenModel {
    private class Merge(val rank: Int, val id: Int)

    private val merges = HashMap<Long, Merge>(merges.size * 2)

    init {
        merges.forEachIndexed { rank, (left, right) ->
            fun idOf(token: String) = vocab[token]
                ?: throw TokenizerException("tokenizer.json BPE merge ${rank + 1} ('$left $right'): '$token' is not in the vocabulary")
            this.merges[pairKey(idOf(left), idOf(right))] = Merge(rank, idOf(left + right))
        }
    }

    override fun idOf(token: String): Int? = vocab[token]

    override fun ids(word: String): List<Int> {
        if (ignoreMerges) vocab[word]?.let { return listOf(it) }
        val symbols = ArrayList<Int>()
        var unknownBefore = false  // the last symbol is an unknown character
        var at = 0
        while (at < word.length) {
            val length = Character.charCount(word.codePointAt(at))
            val id = vocab[word.substring(at, at + length)]
            at += length
            when {
                id != null -> symbols.add(id)
                unkId == null -> continue
                !(fuseUnk && unknownBefore) -> symbols.add(unkId)
            }
            unknownBefore = id == null
        }
        while (symbols.size > 1) {
            var best: Merge? = null
            var bestAt = -1
            for (index in 0 until symbols.size - 1) {
                val merge = merges[pairKey(symbols[index], symbols[index + 1])] ?: continue
                if (best == null || merge.rank < best.rank) {
                    best = merge
                    bestAt = index
                }
            }
            if (best == null) break
            symbols[bestAt] = best.id
            symbols.removeAt(bestAt + 1)
        }
        return symbols
    }

    private fun pairKey(left: Int, right: Int): Long = (left.toLong() shl 32) or (right.toLong() and 0xFFFFFFFFL)
}
