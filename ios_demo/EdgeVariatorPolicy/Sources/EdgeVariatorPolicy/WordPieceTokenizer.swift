import Foundation

// BERT's uncased WordPiece, as Hugging Face `tokenizers` runs it for the bundle's tokenizer/
// (BertNormalizer -> BertPreTokenizer -> WordPiece -> [CLS] A [SEP]), padded the way the exported
// methods need (edge_variator/tokenizer.py): to a multiple of 8, at least 16, at most max_length,
// truncated (and flagged) past it.

public enum TextError: Error, Equatable, CustomStringConvertible, LocalizedError {
    case empty
    case tokenizer(String)

    public var description: String {
        switch self {
        case .empty: return "the text is empty: there is nothing to classify"
        case .tokenizer(let problem): return "tokenizer: \(problem)"
        }
    }

    public var errorDescription: String? { description }
}

public struct Encoding: Equatable, Sendable {
    public let inputIds: [Int]  // padded: a multiple of 8, at least 16
    public let attentionMask: [Int]  // 1 for real tokens
    public let truncated: Bool  // the text was longer than max_length and lost its tail
    public var length: Int { inputIds.count }
    public var realTokens: Int { attentionMask.reduce(0, +) }
}

public struct WordPieceTokenizer: Sendable {
    public static let padMultiple = 8  // the largest compression ratio: every ratio divides the length
    public static let minLength = 16

    public let vocab: [String: Int]
    public let lowercase: Bool
    public let stripAccents: Bool
    public let cleanText: Bool
    public let handleChineseChars: Bool
    public let unkToken: String
    public let prefix: String
    public let maxCharsPerWord: Int
    public let clsId: Int
    public let sepId: Int
    public let padId: Int
    public let unkId: Int
    /// Tokens matched in the raw text before anything else ([CLS], [SEP], ... typed literally
    /// become those tokens, as Hugging Face's added tokens do).
    public let addedTokens: [String: Int]

    public static let bertSpecialTokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

    public init(vocab: [String: Int], lowercase: Bool = true, stripAccents: Bool? = nil, cleanText: Bool = true,
                handleChineseChars: Bool = true, unkToken: String = "[UNK]", prefix: String = "##",
                maxCharsPerWord: Int = 100, addedTokens: [String: Int]? = nil) throws {
        func id(_ token: String) throws -> Int {
            guard let id = vocab[token] else { throw TextError.tokenizer("the vocabulary lacks \(token)") }
            return id
        }
        self.vocab = vocab
        self.lowercase = lowercase
        self.stripAccents = stripAccents ?? lowercase  // BertNormalizer: unset follows lowercase
        self.cleanText = cleanText
        self.handleChineseChars = handleChineseChars
        self.unkToken = unkToken
        self.prefix = prefix
        self.maxCharsPerWord = maxCharsPerWord
        clsId = try id("[CLS]")
        sepId = try id("[SEP]")
        padId = try id("[PAD]")
        unkId = try id(unkToken)
        self.addedTokens = addedTokens
            ?? Dictionary(uniqueKeysWithValues: Self.bertSpecialTokens.compactMap { token in vocab[token].map { (token, $0) } })
    }

    /// A bundle's tokenizer/ folder: tokenizer.json (what `save_pretrained` writes), else vocab.txt.
    public static func load(directory: URL) throws -> WordPieceTokenizer {
        let json = directory.appendingPathComponent("tokenizer.json")
        if FileManager.default.fileExists(atPath: json.path) {
            return try load(tokenizerJSON: Data(contentsOf: json))
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
        return try WordPieceTokenizer(vocab: vocab)
    }

    public static func load(tokenizerJSON data: Data) throws -> WordPieceTokenizer {
        struct File: Decodable {
            struct Model: Decodable {
                let type: String?
                let vocab: [String: Int]
                let unk_token: String?
                let continuing_subword_prefix: String?
                let max_input_chars_per_word: Int?
            }
            struct AddedToken: Decodable {
                let id: Int
                let content: String
                let normalized: Bool?
            }
            struct Normalizer: Decodable {
                let type: String?
                let lowercase: Bool?
                let strip_accents: Bool?
                let clean_text: Bool?
                let handle_chinese_chars: Bool?
            }
            let model: Model
            let normalizer: Normalizer?
            let added_tokens: [AddedToken]?
        }
        let file = try JSONDecoder().decode(File.self, from: data)
        if let type = file.model.type, type != "WordPiece" {
            throw TextError.tokenizer("tokenizer.json holds a \(type) model; this port reads WordPiece (BERT) only")
        }
        let normalizer = file.normalizer
        return try WordPieceTokenizer(vocab: file.model.vocab, lowercase: normalizer?.lowercase ?? true,
                                      stripAccents: normalizer?.strip_accents,
                                      cleanText: normalizer?.clean_text ?? true,
                                      handleChineseChars: normalizer?.handle_chinese_chars ?? true,
                                      unkToken: file.model.unk_token ?? "[UNK]",
                                      prefix: file.model.continuing_subword_prefix ?? "##",
                                      maxCharsPerWord: file.model.max_input_chars_per_word ?? 100,
                                      addedTokens: file.added_tokens.map { tokens in
                                          // Only tokens matched on the raw text (BERT's all are); see README.
                                          Dictionary(tokens.filter { $0.normalized != true }.map { ($0.content, $0.id) }) { first, _ in first }
                                      })
    }

    /// The length a sequence of `length` real tokens is padded to.
    public static func paddedLength(_ length: Int) -> Int {
        max(minLength, (length + padMultiple - 1) / padMultiple * padMultiple)
    }

    /// Token ids of one text without [CLS] and [SEP] around it, untruncated.
    public func tokenize(_ text: String) -> [Int] {
        splitAddedTokens(text).flatMap { segment -> [Int] in
            switch segment {
            case .token(let id): return [id]
            case .text(let text): return words(normalize(text)).flatMap(wordPiece)
            }
        }
    }

    enum Segment: Equatable {
        case text(String)
        case token(Int)
    }

    /// The text cut at every added token, the longest one where several start at the same place.
    func splitAddedTokens(_ text: String) -> [Segment] {
        if addedTokens.isEmpty { return [.text(text)] }
        let scalars = Array(text.unicodeScalars)
        let tokens = addedTokens.keys.map { (Array($0.unicodeScalars), addedTokens[$0]!) }.sorted { $0.0.count > $1.0.count }
        var segments: [Segment] = []
        var pending = String.UnicodeScalarView()
        var index = 0
        while index < scalars.count {
            let match = tokens.first { token, _ in
                !token.isEmpty && index + token.count <= scalars.count && Array(scalars[index..<index + token.count]) == token
            }
            if let (token, id) = match {
                if !pending.isEmpty { segments.append(.text(String(pending))); pending = String.UnicodeScalarView() }
                segments.append(.token(id))
                index += token.count
            } else {
                pending.append(scalars[index])
                index += 1
            }
        }
        if !pending.isEmpty { segments.append(.text(String(pending))) }
        return segments
    }

    /// [CLS] text [SEP], truncated to maxLength and padded; throws TextError for an empty text.
    public func encode(_ text: String, maxLength: Int) throws -> Encoding {
        guard maxLength % Self.padMultiple == 0, maxLength >= Self.minLength else {
            throw TextError.tokenizer("max_length=\(maxLength) must be a multiple of \(Self.padMultiple) and >= \(Self.minLength)")
        }
        if text.unicodeScalars.allSatisfy(isPythonWhitespace) { throw TextError.empty }
        let tokens = tokenize(text)
        let truncated = tokens.count + 2 > maxLength
        let ids = [clsId] + tokens.prefix(maxLength - 2) + [sepId]
        let length = Self.paddedLength(ids.count)
        return Encoding(inputIds: ids + Array(repeating: padId, count: length - ids.count),
                        attentionMask: Array(repeating: 1, count: ids.count) + Array(repeating: 0, count: length - ids.count),
                        truncated: truncated)
    }

    // MARK: - BertNormalizer

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

// MARK: - Character classes, as the Rust `tokenizers` crate defines them for BERT

func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
    scalar == "\t" || scalar == "\n" || scalar == "\r" || scalar.properties.isWhitespace
}

func isControl(_ scalar: Unicode.Scalar) -> Bool {
    if scalar == "\t" || scalar == "\n" || scalar == "\r" { return false }
    switch scalar.properties.generalCategory {
    case .control, .format, .surrogate, .privateUse, .unassigned: return true
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

/// Python's str.isspace, for `text.strip()` being empty (what edge_variator.tokenizer refuses).
func isPythonWhitespace(_ scalar: Unicode.Scalar) -> Bool {
    if (0x1C...0x1F).contains(scalar.value) { return true }  // Python counts the separators
    return scalar.properties.isWhitespace
}
