import Foundation

// SentencePiece's Unigram (XLM-R, multilingual-e5), as Hugging Face `tokenizers` runs it: added
// tokens -> the normalizer (Precompiled, Strip, Replace) -> the Metaspace pre-tokenizer (spaces
// become "▁", one is put before the text, a piece starts at each "▁") -> the Viterbi path of
// highest total log-probability over the vocabulary -> <s> A </s>. Tokenizer.encode truncates
// and pads it.

public struct UnigramTokenizer: Tokenizer {
    public let pieces: [(piece: String, score: Double)]
    let trie: PieceTrie
    public let unkId: Int
    /// The score of an unknown character: the lowest in the vocabulary less 10, as the crate has it.
    let unkScore: Double
    let metaspace: Metaspace
    let normalizer: Normalizer?
    let addedVocabulary: AddedVocabulary
    public let padId: Int
    public let prefixIds: [Int]
    public let suffixIds: [Int]

    public var kind: TokenizerKind { .unigram }
    public let vocabSize: Int

    struct Model: Decodable {
        let type: String?
        let vocab: [Piece]
        let unk_id: Int?
        let byte_fallback: Bool?
    }

    struct Piece: Decodable {  // ["▁the", -3.2]
        let piece: String
        let score: Double

        init(from decoder: Decoder) throws {
            var container = try decoder.unkeyedContainer()
            piece = try container.decode(String.self)
            score = try container.decode(Double.self)
        }
    }

    public init(tokenizerJSON data: Data, padToken: String = "<pad>") throws {
        let file = try TokenizerFile<Model>.decode(data)
        let model = file.model
        if let type = model.type, type != TokenizerKind.unigram.modelType {
            throw TextError.kindMismatch(manifest: TokenizerKind.unigram.rawValue, tokenizerJSON: type)
        }
        if model.byte_fallback == true {
            throw TextError.unsupported(component: "Unigram byte_fallback", reason: "the app maps unknown characters to the unk token")
        }
        guard let unkId = model.unk_id, model.vocab.indices.contains(unkId) else {
            throw TextError.tokenizer("Unigram unk_id \(model.unk_id.map(String.init) ?? "null") is not a vocabulary id")
        }
        guard let preTokenizer = file.preTokenizer, componentType(preTokenizer) == "Metaspace" else {
            throw TextError.unsupported(component: "the pre_tokenizer \(file.preTokenizer.map(componentType) ?? "null") with Unigram",
                                        reason: "the app runs Unigram after the Metaspace pre-tokenizer")
        }
        pieces = model.vocab.map { ($0.piece, $0.score) }
        var trie = PieceTrie()
        for (id, piece) in model.vocab.enumerated() { trie.insert(Array(piece.piece.utf8), id: id) }  // a repeated piece: its last id
        self.trie = trie
        self.unkId = unkId
        unkScore = (model.vocab.map(\.score).min() ?? 0) - 10
        metaspace = try Metaspace(preTokenizer)
        let normalizer = try file.normalizer.map(Normalizer.parse)
        self.normalizer = normalizer
        let addedTokens = resolvingIds(file.addedTokens ?? [], modelId: { trie.id(of: Array($0.utf8)[...]) },
                                       modelVocabSize: model.vocab.count)
        vocabSize = max(model.vocab.count, (addedTokens.map(\.id).max() ?? -1) + 1)
        addedVocabulary = AddedVocabulary(addedTokens) { normalizer?.apply($0) ?? $0 }
        guard let padId = addedTokens.first(where: { $0.content == padToken })?.id ?? trie.id(of: Array(padToken.utf8)[...]) else {
            throw TextError.tokenizer("the pad token \(padToken) is neither an added token nor in the vocabulary")
        }
        self.padId = padId
        (prefixIds, suffixIds) = try specialTokensAround(file.postProcessor)
    }

    /// Token ids of one text without <s> and </s> around it, untruncated.
    public func tokenize(_ text: String) -> [Int] {
        addedVocabulary.split(text) { normalizer?.apply($0) ?? $0 }.flatMap { segment -> [Int] in
            switch segment {
            case .token(let id): return [id]
            case .text(let text, let atStart): return metaspace.pieces(text, atStart: atStart).flatMap { viterbi(Array($0.utf8)) }
            }
        }
    }

    /// The best segmentation of one piece. Each character boundary keeps the best path ending
    /// there; a character no vocabulary piece starts with as a whole is the unk token, and
    /// consecutive unknowns are one unk.
    func viterbi(_ bytes: [UInt8]) -> [Int] {
        var best = [(score: Double, start: Int, id: Int)?](repeating: nil, count: bytes.count + 1)
        var start = 0
        while start < bytes.count {
            let scoreHere = best[start]?.score ?? 0
            let characterEnd = start + utf8Length(bytes[start])
            var characterIsAPiece = false
            trie.prefixes(of: bytes[start...]) { end, id in
                let score = scoreHere + pieces[id].score
                if best[end] == nil || score > best[end]!.score { best[end] = (score, start, id) }  // ties: the shorter, found first
                if end == characterEnd { characterIsAPiece = true }
            }
            if !characterIsAPiece, best[characterEnd] == nil || scoreHere + unkScore > best[characterEnd]!.score {
                best[characterEnd] = (scoreHere + unkScore, start, unkId)
            }
            start = characterEnd
        }
        // Back from the end: spans (start, end, id), runs of unk fused into one span.
        var spans: [(start: Int, end: Int, id: Int)] = []
        var end = bytes.count
        while end > 0, let node = best[end] {
            if node.id == unkId, let last = spans.last, last.id == unkId {
                spans[spans.count - 1] = (node.start, last.end, unkId)
            } else {
                spans.append((node.start, end, node.id))
            }
            end = node.start
        }
        // The crate looks each span's text up again: a fused run that is itself a piece is that piece.
        return spans.reversed().map { span in
            span.id == unkId ? trie.id(of: bytes[span.start..<span.end]) ?? unkId : span.id
        }
    }
}

/// The Metaspace pre-tokenizer: " " becomes the replacement ("▁"), which is put before the text
/// (prepend_scheme "always", or "first" for the text's first piece only), and, with split, each
/// replacement starts a new piece.
struct Metaspace: Sendable {
    let replacement: Unicode.Scalar
    let prepend: String  // always, first, never
    let split: Bool

    init(_ json: JSONValue) throws {
        guard let replacement = json["replacement"]?.stringValue?.unicodeScalars, replacement.count == 1 else {
            throw TextError.tokenizer("Metaspace replacement \(json["replacement"] ?? .null) is not one character")
        }
        self.replacement = replacement.first!
        var prepend = json["prepend_scheme"]?.stringValue ?? "always"
        if json["add_prefix_space"]?.boolValue == false {  // older files; the crate refuses a contradiction
            guard json["prepend_scheme"] == nil || prepend == "never" else {
                throw TextError.tokenizer("Metaspace add_prefix_space false contradicts prepend_scheme \(prepend)")
            }
            prepend = "never"
        }
        guard ["always", "first", "never"].contains(prepend) else {
            throw TextError.unsupported(component: "Metaspace prepend_scheme \(prepend)", reason: "it is always, first or never")
        }
        self.prepend = prepend
        split = json["split"]?.boolValue ?? true
    }

    func pieces(_ text: String, atStart: Bool) -> [String] {
        var scalars = text.unicodeScalars.map { $0 == " " ? replacement : $0 }
        if scalars.first != replacement && (prepend == "always" || (prepend == "first" && atStart)) {
            scalars.insert(replacement, at: 0)
        }
        guard split else { return [String(String.UnicodeScalarView(scalars))] }
        var pieces: [String.UnicodeScalarView] = []
        for scalar in scalars {
            if scalar == replacement || pieces.isEmpty { pieces.append(String.UnicodeScalarView()) }
            pieces[pieces.count - 1].append(scalar)
        }
        return pieces.map { String($0) }
    }
}

/// The vocabulary's pieces by their UTF-8 bytes, for the prefix search the lattice is built from.
struct PieceTrie: Sendable {
    private var children: [Int: Int] = [:]  // node << 8 | byte -> child node
    private var pieceIds: [Int] = [-1]  // per node: the piece ending there, -1 for none; node 0 the root

    mutating func insert(_ bytes: [UInt8], id: Int) {
        var node = 0
        for byte in bytes {
            if let child = children[node << 8 | Int(byte)] {
                node = child
            } else {
                pieceIds.append(-1)
                children[node << 8 | Int(byte)] = pieceIds.count - 1
                node = pieceIds.count - 1
            }
        }
        pieceIds[node] = id
    }

    /// Every piece that starts `bytes`, shortest first: body(end index in `bytes`, piece id).
    func prefixes(of bytes: ArraySlice<UInt8>, _ body: (Int, Int) -> Void) {
        var node = 0
        for index in bytes.indices {
            guard let child = children[node << 8 | Int(bytes[index])] else { return }
            node = child
            if pieceIds[node] >= 0 { body(index + 1, pieceIds[node]) }
        }
    }

    func id(of bytes: ArraySlice<UInt8>) -> Int? {
        var node = 0
        for byte in bytes {
            guard let child = children[node << 8 | Int(byte)] else { return nil }
            node = child
        }
        return pieceIds[node] >= 0 ? pieceIds[node] : nil
    }
}

/// The length of the UTF-8 sequence a lead byte starts.
func utf8Length(_ lead: UInt8) -> Int {
    switch lead {
    case 0..<0x80: return 1
    case 0xC0..<0xE0: return 2
    case 0xE0..<0xF0: return 3
    default: return 4
    }
}
