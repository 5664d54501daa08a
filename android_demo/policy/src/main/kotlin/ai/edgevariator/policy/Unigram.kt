package ai.edgevariator.policy

/*
 * SentencePiece Unigram (XLM-R, multilingual-e5): the Metaspace pre-tokenizer, which writes spaces
 * as "▁" and starts a word at each, and the Unigram model, which picks the split of a word whose
 * pieces' log-probabilities sum highest (Viterbi).
 */

/** When Metaspace puts a [replacement] before a text that does not start with one. */
enum class PrependScheme { ALWAYS, FIRST, NEVER }

/** The Metaspace pre-tokenizer: spaces become [replacement]; with [split], each replacement begins a word. */
class Metaspace(
    private val replacement: Char = '▁',
    private val prependScheme: PrependScheme = PrependScheme.ALWAYS,
    private val split: Boolean = true,
) : PreTokenizer {
    override fun words(text: String, atStart: Boolean): List<String> {
        var replaced = text.replace(' ', replacement)  // only U+0020, as the library does
        val prepend = when (prependScheme) {
            PrependScheme.ALWAYS -> true
            PrependScheme.FIRST -> atStart  // only the stretch at the very start of the typed text
            PrependScheme.NEVER -> false
        }
        if (prepend && !replaced.startsWith(replacement)) replaced = replacement + replaced
        if (!split) return listOf(replaced)
        val words = ArrayList<String>()
        var wordStart = 0
        for (index in 1 until replaced.length) {
            if (replaced[index] == replacement) {
                words.add(replaced.substring(wordStart, index))
                wordStart = index
            }
        }
        if (wordStart < replaced.length) words.add(replaced.substring(wordStart))
        return words
    }
}

/**
 * The Unigram model: of every way to cut a word into vocabulary pieces, the one whose scores sum
 * highest, as the library's optimized Viterbi finds it (ties keep the cut found first). A
 * character no piece starts with is unknown, scored the lowest score minus 10, and unknowns in a
 * row are fused into one [unkId].
 */
class Unigram(pieces: List<Pair<String, Double>>, private val unkId: Int?) : TokenModel {
    private val scores = DoubleArray(pieces.size) { pieces[it].second }
    private val idsByPiece = HashMap<String, Int>(pieces.size * 2).also { map ->
        pieces.forEachIndexed { id, (piece, _) -> map[piece] = id }  // a repeated piece keeps its last id, as the library's map does
    }
    private val longestPiece = pieces.maxOfOrNull { it.first.length } ?: 0
    private val unknownScore = (scores.minOrNull() ?: 0.0) - 10.0

    init {
        if (unkId != null && unkId !in pieces.indices) {
            throw TokenizerException("tokenizer.json Unigram unk_id $unkId is not in its ${pieces.size}-piece vocabulary")
        }
    }

    override fun idOf(token: String): Int? = idsByPiece[token]

    override fun ids(word: String): List<Int> = bestPieces(word).map { piece ->
        idsByPiece[piece] ?: unkId ?: throw TokenizerException("'$piece' is unknown and the Unigram model has no unk_id")
    }

    /** The Viterbi cut of [word], unknown characters in a row fused into one piece. */
    private fun bestPieces(word: String): List<String> {
        val size = word.length
        val bestScore = DoubleArray(size + 1)
        val bestStart = IntArray(size + 1) { -1 }  // -1: no path ends here yet
        val bestId = IntArray(size + 1)
        fun offer(start: Int, end: Int, id: Int, score: Double) {
            val candidate = bestScore[start] + score
            if (bestStart[end] == -1 || candidate > bestScore[end]) {
                bestScore[end] = candidate
                bestStart[end] = start
                bestId[end] = id
            }
        }
        var start = 0
        while (start < size) {
            val charLength = Character.charCount(word.codePointAt(start))
            var hasSingleChar = false
            for (end in start + 1..minOf(size, start + longestPiece)) {  // shortest first, as the trie yields them
                val id = idsByPiece[word.substring(start, end)] ?: continue
                offer(start, end, id, scores[id])
                if (end - start == charLength) hasSingleChar = true
            }
            if (!hasSingleChar) {
                offer(start, start + charLength, unkId ?: throw TokenizerException("the Unigram model has no unk_id"), unknownScore)
            }
            start += charLength
        }
        val pieces = ArrayList<String>()
        val unknownRun = ArrayList<String>()  // backwards
        var end = size
        while (end > 0) {
            val begin = bestStart[end]
            val piece = word.substring(begin, end)
            if (bestId[end] == unkId) {
                unknownRun.add(piece)
            } else {
                if (unknownRun.isNotEmpty()) pieces.add(unknownRun.reversed().joinToString(""))
                unknownRun.clear()
                pieces.add(piece)
            }
            end = begin
        }
        if (unknownRun.isNotEmpty()) pieces.add(unknownRun.reversed().joinToString(""))
        return pieces.reversed()
    }
}
