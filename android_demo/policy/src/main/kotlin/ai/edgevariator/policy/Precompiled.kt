package ai.edgevariator.policy

import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.charset.CharacterCodingException
import java.nio.charset.CodingErrorAction
import java.util.regex.Pattern

/**
 * SentencePiece's normalizer as tokenizer.json carries it (the Precompiled normalizer, XLM-R's
 * nmt_nfkc rules): [charsmap] is a little-endian u32 trie size, a Darts double-array trie over
 * UTF-8 bytes whose leaves are offsets into the rest, a pool of NUL-terminated replacements.
 *
 * It runs as the `tokenizers` library (spm_precompiled) runs it, odd rules included: per
 * extended grapheme cluster, a cluster under 6 UTF-8 bytes is replaced whole by the replacement of
 * the shortest trie key it starts with; a longer one, or one no key starts, character by character.
 */
class Precompiled(charsmap: ByteArray) : Normalizer {
    private val trie: IntArray  // the double array's units
    private val pool: ByteArray  // the replacements, each ended by a NUL

    init {
        if (charsmap.size < 4) throw TokenizerException("tokenizer.json Precompiled: the precompiled_charsmap is ${charsmap.size} bytes")
        val bytes = ByteBuffer.wrap(charsmap).order(ByteOrder.LITTLE_ENDIAN)
        val trieBytes = bytes.getInt(0).toLong() and 0xFFFFFFFFL
        if (trieBytes > charsmap.size - 4) {
            throw TokenizerException("tokenizer.json Precompiled: its trie of $trieBytes bytes is longer than the charsmap")
        }
        trie = IntArray((trieBytes / 4).toInt()) { bytes.getInt(4 + 4 * it) }
        pool = charsmap.copyOfRange(4 + trieBytes.toInt(), charsmap.size)
        try {  // as the library, refuse a pool that is not UTF-8
            Charsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(pool))
        } catch (error: CharacterCodingException) {
            throw TokenizerException("tokenizer.json Precompiled: its replacements are not UTF-8")
        }
        if (trie.isEmpty()) throw TokenizerException("tokenizer.json Precompiled: the precompiled_charsmap has no trie")
    }

    override fun normalize(text: String): String {
        val normalized = StringBuilder(text.length)
        val clusters = GRAPHEME.matcher(text)
        while (clusters.find()) {
            val cluster = clusters.group()
            val bytes = cluster.toByteArray(Charsets.UTF_8)
            val whole = if (bytes.size < 6) replacement(bytes) else null
            if (whole != null) {
                normalized.append(whole)
                continue
            }
            cluster.codePoints().forEach { char ->
                val single = String(Character.toChars(char))
                normalized.append(replacement(single.toByteArray(Charsets.UTF_8)) ?: single)
            }
        }
        return normalized.toString()
    }

    /** The replacement of the shortest trie key that [key] starts with, or null when none does. */
    private fun replacement(key: ByteArray): String? {
        val offset = firstLeaf(key)
        if (offset < 0 || offset > pool.size) return null
        var end = offset
        while (end < pool.size && pool[end] != 0.toByte()) end++
        return String(pool, offset, end - offset, Charsets.UTF_8)
    }

    /** Darts' common prefix search, stopped at its first (shortest) hit: that key's value, or -1. */
    private fun firstLeaf(key: ByteArray): Int {
        var node = offsetOf(unitAt(0) ?: return -1)
        for (byte in key) {
            val label = byte.toInt() and 0xFF
            if (label == 0) break  // a NUL ends the key, as in the C library
            node = node xor label
            val unit = unitAt(node) ?: return -1
            if (labelOf(unit) != label) return -1
            node = node xor offsetOf(unit)
            if ((unit ushr 8) and 1 == 1) return (unitAt(node) ?: return -1) and 0x7FFFFFFF  // has a leaf: its value
        }
        return -1
    }

    private fun unitAt(index: Int): Int? = trie.getOrNull(index)

    private fun labelOf(unit: Int): Int = unit and (Int.MIN_VALUE or 0xFF)  // the top bit set: a leaf unit, no label

    private fun offsetOf(unit: Int): Int = (unit ushr 10) shl ((unit and (1 shl 9)) ushr 6)

    companion object {
        // Extended grapheme clusters (UAX #29), as the unicode-segmentation crate cuts them.
        private val GRAPHEME: Pattern = Pattern.compile("\\X")
    }
}
