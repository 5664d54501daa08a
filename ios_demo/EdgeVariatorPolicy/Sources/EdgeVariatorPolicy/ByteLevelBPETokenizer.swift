import Foundation

// RoBERTa's byte-level BPE, as Hugging Face `tokenizers` runs it: added tokens -> (a normalizer,
// if any) -> the ByteLevel pre-tokenizer (GPT-2's split, then every UTF-8 byte as one printable
// character) -> BPE merges by rank -> <s> A </s>. Tokenizer.encode truncates and pads it.

public struct ByteLevelBPETokenizer: Tokenizer {
    public let vocab: [String: Int]
    /// (left, right) -> (rank, merged): the merges list, earlier ranks first.
    let merges: [MergePair: (rank: Int, merged: Int)]
    /// The vocabulary id of each byte's character (nil: not in the vocabulary).
    let byteIds: [Int?]
    let addPrefixSpace: Bool
    let useRegex: Bool
    let unkId: Int?
    let fuseUnk: Bool
    let ignoreMerges: Bool
    let normalizer: Normalizer?
    let addedVocabulary: AddedVocabulary
    public let padId: Int
    public let prefixIds: [Int]
    public let suffixIds: [Int]

    public var kind: TokenizerKind { .bpe }
    public let vocabSize: Int

    struct MergePair: Hashable {
        let left: Int
        let right: Int
    }

    struct Model: Decodable {
        let type: String?
        let vocab: [String: Int]
        let merges: [Merge]
        let unk_token: String?
        let fuse_unk: Bool?
        let ignore_merges: Bool?
        let byte_fallback: Bool?
        let dropout: Double?
        let continuing_subword_prefix: String?
        let end_of_word_suffix: String?
    }

    /// A merge as either form tokenizer.json writes: "a b" (older files) or ["a", "b"].
    enum Merge: Decodable {
        case pair(String, String)
        case line(String)

        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let line = try? container.decode(String.self) {
                self = .line(line)
            } else {
                let pair = try container.decode([String].self)
                guard pair.count == 2 else {
                    throw DecodingError.dataCorruptedError(in: container, debugDescription: "a merge pair has \(pair.count) tokens")
                }
                self = .pair(pair[0], pair[1])
            }
        }
    }

    public init(tokenizerJSON data: Data, padToken: String = "<pad>") throws {
        let file = try TokenizerFile<Model>.decode(data)
        let model = file.model
        if let type = model.type, type != TokenizerKind.bpe.modelType {
            throw TextError.kindMismatch(manifest: TokenizerKind.bpe.rawValue, tokenizerJSON: type)
        }
        // The options RoBERTa-style tokenizers leave off; refused rather than run wrongly.
        if model.byte_fallback == true { throw TextError.unsupported(component: "BPE byte_fallback", reason: "byte-level BPE needs no fallback") }
        if let dropout = model.dropout, dropout != 0 { throw TextError.unsupported(component: "BPE dropout \(dropout)", reason: "it is for training") }
        if model.continuing_subword_prefix != nil || model.end_of_word_suffix != nil {
            throw TextError.unsupported(component: "BPE continuing_subword_prefix / end_of_word_suffix", reason: "byte-level BPE has neither")
        }
        guard let preTokenizer = file.preTokenizer, componentType(preTokenizer) == "ByteLevel" else {
            throw TextError.unsupported(component: "the pre_tokenizer \(file.preTokenizer.map(componentType) ?? "null") with BPE",
                                        reason: "the app runs byte-level BPE, after the ByteLevel pre-tokenizer")
        }
        vocab = model.vocab
        merges = try Self.mergeTable(model.merges, vocab: model.vocab)
        byteIds = byteCharacters.map { model.vocab[String($0)] }
        addPrefixSpace = preTokenizer["add_prefix_space"]?.boolValue ?? true
        useRegex = preTokenizer["use_regex"]?.boolValue ?? true
        unkId = try model.unk_token.map { token in
            guard let id = model.vocab[token] else { throw TextError.tokenizer("BPE unk_token \(token) is not in the vocabulary") }
            return id
        }
        fuseUnk = model.fuse_unk ?? false
        ignoreMerges = model.ignore_merges ?? false
        let normalizer = try file.normalizer.map(Normalizer.parse)
        self.normalizer = normalizer
        let addedTokens = resolvingIds(file.addedTokens ?? [], modelId: { model.vocab[$0] }, modelVocabSize: model.vocab.count)
        vocabSize = max(model.vocab.count, (addedTokens.map(\.id).max() ?? -1) + 1)
        addedVocabulary = AddedVocabulary(addedTokens) { normalizer?.apply($0) ?? $0 }
        guard let padId = addedTokens.first(where: { $0.content == padToken })?.id ?? model.vocab[padToken] else {
            throw TextError.tokenizer("the pad token \(padToken) is neither an added token nor in the vocabulary")
        }
        self.padId = padId
        (prefixIds, suffixIds) = try specialTokensAround(file.postProcessor)
    }

    static func mergeTable(_ merges: [Merge], vocab: [String: Int]) throws -> [MergePair: (rank: Int, merged: Int)] {
        var table: [MergePair: (rank: Int, merged: Int)] = [:]
        var rank = 0
        for merge in merges {
            let (left, right): (String, String)
            switch merge {
            case .pair(let a, let b): (left, right) = (a, b)
            case .line(let line):
                if line.hasPrefix("#version") { continue }
                let parts = line.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw TextError.tokenizer("BPE merge \(rank + 1) \"\(line)\" is not two tokens") }
                (left, right) = (String(parts[0]), String(parts[1]))
            }
            guard let leftId = vocab[left], let rightId = vocab[right], let merged = vocab[left + right] else {
                throw TextError.tokenizer("BPE merge \(rank + 1) (\(left), \(right)) names a token the vocabulary lacks")
            }
            table[MergePair(left: leftId, right: rightId)] = (rank, merged)  // a repeated pair keeps its last rank
            rank += 1
        }
        return table
    }

    /// Token ids of one text without <s> and </s> around it, untruncated.
    public func tokenize(_ text: String) -> [Int] {
        addedVocabulary.split(text) { normalizer?.apply($0) ?? $0 }.flatMap { segment -> [Int] in
            switch segment {
            case .token(let id): return [id]
            case .text(let text, _): return preTokenize(text).flatMap(bpe)
            }
        }
    }

    /// ByteLevel: a space before the text (add_prefix_space), GPT-2's split, each piece's UTF-8 bytes.
    func preTokenize(_ text: String) -> [[UInt8]] {
        var scalars = Array(text.unicodeScalars)
        if addPrefixSpace && scalars.first != " " { scalars.insert(" ", at: 0) }
        let pieces = useRegex ? gpt2Pieces(scalars) : [scalars[...]]
        return pieces.map { Array(String(String.UnicodeScalarView($0)).utf8) }
    }

    /// One piece's bytes as ids: a symbol per byte, then the lowest-ranked adjacent pair merged
    /// (the leftmost of equal ranks) until no pair has a merge.
    func bpe(_ bytes: [UInt8]) -> [Int] {
        if ignoreMerges, let id = vocab[String(bytes.map { byteCharacters[Int($0)] })] { return [id] }
        var symbols: [Int] = []
        var pendingUnk = false  // a run of unknown bytes not yet added (fuse_unk makes it one)
        for byte in bytes {
            if let id = byteIds[Int(byte)] {
                if pendingUnk, let unkId { symbols.append(unkId) }
                pendingUnk = false
                symbols.append(id)
            } else if let unkId {  // with no unk_token an unknown byte is dropped, as the crate does
                if pendingUnk && !fuseUnk { symbols.append(unkId) }
                pendingUnk = true
            }
        }
        if pendingUnk, let unkId { symbols.append(unkId) }
        while symbols.count > 1 {
            var best: (rank: Int, index: Int, merged: Int)?
            for index in 0..<symbols.count - 1 {
                if let merge = merges[MergePair(left: symbols[index], right: symbols[index + 1])],
                   merge.rank < (best?.rank ?? Int.max) {
                    best = (merge.rank, index, merge.merged)
                }
            }
            guard let best else { break }
            symbols[best.index] = best.merged
            symbols.remove(at: best.index + 1)
        }
        return symbols
    }
}

/// GPT-2's bytes-to-unicode map: the printable Latin-1 bytes stand for themselves, the others
/// (controls, space, the soft hyphen, ...) for U+0100 onwards, in byte order.
let byteCharacters: [Character] = {
    let printable = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
    var next = 0x100
    return (0..<256).map { byte in
        if printable.contains(byte) { return Character(Unicode.Scalar(UInt32(byte))!) }
        defer { next += 1 }
        return Character(Unicode.Scalar(UInt32(next))!)
    }
}()

/// GPT-2's split, `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
/// written out: at each place the first alternative that matches, as a backtracking regex takes it.
func gpt2Pieces(_ scalars: [Unicode.Scalar]) -> [ArraySlice<Unicode.Scalar>] {
    enum Kind { case letter, number, space, other }
    func kind(_ scalar: Unicode.Scalar) -> Kind {
        if scalar.properties.isWhitespace { return .space }  // \s: White_Space, as Oniguruma's
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }
    let kinds = scalars.map(kind)
    let count = scalars.count
    func runEnd(from start: Int, of wanted: Kind) -> Int {
        var end = start
        while end < count && kinds[end] == wanted { end += 1 }
        return end
    }
    func pieceEnd(at start: Int) -> Int {
        if scalars[start] == "'" && start + 1 < count {  // the contractions, case-sensitive
            let next = scalars[start + 1]
            if "stmd".unicodeScalars.contains(next) { return start + 2 }
            if start + 2 < count, ["re", "ve", "ll"].contains(String(String.UnicodeScalarView(scalars[start + 1...start + 2]))) {
                return start + 3
            }
        }
        if scalars[start] == " " && start + 1 < count && kinds[start + 1] != .space {  // " ?" then a run
            return runEnd(from: start + 1, of: kinds[start + 1])
        }
        if kinds[start] != .space { return runEnd(from: start, of: kinds[start]) }
        let end = runEnd(from: start, of: .space)
        // \s+(?!\S): a run of spaces before a word leaves its last space to that word.
        if end < count && end - start > 1 { return end - 1 }
        return end
    }
    var pieces: [ArraySlice<Unicode.Scalar>] = []
    var start = 0
    while start < count {
        let end = pieceEnd(at: start)
        pieces.append(scalars[start..<end])
        start = end
    }
    return pieces
}
