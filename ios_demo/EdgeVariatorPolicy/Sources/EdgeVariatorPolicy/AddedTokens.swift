import Foundation

// Hugging Face's added tokens (AddedVocabulary in `tokenizers`): special tokens typed in the text
// become their ids before the model sees it. Tokens with normalized=false are found in the raw
// text; the text between them is normalized, and tokens with normalized=true are then found in
// that (their own content normalized the same way). Matches are leftmost-longest; lstrip / rstrip
// take the whitespace beside a match into it, and a single_word token only counts where no word
// character touches it.

public struct AddedToken: Decodable, Equatable, Sendable {
    public let id: Int
    public let content: String
    public let singleWord: Bool
    public let lstrip: Bool
    public let rstrip: Bool
    public let normalized: Bool
    public let special: Bool

    public init(id: Int, content: String, singleWord: Bool = false, lstrip: Bool = false, rstrip: Bool = false,
                normalized: Bool = false, special: Bool = true) {
        self.id = id
        self.content = content
        self.singleWord = singleWord
        self.lstrip = lstrip
        self.rstrip = rstrip
        self.normalized = normalized
        self.special = special
    }

    enum CodingKeys: String, CodingKey {
        case id, content, lstrip, rstrip, normalized, special
        case singleWord = "single_word"
    }

    public init(from decoder: Decoder) throws {  // absent flags default as the `tokenizers` crate's do
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(Int.self, forKey: .id)
        content = try container.decode(String.self, forKey: .content)
        singleWord = try container.decodeIfPresent(Bool.self, forKey: .singleWord) ?? false
        lstrip = try container.decodeIfPresent(Bool.self, forKey: .lstrip) ?? false
        rstrip = try container.decodeIfPresent(Bool.self, forKey: .rstrip) ?? false
        normalized = try container.decodeIfPresent(Bool.self, forKey: .normalized) ?? true
        special = try container.decodeIfPresent(Bool.self, forKey: .special) ?? false
    }
}

/// The ids the `tokenizers` crate gives tokenizer.json's added tokens on loading (the file's own
/// ids are only checked there): a content already added or in the model's vocabulary keeps that
/// id, a new one takes the next id past the vocabulary.
func resolvingIds(_ tokens: [AddedToken], modelId: (String) -> Int?, modelVocabSize: Int) -> [AddedToken] {
    var idOfContent: [String: Int] = [:]
    var resolved: [Int: AddedToken] = [:]  // a content given twice keeps its id and takes the later flags
    var order: [Int] = []
    var next = modelVocabSize
    for token in tokens where !token.content.isEmpty {  // the crate ignores an empty token
        let id: Int
        if let known = idOfContent[token.content] ?? modelId(token.content) {
            id = known
        } else {
            id = next
            next += 1
        }
        idOfContent[token.content] = id
        if resolved[id] == nil { order.append(id) }
        resolved[id] = AddedToken(id: id, content: token.content, singleWord: token.singleWord, lstrip: token.lstrip,
                                  rstrip: token.rstrip, normalized: token.normalized, special: token.special)
    }
    return order.map { resolved[$0]! }
}

/// A piece of a text once its added tokens are found.
enum Segment: Equatable {
    case token(Int)
    /// Text for the pre-tokenizer and model; atStart: it begins the whole text (Metaspace's "first").
    case text(String, atStart: Bool)
}

struct AddedVocabulary: Sendable {
    let raw: TokenMatcher  // normalized=false tokens, found in the raw text
    let normalized: TokenMatcher  // normalized=true ones, found in the normalized text

    init(_ tokens: [AddedToken], normalize: (String) -> String) {
        raw = TokenMatcher(tokens.filter { !$0.normalized }.map { ($0.content, $0) })
        normalized = TokenMatcher(tokens.filter(\.normalized).map { (normalize($0.content), $0) })
    }

    var isEmpty: Bool { raw.isEmpty && normalized.isEmpty }

    /// The text cut at its added tokens, every text piece normalized; empty pieces dropped.
    func split(_ text: String, normalize: (String) -> String) -> [Segment] {
        raw.split(text, atStart: true).flatMap { segment -> [Segment] in
            guard case .text(let piece, let atStart) = segment else { return [segment] }
            return normalized.split(normalize(piece), atStart: atStart)
        }
    }
}

/// Leftmost-longest matching of a set of token strings, with the tokens' strip and word rules.
struct TokenMatcher: Sendable {
    private let byFirstScalar: [Unicode.Scalar: [(scalars: [Unicode.Scalar], token: AddedToken)]]  // longest first

    init(_ patterns: [(String, AddedToken)]) {
        var byFirstScalar: [Unicode.Scalar: [(scalars: [Unicode.Scalar], token: AddedToken)]] = [:]
        for (pattern, token) in patterns {
            let scalars = Array(pattern.unicodeScalars)
            guard let first = scalars.first else { continue }  // an empty pattern matches nothing
            byFirstScalar[first, default: []].append((scalars, token))
        }
        self.byFirstScalar = byFirstScalar.mapValues { candidates in candidates.sorted { $0.scalars.count > $1.scalars.count } }
    }

    var isEmpty: Bool { byFirstScalar.isEmpty }

    func split(_ text: String, atStart: Bool) -> [Segment] {
        let scalars = Array(text.unicodeScalars)
        func piece(_ range: Range<Int>) -> Segment {
            .text(String(String.UnicodeScalarView(scalars[range])), atStart: atStart && range.lowerBound == 0)
        }
        var segments: [Segment] = []
        var textStart = 0  // where the text not yet given to a segment begins
        for (matchStart, matchEnd, token) in matches(scalars) {
            var (start, end) = (matchStart, matchEnd)
            if token.singleWord {
                let wordBefore = start > 0 && isWordCharacter(scalars[start - 1])
                let wordAfter = end < scalars.count && isWordCharacter(scalars[end])
                if wordBefore || wordAfter { continue }
            }
            if token.lstrip {
                while start > 0 && scalars[start - 1].properties.isWhitespace { start -= 1 }
                start = max(start, textStart)  // an earlier token's rstrip may have taken those spaces
            }
            if token.rstrip {
                while end < scalars.count && scalars[end].properties.isWhitespace { end += 1 }
            }
            if textStart < start { segments.append(piece(textStart..<start)) }
            segments.append(.token(token.id))
            textStart = end
        }
        if textStart < scalars.count { segments.append(piece(textStart..<scalars.count)) }
        return segments
    }

    /// Non-overlapping matches, left to right, the longest where several start at one place
    /// (a match later discarded by its single_word rule still hides the ones it overlaps).
    private func matches(_ scalars: [Unicode.Scalar]) -> [(Int, Int, AddedToken)] {
        var found: [(Int, Int, AddedToken)] = []
        var index = 0
        while index < scalars.count {
            let match = byFirstScalar[scalars[index]]?.first { candidate in
                index + candidate.scalars.count <= scalars.count
                    && scalars[index..<index + candidate.scalars.count].elementsEqual(candidate.scalars)
            }
            if let match {
                found.append((index, index + match.scalars.count, match.token))
                index += match.scalars.count
            } else {
                index += 1
            }
        }
        return found
    }
}

/// The Rust regex crate's Unicode \w, which single_word tests on each side of a match.
func isWordCharacter(_ scalar: Unicode.Scalar) -> Bool {
    let properties = scalar.properties
    if properties.isAlphabetic || properties.isJoinControl { return true }
    switch properties.generalCategory {
    case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
    default: return false
    }
}
