import Foundation

// What every bundle tokenizer does the same way (edge_variator/tokenizer.py): the text's tokens
// between the post-processor's special tokens, truncated to max_length keeping those (and
// flagged), padded with the pad id to a multiple of 8, at least 16. The three models (WordPiece,
// byte-level BPE, Unigram) differ only in how a text becomes token ids.

public enum TextError: Error, Equatable, CustomStringConvertible, LocalizedError {
    case empty
    case tokenizer(String)
    /// A tokenizer.json component (normalizer, pre-tokenizer, post-processor, model or an
    /// option of one) this port does not run: refused, never skipped, so ids cannot drift.
    case unsupported(component: String, reason: String)
    /// The manifest's model.tokenizer and tokenizer.json's model.type disagree.
    case kindMismatch(manifest: String, tokenizerJSON: String)

    public var description: String {
        switch self {
        case .empty: return "the text is empty: there is nothing to classify"
        case .tokenizer(let problem): return "tokenizer: \(problem)"
        case .unsupported(let component, let reason):
            return "tokenizer.json: \(component) is not supported (\(reason)); export the bundle with a supported tokenizer"
        case .kindMismatch(let manifest, let file):
            return "manifest.json says model.tokenizer \"\(manifest)\" but tokenizer/tokenizer.json holds a \(file) model; export the bundle again"
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

/// The manifest's model.tokenizer: which tokenizer.json model the bundle runs.
public enum TokenizerKind: String, CaseIterable, Sendable {
    case wordpiece  // BERT, DistilBERT, ELECTRA; bundles without model.tokenizer
    case bpe  // byte-level, RoBERTa
    case unigram  // SentencePiece, XLM-R, multilingual-e5

    /// tokenizer.json's model.type for this kind.
    public var modelType: String {
        switch self {
        case .wordpiece: return "WordPiece"
        case .bpe: return "BPE"
        case .unigram: return "Unigram"
        }
    }

    /// The padding token when the folder has no tokenizer_config.json naming one.
    var defaultPadToken: String { self == .wordpiece ? "[PAD]" : "<pad>" }
}

public protocol Tokenizer: Sendable {
    var kind: TokenizerKind { get }
    /// The ids it can produce, added tokens included: the embedding rows the model needs.
    var vocabSize: Int { get }
    var padId: Int { get }
    /// The post-processor's special tokens before and after the text ([CLS] / [SEP], <s> / </s>).
    var prefixIds: [Int] { get }
    var suffixIds: [Int] { get }
    /// Token ids of one text without the special tokens around it, untruncated.
    func tokenize(_ text: String) -> [Int]
}

extension Tokenizer {
    public static var padMultiple: Int { 8 }  // the largest compression ratio: every ratio divides the length
    public static var minLength: Int { 16 }  // a dynamic export dimension of one block of 8 is specialised away

    /// The length a sequence of `length` real tokens is padded to.
    public static func paddedLength(_ length: Int) -> Int {
        max(minLength, (length + padMultiple - 1) / padMultiple * padMultiple)
    }

    /// The special tokens around the text, truncated to maxLength and padded; throws TextError
    /// for an empty text (Python's `text.strip()` empty).
    public func encode(_ text: String, maxLength: Int) throws -> Encoding {
        guard maxLength % Self.padMultiple == 0, maxLength >= Self.minLength else {
            throw TextError.tokenizer("max_length=\(maxLength) must be a multiple of \(Self.padMultiple) and >= \(Self.minLength)")
        }
        if text.unicodeScalars.allSatisfy(isPythonWhitespace) { throw TextError.empty }
        let tokens = tokenize(text)
        let room = maxLength - prefixIds.count - suffixIds.count  // truncation keeps the special tokens
        let ids = prefixIds + Array(tokens.prefix(max(0, room))) + suffixIds
        let length = Self.paddedLength(ids.count)
        return Encoding(inputIds: ids + Array(repeating: padId, count: length - ids.count),
                        attentionMask: Array(repeating: 1, count: ids.count) + Array(repeating: 0, count: length - ids.count),
                        truncated: tokens.count > room)
    }
}

/// A bundle's tokenizer/ folder as the manifest's model.tokenizer says to read it: the one way
/// the app (LoadedBundle) builds a tokenizer, whatever the encoder family.
public func loadTokenizer(directory: URL, kind: TokenizerKind) throws -> any Tokenizer {
    let json = directory.appendingPathComponent("tokenizer.json")
    let padToken = try configuredPadToken(directory) ?? kind.defaultPadToken
    guard FileManager.default.fileExists(atPath: json.path) else {
        if kind == .wordpiece { return try WordPieceTokenizer.load(directory: directory) }  // vocab.txt
        throw TextError.tokenizer("\(directory.path) has no tokenizer.json, which a \(kind.rawValue) tokenizer needs")
    }
    return try loadTokenizer(tokenizerJSON: try Data(contentsOf: json), kind: kind, padToken: padToken)
}

/// tokenizer.json's bytes, checked against the kind the manifest names.
public func loadTokenizer(tokenizerJSON data: Data, kind: TokenizerKind, padToken: String? = nil) throws -> any Tokenizer {
    let modelType = try TokenizerFile<ModelType>.decode(data).model.type
    if let modelType, modelType != kind.modelType {
        throw TextError.kindMismatch(manifest: kind.rawValue, tokenizerJSON: modelType)
    }
    let padToken = padToken ?? kind.defaultPadToken
    switch kind {
    case .wordpiece: return try WordPieceTokenizer.load(tokenizerJSON: data, padToken: padToken)
    case .bpe: return try ByteLevelBPETokenizer(tokenizerJSON: data, padToken: padToken)
    case .unigram: return try UnigramTokenizer(tokenizerJSON: data, padToken: padToken)
    }
}

/// The padding token tokenizer_config.json names, as edge_variator.tokenizer reads it.
func configuredPadToken(_ directory: URL) throws -> String? {
    let config = directory.appendingPathComponent("tokenizer_config.json")
    guard let data = try? Data(contentsOf: config) else { return nil }
    let value = try JSONValue.parse(data)["pad_token"]
    return value?.stringValue ?? value?["content"]?.stringValue  // {"content": "<pad>", ...} in newer configs
}

// MARK: - tokenizer.json's layout, shared by the three models

/// tokenizer.json with its model decoded as `Model`; the other components stay JSON, read (or
/// refused by name) by the tokenizer that runs them.
struct TokenizerFile<Model: Decodable>: Decodable {
    let model: Model
    let normalizer: JSONValue?
    let preTokenizer: JSONValue?
    let postProcessor: JSONValue?
    let addedTokens: [AddedToken]?

    enum CodingKeys: String, CodingKey {
        case model, normalizer
        case preTokenizer = "pre_tokenizer", postProcessor = "post_processor", addedTokens = "added_tokens"
    }

    static func decode(_ data: Data) throws -> TokenizerFile {
        do {
            return try JSONDecoder().decode(TokenizerFile.self, from: data)
        } catch let error as DecodingError {
            throw TextError.tokenizer("tokenizer.json cannot be read: \(Manifest.explain(error))")
        }
    }
}

struct ModelType: Decodable {
    let type: String?
}

/// A component's "type", for refusing it by name.
func componentType(_ component: JSONValue) -> String {
    component["type"]?.stringValue ?? "(no type) \(component)"
}

/// The post-processor's special tokens around a single text: RobertaProcessing / BertProcessing
/// (cls A sep), TemplateProcessing's `single` template, or none when there is no post-processor.
func specialTokensAround(_ postProcessor: JSONValue?) throws -> (prefix: [Int], suffix: [Int]) {
    guard let postProcessor else { return ([], []) }
    switch componentType(postProcessor) {
    case "RobertaProcessing", "BertProcessing":
        func id(_ key: String) throws -> Int {
            guard let pair = postProcessor[key]?.arrayValue, pair.count == 2, let id = pair[1].numberValue else {
                throw TextError.tokenizer("post_processor.\(key) is not a [token, id] pair")
            }
            return Int(id)
        }
        return ([try id("cls")], [try id("sep")])
    case "TemplateProcessing":
        guard let single = postProcessor["single"]?.arrayValue else {
            throw TextError.tokenizer("TemplateProcessing has no single template")
        }
        var prefix: [Int] = [], suffix: [Int] = [], sawSequence = false
        for piece in single {
            if let sequence = piece["Sequence"] {
                guard sequence["id"]?.stringValue == "A", !sawSequence else {
                    throw TextError.unsupported(component: "TemplateProcessing single \(single)", reason: "one text, $A, is what the app encodes")
                }
                sawSequence = true
            } else if let name = piece["SpecialToken"]?["id"]?.stringValue {
                guard let ids = postProcessor["special_tokens"]?[name]?["ids"]?.arrayValue?.compactMap(\.numberValue) else {
                    throw TextError.tokenizer("TemplateProcessing names \(name) but special_tokens lacks its ids")
                }
                if sawSequence { suffix += ids.map { Int($0) } } else { prefix += ids.map { Int($0) } }
            } else {
                throw TextError.unsupported(component: "TemplateProcessing piece \(piece)", reason: "pieces are Sequence or SpecialToken")
            }
        }
        return (prefix, suffix)
    case let other:
        throw TextError.unsupported(component: "the post_processor \(other)",
                                    reason: "the app runs RobertaProcessing, BertProcessing and TemplateProcessing")
    }
}

/// Python's str.isspace, for `text.strip()` being empty (what edge_variator.tokenizer refuses).
func isPythonWhitespace(_ scalar: Unicode.Scalar) -> Bool {
    if (0x1C...0x1F).contains(scalar.value) { return true }  // Python counts the separators
    return scalar.properties.isWhitespace
}
