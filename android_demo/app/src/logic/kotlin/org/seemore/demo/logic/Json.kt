package org.seemore.demo.logic

// A small, strict JSON parser (RFC 8259): objects, arrays, strings with every escape (\uXXXX
// included), numbers, true, false, null. Anything else (trailing commas, comments, NaN, single
// quotes, control characters in strings, text after the value, duplicate keys) is an error that
// names its line and column. Values are read by dotted path: "spec.layout", "inputs.0.name".

/** Malformed JSON, or a path that is missing or has another type; the message is one line. */
class JsonException(message: String) : IllegalArgumentException(message)

/** JSON null (a missing key is not null). */
object JsonNull {
    override fun toString(): String = "null"
}

/** A JSON number as written; [isInteger] when it has no fraction and no exponent. */
class JsonNumber(val text: String, val isInteger: Boolean) {
    override fun toString(): String = text
}

/** A parsed JSON document; read its values with [string], [int], [intList] and a dotted path. */
class Json private constructor(private val root: Any) {

    /** The string at [path]. */
    fun string(path: String): String {
        val value = find(path)
        if (value is String) {
            return value
        }
        throw JsonException("'$path' is ${describe(value)}, not a string")
    }

    /** The integer at [path] (a number without fraction or exponent that fits an Int). */
    fun int(path: String): Int = toInt(path, find(path))

    /** The list of integers at [path]. */
    fun intList(path: String): List<Int> {
        val value = find(path)
        if (value !is List<*>) {
            throw JsonException("'$path' is ${describe(value)}, not a list of integers")
        }
        val out = ArrayList<Int>()
        for (i in value.indices) {
            out.add(toInt("$path.$i", value[i]))
        }
        return out
    }

    /** The integer at [path] as a Long (a number without fraction or exponent). */
    fun long(path: String): Long {
        val value = find(path)
        val long = if (value is JsonNumber && value.isInteger) value.text.toLongOrNull() else null
        return long ?: throw JsonException("'$path' is ${describe(value)}, not an integer")
    }

    /** The number of items of the list at [path]. */
    fun size(path: String): Int {
        val value = find(path)
        if (value is List<*>) {
            return value.size
        }
        throw JsonException("'$path' is ${describe(value)}, not a list")
    }

    /** Whether [path] exists (its value may be null). */
    fun has(path: String): Boolean = lookup(path) != null

    private fun toInt(path: String, value: Any?): Int {
        if (value !is JsonNumber || !value.isInteger) {
            throw JsonException("'$path' is ${describe(value)}, not an integer")
        }
        val long = value.text.toLongOrNull()
        if (long == null || long < Int.MIN_VALUE || long > Int.MAX_VALUE) {
            throw JsonException("'$path' is ${value.text}, out of the integer range")
        }
        return long.toInt()
    }

    private fun find(path: String): Any = lookup(path) ?: throw JsonException("missing key '$path'")

    private fun lookup(path: String): Any? {
        var node: Any = root
        for (segment in path.split('.')) {
            val next: Any? = when (node) {
                is Map<*, *> -> node[segment]
                is List<*> -> {
                    val index = if (segment.isNotEmpty() && segment.all { it in '0'..'9' }) segment.toIntOrNull() else null
                    if (index != null && index < node.size) node[index] else null
                }
                else -> null
            }
            node = next ?: return null
        }
        return node
    }

    companion object {
        private const val MAX_DEPTH = 256

        /** Parses [text]; throws [JsonException] with the line and column of the first error. */
        fun parse(text: String): Json = Json(Parser(text).document())

        private fun describe(value: Any?): String = when (value) {
            is String -> "a string"
            is JsonNumber -> "the number ${value.text}"
            is Boolean -> "$value"
            is List<*> -> "a list"
            is Map<*, *> -> "an object"
            JsonNull -> "null"
            else -> "missing"
        }

        /** [value] as a JSON string literal (quotes and escapes), for writing JSON. */
        fun quote(value: String): String {
            val sb = StringBuilder(value.length + 2)
            sb.append('"')
            for (c in value) {
                when {
                    c == '"' -> sb.append("\\\"")
                    c == '\\' -> sb.append("\\\\")
                    c == '\n' -> sb.append("\\n")
                    c == '\r' -> sb.append("\\r")
                    c == '\t' -> sb.append("\\t")
                    c < ' ' -> sb.append(String.format("\\u%04x", c - '\u0000'))
                    else -> sb.append(c)
                }
            }
            sb.append('"')
            return sb.toString()
        }
    }

    private class Parser(private val text: String) {
        private var pos = 0

        fun document(): Any {
            skipSpace()
            val value = value(0)
            skipSpace()
            if (pos != text.length) {
                fail("unexpected text after the JSON value")
            }
            return value
        }

        private fun value(depth: Int): Any {
            if (depth > MAX_DEPTH) {
                fail("nesting deeper than $MAX_DEPTH")
            }
            if (pos >= text.length) {
                fail("unexpected end of input, expected a value")
            }
            val c = text[pos]
            return when {
                c == '{' -> objectValue(depth)
                c == '[' -> arrayValue(depth)
                c == '"' -> stringValue()
                c == '-' || c in '0'..'9' -> numberValue()
                text.startsWith("true", pos) -> { pos += 4; true }
                text.startsWith("false", pos) -> { pos += 5; false }
                text.startsWith("null", pos) -> { pos += 4; JsonNull }
                else -> fail("unexpected character '${printable(c)}', expected a value")
            }
        }

        private fun objectValue(depth: Int): Map<String, Any> {
            val map = LinkedHashMap<String, Any>()
            pos += 1 // {
            skipSpace()
            if (peek() == '}') {
                pos += 1
                return map
            }
            while (true) {
                skipSpace()
                if (peek() != '"') {
                    fail("expected a string key")
                }
                val keyAt = pos
                val key = stringValue()
                if (map.containsKey(key)) {
                    pos = keyAt
                    fail("duplicate key '$key'")
                }
                skipSpace()
                expect(':')
                skipSpace()
                map[key] = value(depth + 1)
                skipSpace()
                when (peek()) {
                    ',' -> pos += 1
                    '}' -> {
                        pos += 1
                        return map
                    }
                    else -> fail("expected ',' or '}' in an object")
                }
            }
        }

        private fun arrayValue(depth: Int): List<Any> {
            val list = ArrayList<Any>()
            pos += 1 // [
            skipSpace()
            if (peek() == ']') {
                pos += 1
                return list
            }
            while (true) {
                skipSpace()
                list.add(value(depth + 1))
                skipSpace()
                when (peek()) {
                    ',' -> pos += 1
                    ']' -> {
                        pos += 1
                        return list
                    }
                    else -> fail("expected ',' or ']' in a list")
                }
            }
        }

        private fun stringValue(): String {
            val sb = StringBuilder()
            pos += 1 // opening quote
            while (true) {
                if (pos >= text.length) {
                    fail("unterminated string")
                }
                val c = text[pos]
                when {
                    c == '"' -> {
                        pos += 1
                        return sb.toString()
                    }
                    c == '\\' -> {
                        if (pos + 1 >= text.length) {
                            fail("unterminated escape")
                        }
                        val e = text[pos + 1]
                        when (e) {
                            '"' -> sb.append('"')
                            '\\' -> sb.append('\\')
                            '/' -> sb.append('/')
                            'b' -> sb.append('\b')
                            'f' -> sb.append('\u000C')
                            'n' -> sb.append('\n')
                            'r' -> sb.append('\r')
                            't' -> sb.append('\t')
                            'u' -> {
                                var code = 0
                                for (k in 0 until 4) {
                                    val at = pos + 2 + k
                                    val digit = if (at < text.length) Character.digit(text[at], 16) else -1
                                    if (digit < 0) {
                                        pos = minOf(at, text.length)
                                        fail("bad \\u escape: expected 4 hex digits")
                                    }
                                    code = code * 16 + digit
                                }
                                sb.append(code.toChar())
                                pos += 4
                            }
                            else -> {
                                pos += 1
                                fail("bad escape '\\${printable(e)}'")
                            }
                        }
                        pos += 2
                    }
                    c < ' ' -> fail("control character in a string (escape it)")
                    else -> {
                        sb.append(c)
                        pos += 1
                    }
                }
            }
        }

        private fun numberValue(): JsonNumber {
            val start = pos
            var integer = true
            if (peek() == '-') {
                pos += 1
            }
            if (peek() == '0') {
                pos += 1
                if (peek() in '0'..'9') {
                    fail("leading zero in a number")
                }
            } else if (peek() in '1'..'9') {
                digits()
            } else {
                fail("expected a digit")
            }
            if (peek() == '.') {
                integer = false
                pos += 1
                if (peek() !in '0'..'9') {
                    fail("expected a digit after '.'")
                }
                digits()
            }
            if (peek() == 'e' || peek() == 'E') {
                integer = false
                pos += 1
                if (peek() == '+' || peek() == '-') {
                    pos += 1
                }
                if (peek() !in '0'..'9') {
                    fail("expected a digit in the exponent")
                }
                digits()
            }
            return JsonNumber(text.substring(start, pos), integer)
        }

        private fun digits() {
            while (peek() in '0'..'9') {
                pos += 1
            }
        }

        /** The current character, or NUL at the end (NUL never starts a valid token). */
        private fun peek(): Char = if (pos < text.length) text[pos] else '\u0000'

        private fun expect(c: Char) {
            if (peek() != c) {
                fail("expected '$c'")
            }
            pos += 1
        }

        private fun skipSpace() {
            while (pos < text.length) {
                val c = text[pos]
                if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                    pos += 1
                } else {
                    return
                }
            }
        }

        private fun printable(c: Char): String = if (c < ' ') String.format("\\u%04x", c - '\u0000') else c.toString()

        private fun fail(message: String): Nothing {
            var line = 1
            var column = 1
            for (i in 0 until minOf(pos, text.length)) {
                if (text[i] == '\n') {
                    line += 1
                    column = 1
                } else {
                    column += 1
                }
            }
            throw JsonException("invalid JSON at line $line, column $column: $message")
        }
    }
}
