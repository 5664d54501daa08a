package ai.edgevariator.policy

import java.util.regex.Matcher
import java.util.regex.Pattern

/*
 * The small tokenizer.json normalizers SentencePiece conversions chain after Precompiled
 * (XLM-R: Precompiled, then Strip and Replace of runs of spaces), and the Sequence that chains them.
 */

/** Strip: whitespace (Unicode White_Space) removed from the left and/or right end. */
class Strip(private val left: Boolean, private val right: Boolean) : Normalizer {
    override fun normalize(text: String): String {
        var start = 0
        var end = text.length
        while (left && start < end && isUnicodeWhitespace(text.codePointAt(start))) {
            start += Character.charCount(text.codePointAt(start))
        }
        while (right && end > start && isUnicodeWhitespace(text.codePointBefore(end))) {
            end -= Character.charCount(text.codePointBefore(end))
        }
        return text.substring(start, end)
    }
}

/** Replace: every match of [pattern] (a regex, or a literal string) becomes [content]. */
class Replace(private val pattern: Pattern, private val content: String) : Normalizer {
    override fun normalize(text: String): String = pattern.matcher(text).replaceAll(Matcher.quoteReplacement(content))

    companion object {
        // Oniguruma, which the library compiles the pattern with, reads \s, \w and \d as Unicode classes.
        fun regex(pattern: String, content: String) = Replace(Pattern.compile(pattern, Pattern.UNICODE_CHARACTER_CLASS), content)

        fun literal(pattern: String, content: String) = Replace(Pattern.compile(Pattern.quote(pattern)), content)
    }
}

/** Sequence: each normalizer on what the one before wrote. */
class NormalizerSequence(private val normalizers: List<Normalizer>) : Normalizer {
    override fun normalize(text: String): String = normalizers.fold(text) { normalized, normalizer -> normalizer.normalize(normalized) }
}
