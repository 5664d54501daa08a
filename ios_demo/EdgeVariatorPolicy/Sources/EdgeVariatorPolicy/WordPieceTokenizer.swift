import Foundation

// BERT's WordPiece, as Hugging Face `tokenizers` runs it for the bundle's tokenizer/ (added tokens
// -> BertNormalizer -> BertPreTokenizer -> WordPiece -> [CLS] A [SEP]); Tokenizer.encode truncates
// and pads it.

public struct WordPieceTokenizer: Tokenizer {
    public let vocab: [String: Int]
    public let normalizer: BertNormalizer
    public let unkToken: String
    public let prefix: String
    public let maxCharsPerWord: Int
    public let padId: Int
    public let unkId: Int
    public let prefixIds: [Int]
    public let suffixIds: [Int]
    /// Tokens matched in the text before anything else ([CLS], [SEP], ... typed literally become
    /// those tokens, as Hugging Face's added tokens do).
    public let addedTokens: [AddedToken]
    let addedVocabulary: AddedVocabulary

    public var kind: TokenizerKind { .wordpiece }
    public let vocabSize: Int

    public static let bertSpecialTokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

    /// specialIds: the ids around the text, [CLS] and [SEP] unless given.
    public init(vocab: [String: Int], lowercase: Bool = true, stripAccents: Bool? = nil, cleanText: Bool = true,
                handleChineseChars: Bool = true, unkToken: String = "[UNK]", prefix: String = "##",
                maxCharsPerWord: Int = 100, padToken: String = "[PAD]", addedTokens: [AddedToken]? = nil,
                specialIds: (prefix: [Int], suffix: [Int])? = nil) throws {
        func id(_ token: String) throws -> Int {
            guard let id = vocab[token] else { throw TextError.tokenizer("the vocabulary lacks \(token)") }
            return id
        }
        self.vocab = vocab
        normalizer = BertNormalizer(lowercase: lowercase, stripAccents: stripAccents ?? lowercase,  // unset follows lowercase
                                    cleanText: cleanText, handleChineseChars: handleChineseChars)
        self.unkToken = unkToken
        self.prefix = prefix
        self.maxCharsPerWord = maxCharsPerWord
        let addedTokens = addedTokens
            ?? Self.bertSpecialTokens.compactMap { token in vocab[token].map { AddedToken(id: $0, content: token) } }
        padId = try addedTokens.first { $0.content == padToken }?.id ?? id(padToken)
        unkId = try id(unkToken)
        (prefixIds, suffixIds) = try specialIds ?? ([id("[CLS]")], [id("[SEP]")])
        self.addedTokens = addedTokens
        vocabSize = max(vocab.count, (addedTokens.map(\.id).max() ?? -1) + 1)
        addedVocabulary = AddedVocabulary(addedTokens, normalize: normalizer.normalize)
    }

    /// A bundle's tokenizer/ folder: tokenizer.json (what `save_pretrained` writes), else vocab.txt.
    public static func load(directory: URL) throws -> WordPieceTokenizer {
        let padToken = try configuredPadToken(directory) ?? "[PAD]"
        let json = directory.appendingPathComponent("tokenizer.json")
        if FileManager.default.fileExists(atPath: json.path) {
            return try load(tokenizerJSON: Data(contentsOf: json), padToken: padToken)
        }
        let vocabFile = directory.appendingPathComponent("vocab.txt")
        guard let text = try? String(contentsOf: vocabFile, encoding: .utf8) else {
            throw TextError.tokenizer("\(directory.path) has neither tokenizer.json nor vocab.txt")
        }
        var vocab: [String: Int] = [:]
        for (index, line) in text.components(separatedBy: "\n").enumerated() where !line.isEmpty || index == 0 {
            let token = line.hasSuffix("\r") ? String(line.dropLast()) : line
            if vocab[token] == nil { vocab[token] = index }
        }
        return try WordPieceTokenizer(vocab: vocab, padToken: padToken)
    }

    struct Model: Decodable {
        let type: String?
        let vocab: [String: Int]
        let unk_token: String?
        let continuing_subword_prefix: String?
        let max_input_chars_per_word: Int?
    }

    public static func load(tokenizerJSON data: Data, padToken: String = "[PAD]") throws -> WordPieceTokenizer {
        let file = try TokenizerFile<Model>.decode(data)
        if let type = file.model.type, type != TokenizerKind.wordpiece.modelType {
            throw TextError.kindMismatch(manifest: TokenizerKind.wordpiece.rawValue, tokenizerJSON: type)
        }
        guard let normalizer = file.normalizer, componentType(normalizer) == "BertNormalizer" else {
            throw TextError.unsupported(component: "the normalizer \(file.normalizer.map(componentType) ?? "null") with WordPiece",
                                        reason: "the app runs WordPiece after BertNormalizer")
        }
        guard let preTokenizer = file.preTokenizer, componentType(preTokenizer) == "BertPreTokenizer" else {
            throw TextError.unsupported(component: "the pre_tokenizer \(file.preTokenizer.map(componentType) ?? "null") with WordPiece",
                                        reason: "the app runs WordPiece after BertPreTokenizer")
        }
        func flag(_ key: String) -> Bool? { normalizer[key]?.boolValue }
        return try WordPieceTokenizer(vocab: file.model.vocab, lowercase: flag("lowercase") ?? true,
                                      stripAccents: flag("strip_accents"), cleanText: flag("clean_text") ?? true,
                                      handleChineseChars: flag("handle_chinese_chars") ?? true,
                                      unkToken: file.model.unk_token ?? "[UNK]",
                                      prefix: file.model.continuing_subword_prefix ?? "##",
                                      maxCharsPerWord: file.model.max_input_chars_per_word ?? 100,
                                      padToken: padToken,
                                      addedTokens: resolvingIds(file.addedTokens ?? [], modelId: { file.model.vocab[$0] },
                                                                modelVocabSize: file.model.vocab.count),
                                      specialIds: try specialTokensAround(file.postProcessor))
    }

    /// Token ids of one text without [CLS] and [SEP] around it, untruncated.
    public func tokenize(_ text: String) -> [Int] {
        addedVocabulary.split(text, normalize: normalizer.normalize).flatMap { segment -> [Int] in
            switch segment {
            case .token(let id): return [id]
            case .text(let text, _): return words(text).flatMap(wordPiece)
            }
        }
    }

    // MARK: - BertPreTokenizer: split on whitespace, and every punctuation mark is a word

    func words(_ text: String) -> [[Unicode.Scalar]] {
        var words: [[Unicode.Scalar]] = []
        var current: [Unicode.Scalar] = []
        for scalar in text.unicodeScalars {
            if isWhitespace(scalar) {
                if !current.isEmpty { words.append(current); current = [] }
            } else if isPunctuation(scalar) {
                if !current.isEmpty { words.append(current); current = [] }
                words.append([scalar])
            } else {
                current.append(scalar)
            }
        }
        if !current.isEmpty { words.append(current) }
        return words
    }

    // MARK: - WordPiece: greedy longest match, "##" for a continuation; a word that fails is [UNK]

    func wordPiece(_ word: [Unicode.Scalar]) -> [Int] {
        if word.count > maxCharsPerWord { return [unkId] }
        var pieces: [Int] = []
        var start = 0
        while start < word.count {
            var end = word.count
            var found: Int?
            while start < end {
                var piece = String(String.UnicodeScalarView(word[start..<end]))
                if start > 0 { piece = prefix + piece }
                if let id = vocab[piece] { found = id; break }
                end -= 1
            }
            guard let id = found else { return [unkId] }
            pieces.append(id)
            start = end
        }
        return pieces
    }
}

/// BertNormalizer: drop control characters, spaces for whitespace, spaces around CJK ideographs,
/// then strip accents and lowercase.
public struct BertNormalizer: Sendable {
    public let lowercase: Bool
    public let stripAccents: Bool
    public let cleanText: Bool
    public let handleChineseChars: Bool

    func normalize(_ text: String) -> String {
        var scalars: [Unicode.Scalar] = []
        for scalar in text.unicodeScalars {
            if cleanText {
                if scalar.value == 0 || scalar.value == 0xFFFD || isControl(scalar) { continue }
                if isWhitespace(scalar) { scalars.append(" "); continue }
            }
            if handleChineseChars && isChinese(scalar) {
                scalars.append(contentsOf: [" ", scalar, " "])
            } else {
                scalars.append(scalar)
            }
        }
        if stripAccents {
            let decomposed = String(String.UnicodeScalarView(scalars)).decomposedStringWithCanonicalMapping
            scalars = decomposed.unicodeScalars.filter { $0.properties.generalCategory != .nonspacingMark }
        }
        if lowercase {  // per scalar, as Rust's char::to_lowercase (no final-sigma context)
            scalars = scalars.flatMap { $0.properties.lowercaseMapping.unicodeScalars }
        }
        return String(String.UnicodeScalarView(scalars))
    }
}

// MARK: - Character classes, as the Rust `tokenizers` crate defines them for BERT

func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
    scalar == "\t" || scalar == "\n" || scalar == "\r" || scalar.properties.isWhitespace
}

/// Cc, Cf, Co, Cs: an unassigned code point is kept (and becomes [UNK]), as the crate keeps it.
func isControl(_ scalar: Unicode.Scalar) -> Bool {
    if scalar == "\t" || scalar == "\n" || scalar == "\r" { return false }
    switch scalar.properties.generalCategory {
    case .control, .format, .surrogate, .privateUse: return true
    default: return false
    }
}

func isPunctuation(_ scalar: Unicode.Scalar) -> Bool {
    let value = scalar.value
    if (33...47).contains(value) || (58...64).contains(value) || (91...96).contains(value) || (123...126).contains(value) {
        return true
    }
    switch scalar.properties.generalCategory {
    case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
         .initialPunctuation, .finalPunctuation, .otherPunctuation:
        return true
    default:
        return false
    }
}

func isChinese(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.value {
    case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
         0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
        return true
    default:
        return false
    }
}
