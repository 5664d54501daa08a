package ai.edgevariator.policy

/** JSON text that cannot be read, or a value that cannot be written as JSON. */
class JsonException(message: String) : IllegalArgumentException(message)

/**
 * A small JSON reader and writer: org.json is Android-only and this module has no dependencies.
 *
 * Objects read as `Map<String, Any?>` (key order kept; a repeated key keeps its last value, as
 * Python's json does), arrays as `List<Any?>`, integers as `Long`, other numbers as `Double`.
 * `NaN`, `Infinity` and `-Infinity` are read because Python's json.dumps writes them.
 */
object Json {
    fun parse(text: String): Any? = Reader(text).readDocument()

    /** [value] as JSON text: maps with string keys, lists, strings, numbers, booleans and null. */
    fun write(value: Any?, indent: Int = 2): String {
        val out = StringBuilder()
        writeValue(out, value, indent, 0)
        return out.append('\n').toString()
    }

    private fun writeValue(out: StringBuilder, value: Any?, indent: Int, depth: Int) {
        when (value) {
            null -> out.append("null")
            is Boolean -> out.append(value)
            is Int, is Long, is Short, is Byte -> out.append(value)
            is Float -> writeDouble(out, value.toDouble())
            is Double -> writeDouble(out, value)
            is String -> writeString(out, value)
            is Map<*, *> -> writeContainer(out, value.entries, '{', '}', indent, depth) { entry ->
                val key = entry.key as? String ?: throw JsonException("JSON object keys must be strings, not ${entry.key}")
                writeString(out, key)
                out.append(if (indent > 0) ": " else ":")
                writeValue(out, entry.value, indent, depth + 1)
            }
            is Iterable<*> -> writeContainer(out, value.toList(), '[', ']', indent, depth) {
                writeValue(out, it, indent, depth + 1)
            }
            else -> throw JsonException("cannot write a ${value::class.simpleName} as JSON")
        }
    }

    private fun <T> writeContainer(
        out: StringBuilder, items: Collection<T>, open: Char, close: Char, indent: Int, depth: Int,
        writeItem: (T) -> Unit,
    ) {
        out.append(open)
        if (items.isEmpty()) {
            out.append(close)
            return
        }
        items.forEachIndexed { index, item ->
            if (index > 0) out.append(',')
            if (indent > 0) out.append('\n').append(" ".repeat(indent * (depth + 1)))
            writeItem(item)
        }
        if (indent > 0) out.append('\n').append(" ".repeat(indent * depth))
        out.append(close)
    }

    private fun writeDouble(out: StringBuilder, value: Double) {
        // A profile or manifest holding NaN would not load in the schema-checking Python side.
        if (value.isNaN() || value.isInfinite()) throw JsonException("cannot write $value as JSON")
        out.append(value.toString())
    }

    private fun writeString(out: StringBuilder, text: String) {
        out.append('"')
        for (char in text) {
            when {
                char == '"' -> out.append("\\\"")
                char == '\\' -> out.append("\\\\")
                char == '\n' -> out.append("\\n")
                char == '\r' -> out.append("\\r")
                char == '\t' -> out.append("\\t")
                char < ' ' -> out.append("\\u").append(String.format("%04x", char.code))
                else -> out.append(char)
            }
        }
        out.append('"')
    }

    private class Reader(private val text: String) {
        private var at = 0

        fun readDocument(): Any? {
            val value = readValue()
            skipSpace()
            if (at != text.length) fail("extra text after the JSON value")
            return value
        }

        private fun fail(problem: String): Nothing = throw JsonException("$problem at offset $at")

        private fun peek(char: Char): Boolean = at < text.length && text[at] == char

        private fun expect(char: Char) {
            if (!peek(char)) fail("expected '$char'")
            at++
        }

        private fun skipSpace() {
            while (at < text.length && (text[at] == ' ' || text[at] == '\t' || text[at] == '\n' || text[at] == '\r')) at++
        }

        private fun readValue(): Any? {
            skipSpace()
            if (at >= text.length) fail("unexpected end of JSON")
            val char = text[at]
            return when {
                char == '{' -> readObject()
                char == '[' -> readArray()
                char == '"' -> readString()
                char == 't' -> readWord("true", true)
                char == 'f' -> readWord("false", false)
                char == 'n' -> readWord("null", null)
                char == 'N' -> readWord("NaN", Double.NaN)
                char == 'I' -> readWord("Infinity", Double.POSITIVE_INFINITY)
                char == '-' || char in '0'..'9' -> readNumber()
                else -> fail("unexpected character '$char'")
            }
        }

        private fun readWord(word: String, value: Any?): Any? {
            if (!text.startsWith(word, at)) fail("unexpected text")
            at += word.length
            return value
        }

        private fun readObject(): Map<String, Any?> {
            expect('{')
            val fields = LinkedHashMap<String, Any?>()
            skipSpace()
            if (peek('}')) {
                at++
                return fields
            }
            while (true) {
                skipSpace()
                if (!peek('"')) fail("expected a string key")
                val key = readString()
                skipSpace()
                expect(':')
                fields[key] = readValue()
                skipSpace()
                if (peek(',')) {
                    at++
                    continue
                }
                expect('}')
                return fields
            }
        }

        private fun readArray(): List<Any?> {
            expect('[')
            val items = ArrayList<Any?>()
            skipSpace()
            if (peek(']')) {
                at++
                return items
            }
            while (true) {
                items.add(readValue())
                skipSpace()
                if (peek(',')) {
                    at++
                    continue
                }
                expect(']')
                return items
            }
        }

        private fun readString(): String {
            expect('"')
            val out = StringBuilder()
            while (true) {
                if (at >= text.length) fail("unterminated string")
                val char = text[at++]
                when {
                    char == '"' -> return out.toString()
                    char == '\\' -> {
                        if (at >= text.length) fail("unterminated string")
                        when (val escaped = text[at++]) {
                            '"', '\\', '/' -> out.append(escaped)
                            'b' -> out.append('\b')
                            'f' -> out.append('\u000C')
                            'n' -> out.append('\n')
                            'r' -> out.append('\r')
                            't' -> out.append('\t')
                            'u' -> {
                                if (at + 4 > text.length) fail("short \\u escape")
                                val code = text.substring(at, at + 4).toIntOrNull(16) ?: fail("bad \\u escape")
                                out.append(code.toChar())  // surrogate pairs arrive as two escapes
                                at += 4
                            }
                            else -> fail("bad escape '\\$escaped'")
                        }
                    }
                    char < ' ' -> fail("control character in a string")
                    else -> out.append(char)
                }
            }
        }

        private fun readNumber(): Any {
            val start = at
            if (peek('-')) {
                at++
                if (text.startsWith("Infinity", at)) {
                    at += "Infinity".length
                    return Double.NEGATIVE_INFINITY
                }
            }
            if (peek('0')) {
                at++
            } else if (at < text.length && text[at] in '1'..'9') {
                skipDigits()
            } else {
                fail("bad number")
            }
            var integral = true
            if (peek('.')) {
                integral = false
                at++
                if (at >= text.length || text[at] !in '0'..'9') fail("bad number")
                skipDigits()
            }
            if (peek('e') || peek('E')) {
                integral = false
                at++
                if (peek('+') || peek('-')) at++
                if (at >= text.length || text[at] !in '0'..'9') fail("bad number")
                skipDigits()
            }
            val token = text.substring(start, at)
            return if (integral) token.toLongOrNull() ?: token.toDouble() else token.toDouble()
        }

        private fun skipDigits() {
            while (at < text.length && text[at] in '0'..'9') at++
        }
    }
}
