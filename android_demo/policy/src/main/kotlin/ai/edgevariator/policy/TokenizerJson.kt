package ai.edgevariator.policy

import java.util.Base64

/**
 * A Hugging Face tokenizer.json read into a [Tokenizer]. Every component this port implements is
 * named here; any other is refused by name ([UnsupportedComponentException]), never skipped.
 * The decoder, and the file's own truncation and padding (edge_variator/tokenizer.py sets its
 * own), play no part in encoding and are not read.
 */
internal object TokenizerJson {
    private val MODELS = TokenizerKind.entries.map { it.modelType }
    private val NORMALIZERS = listOf("BertNormalizer", "Precompiled", "Strip", "Replace", "Sequence")
    private val PRE_TOKENIZERS = listOf("BertPreTokenizer", "ByteLevel", "Metaspace")
    private val POST_PROCESSORS = listOf("TemplateProcessing", "RobertaProcessing", "BertProcessing")

    fun read(text: String, info: ModelInfo, padToken: String?): Tokenizer {
        val json = try {
            Json.parse(text)
        } catch (error: JsonException) {
            throw TokenizerException("tokenizer.json is not valid JSON: ${error.message}")
        }
        val root = Fields(json, "tokenizer.json")
        val modelFields = root.obj("model")
        val modelType = modelFields.string("type")
        val kind = TokenizerKind.entries.firstOrNull { it.modelType == modelType }
            ?: throw UnsupportedComponentException("model", modelType, MODELS)
        if (kind != info.tokenizer) {
            throw TokenizerException(
                "the manifest says model.tokenizer '${info.tokenizer.wireName}' but tokenizer.json holds a $modelType model " +
                    "('${kind.wireName}'): the bundle's manifest and tokenizer disagree, export the bundle again",
            )
        }
        val normalizer = root.optionalObj("normalizer")?.let(::normalizerOf)
        val preTokenizer = root.optionalObj("pre_tokenizer")?.let(::preTokenizerOf)
        val model = when (kind) {
            TokenizerKind.WORDPIECE -> wordPieceOf(modelFields)
            TokenizerKind.BPE -> bpeOf(modelFields)
            TokenizerKind.UNIGRAM -> unigramOf(modelFields)
        }
        val addedTokens = AddedTokens(addedTokensOf(root), normalizer)
        val (prefix, suffix) = root.optionalObj("post_processor")?.let(::specialsOf) ?: (emptyList<Int>() to emptyList())
        val pad = padToken ?: "[PAD]"
        val padId = info.padTokenId ?: addedTokens.idOf(pad) ?: model.idOf(pad)
            ?: throw TokenizerException("tokenizer.json has no pad token '$pad' and the manifest names no model.pad_token_id")
        return Tokenizer(kind, addedTokens, preTokenizer, model, prefix, suffix, padId, info.maxLength, info.minLength, info.padMultiple)
    }

    private fun normalizerOf(fields: Fields): Normalizer = when (val type = fields.string("type")) {
        "BertNormalizer" -> {
            val lowercase = fields.boolean("lowercase", true)
            BertNormalizer(
                cleanText = fields.boolean("clean_text", true),
                handleChineseChars = fields.boolean("handle_chinese_chars", true),
                lowercase = lowercase,
                stripAccents = fields.optionalBoolean("strip_accents") ?: lowercase,
            )
        }
        "Precompiled" -> Precompiled(
            try {
                Base64.getDecoder().decode(fields.string("precompiled_charsmap"))
            } catch (error: IllegalArgumentException) {
                throw TokenizerException("${fields.where}.precompiled_charsmap is not base64: ${error.message}")
            },
        )
        "Strip" -> Strip(left = fields.boolean("strip_left", false), right = fields.boolean("strip_right", false))
        "Replace" -> {
            val pattern = fields.obj("pattern")
            val content = fields.string("content")
            when {
                pattern.has("Regex") -> Replace.regex(pattern.string("Regex"), content)
                pattern.has("String") -> Replace.literal(pattern.string("String"), content)
                else -> throw TokenizerException("${pattern.where} is neither {\"Regex\": ...} nor {\"String\": ...}")
            }
        }
        "Sequence" -> NormalizerSequence(fields.objects("normalizers").map(::normalizerOf))
        else -> throw UnsupportedComponentException("normalizer", type, NORMALIZERS)
    }

    private fun preTokenizerOf(fields: Fields): PreTokenizer = when (val type = fields.string("type")) {
        "BertPreTokenizer" -> BertPreTokenizer
        "ByteLevel" -> ByteLevel(
            addPrefixSpace = fields.boolean("add_prefix_space", true),
            useRegex = fields.boolean("use_regex", true),
        )
        "Metaspace" -> {
            val replacement = fields.string("replacement")
            if (replacement.length != 1) throw TokenizerException("${fields.where}.replacement '$replacement' is not one character")
            val scheme = fields.optionalString("prepend_scheme") ?: "always"
            val prependScheme = PrependScheme.entries.firstOrNull { it.name.lowercase() == scheme }
                ?: throw TokenizerException("${fields.where}.prepend_scheme '$scheme' is not always, first or never")
            // Files from before prepend_scheme say add_prefix_space; false must not contradict the scheme, as the library checks.
            if (fields.optionalBoolean("add_prefix_space") == false && prependScheme != PrependScheme.NEVER) {
                throw TokenizerException("${fields.where}: add_prefix_space false contradicts prepend_scheme '$scheme'")
            }
            Metaspace(replacement[0], prependScheme, fields.boolean("split", true))
        }
        else -> throw UnsupportedComponentException("pre_tokenizer", type, PRE_TOKENIZERS)
    }

    /** The post-processor's special tokens for one text: those before it and those after it. */
    private fun specialsOf(fields: Fields): Pair<List<Int>, List<Int>> = when (val type = fields.string("type")) {
        "TemplateProcessing" -> {
            val specials = fields.obj("special_tokens")
            val before = ArrayList<Int>()
            val after = ArrayList<Int>()
            var sequences = 0
            for (piece in fields.objects("single")) {
                when {
                    piece.has("Sequence") -> {
                        val id = piece.obj("Sequence").string("id")
                        if (id != "A") throw TokenizerException("${piece.where}: a single text's template holds sequence $id, not A")
                        sequences++
                    }
                    piece.has("SpecialToken") -> {
                        val name = piece.obj("SpecialToken").string("id")
                        val ids = specials.obj(name).ints("ids")
                        (if (sequences == 0) before else after).addAll(ids)
                    }
                    else -> throw TokenizerException("${piece.where} is neither a Sequence nor a SpecialToken")
                }
            }
            if (sequences != 1) throw TokenizerException("${fields.where}.single holds the text $sequences times, not once")
            before to after
        }
        "RobertaProcessing", "BertProcessing" -> listOf(fields.tokenId("cls")) to listOf(fields.tokenId("sep"))
        else -> throw UnsupportedComponentException("post_processor", type, POST_PROCESSORS)
    }

    private fun addedTokensOf(root: Fields): List<AddedToken> =
        (if (root.has("added_tokens")) root.objects("added_tokens") else emptyList()).map { token ->
            AddedToken(
                content = token.string("content"),
                id = token.int("id"),
                singleWord = token.boolean("single_word", false),
                lstrip = token.boolean("lstrip", false),
                rstrip = token.boolean("rstrip", false),
                normalized = token.boolean("normalized", !token.boolean("special", false)),
            )
        }

    private fun wordPieceOf(fields: Fields): WordPiece {
        val vocab = fields.vocab("vocab")
        val unk = fields.optionalString("unk_token") ?: "[UNK]"
        return WordPiece(
            vocab,
            unkId = vocab[unk] ?: throw TokenizerException("${fields.where}: the vocabulary has no unk_token $unk"),
            subwordPrefix = fields.optionalString("continuing_subword_prefix") ?: "##",
            maxCharsPerWord = if (fields.has("max_input_chars_per_word")) fields.int("max_input_chars_per_word") else 100,
        )
    }

    private fun bpeOf(fields: Fields): Bpe {
        val dropout = fields.optionalDouble("dropout")
        if (dropout != null && dropout != 0.0) refuseOption(fields, "dropout $dropout", "it samples merges at random")
        if (fields.boolean("byte_fallback", false)) refuseOption(fields, "byte_fallback", "the byte-level alphabet covers every byte")
        for (affix in listOf("continuing_subword_prefix", "end_of_word_suffix")) {
            fields.optionalString(affix)?.let { refuseOption(fields, "$affix '$it'", "byte-level BPE has none") }
        }
        val vocab = fields.vocab("vocab")
        val merges = fields.list("merges").mapIndexed { index, merge ->
            when {
                merge is String -> merge.split(' ').takeIf { it.size == 2 }?.let { it[0] to it[1] }
                merge is List<*> && merge.size == 2 && merge.all { it is String } -> merge[0] as String to merge[1] as String
                else -> null
            } ?: throw TokenizerException("${fields.where}.merges[$index] is neither \"a b\" nor [\"a\", \"b\"]: $merge")
        }
        val unkId = fields.optionalString("unk_token")?.let { unk ->
            vocab[unk] ?: throw TokenizerException("${fields.where}: the vocabulary has no unk_token $unk")
        }
        return Bpe(vocab, merges, unkId, fuseUnk = fields.boolean("fuse_unk", false), ignoreMerges = fields.boolean("ignore_merges", false))
    }

    private fun unigramOf(fields: Fields): Unigram {
        if (fields.boolean("byte_fallback", false)) refuseOption(fields, "byte_fallback", "unknown characters are <unk> here")
        val pieces = fields.list("vocab").mapIndexed { index, entry ->
            val pair = entry as? List<*>
            val piece = pair?.getOrNull(0) as? String
            val score = pair?.getOrNull(1).let { (it as? Double) ?: (it as? Long)?.toDouble() }
            if (pair?.size != 2 || piece == null || score == null) {
                throw TokenizerException("${fields.where}.vocab[$index] is not [piece, score]: $entry")
            }
            piece to score
        }
        return Unigram(pieces, unkId = if (fields.optional("unk_id") == null) null else fields.int("unk_id"))
    }

    private fun refuseOption(fields: Fields, option: String, why: String): Nothing =
        throw TokenizerException("${fields.where}: $option is not supported by this app ($why)")

    /** Typed access to one object of tokenizer.json; errors name the field, e.g. "tokenizer.json.model.vocab". */
    private class Fields(json: Any?, val where: String) {
        private val map: Map<*, *> = json as? Map<*, *> ?: throw TokenizerException("$where must be a JSON object")

        fun has(key: String): Boolean = key in map

        fun optional(key: String): Any? = map[key]

        private fun value(key: String): Any? {
            if (key !in map) throw TokenizerException("$where.$key is missing")
            return map[key]
        }

        fun obj(key: String) = Fields(value(key), "$where.$key")

        fun optionalObj(key: String): Fields? = map[key]?.let { Fields(it, "$where.$key") }

        fun string(key: String): String = value(key) as? String ?: throw TokenizerException("$where.$key must be a string")

        fun optionalString(key: String): String? = map[key]?.let { it as? String ?: throw TokenizerException("$where.$key must be a string") }

        fun boolean(key: String, default: Boolean): Boolean = optionalBoolean(key) ?: default

        fun optionalBoolean(key: String): Boolean? = map[key]?.let { it as? Boolean ?: throw TokenizerException("$where.$key must be true or false") }

        fun optionalDouble(key: String): Double? = when (val number = map[key]) {
            null -> null
            is Long -> number.toDouble()
            is Double -> number
            else -> throw TokenizerException("$where.$key must be a number")
        }

        fun int(key: String): Int = (value(key) as? Long)?.takeIf { it in 0..Int.MAX_VALUE }?.toInt()
            ?: throw TokenizerException("$where.$key must be an integer id")

        fun list(key: String): List<Any?> = value(key) as? List<*> ?: throw TokenizerException("$where.$key must be a list")

        fun objects(key: String): List<Fields> = list(key).mapIndexed { index, item -> Fields(item, "$where.$key[$index]") }

        fun ints(key: String): List<Int> = list(key).map {
            (it as? Long)?.takeIf { id -> id in 0..Int.MAX_VALUE }?.toInt() ?: throw TokenizerException("$where.$key holds $it, not an id")
        }

        /** A ["token", id] pair, as RobertaProcessing's cls and sep: the id. */
        fun tokenId(key: String): Int = (list(key).getOrNull(1) as? Long)?.toInt()
            ?: throw TokenizerException("$where.$key must be [token, id]")

        /** A vocabulary object, token -> id. */
        fun vocab(key: String): Map<String, Int> = (value(key) as? Map<*, *>)?.entries?.associate { (token, id) ->
            token as String to ((id as? Long)?.toInt() ?: throw TokenizerException("$where.$key: the id of $token is $id"))
        } ?: throw TokenizerException("$where.$key must be an object of token ids")
    }
}
