import Foundation

// The normalizers a byte-level BPE or SentencePiece tokenizer.json may carry (transformers'
// XLM-R converter writes Sequence[Precompiled, Strip, Replace]), each as the `tokenizers` crate
// applies it. WordPiece's BertNormalizer lives with WordPiece.

indirect enum Normalizer: Sendable {
    case precompiled(PrecompiledCharsmap)
    case strip(left: Bool, right: Bool)
    case replace(Replacement)
    case sequence([Normalizer])

    /// A tokenizer.json normalizer; any type but these four is refused by name.
    static func parse(_ json: JSONValue) throws -> Normalizer {
        switch componentType(json) {
        case "Sequence":
            guard let parts = json["normalizers"]?.arrayValue else { throw TextError.tokenizer("normalizer Sequence has no normalizers") }
            return .sequence(try parts.map(parse))
        case "Precompiled":
            guard let charsmap = json["precompiled_charsmap"]?.stringValue else {
                throw TextError.tokenizer("normalizer Precompiled has no precompiled_charsmap")
            }
            return .precompiled(try PrecompiledCharsmap(base64: charsmap))
        case "Strip":
            return .strip(left: json["strip_left"]?.boolValue ?? false, right: json["strip_right"]?.boolValue ?? false)
        case "Replace":
            return .replace(try Replacement(json))
        case let other:
            throw TextError.unsupported(component: "the normalizer \(other)",
                                        reason: "the app runs Precompiled, Strip, Replace and Sequence of them (BertNormalizer with WordPiece)")
        }
    }

    func apply(_ text: String) -> String {
        switch self {
        case .precompiled(let charsmap): return charsmap.normalize(text)
        case .strip(let left, let right): return stripWhitespace(text, left: left, right: right)
        case .replace(let replacement): return replacement.apply(text)
        case .sequence(let normalizers): return normalizers.reduce(text) { $1.apply($0) }
        }
    }
}

/// Unicode whitespace (Rust's char::is_whitespace) off either end.
func stripWhitespace(_ text: String, left: Bool, right: Bool) -> String {
    var scalars = Substring(text).unicodeScalars
    if left { scalars = scalars.drop { $0.properties.isWhitespace } }
    if right { while let last = scalars.last, last.properties.isWhitespace { scalars = scalars.dropLast() } }
    return String(scalars)
}

/// Replace: every match of a literal string or a regex, left to right, becomes `content`.
struct Replacement: @unchecked Sendable {  // NSRegularExpression is immutable once made
    let literal: [Unicode.Scalar]?
    let regex: NSRegularExpression?
    let content: String

    init(_ json: JSONValue) throws {
        guard let content = json["content"]?.stringValue else { throw TextError.tokenizer("normalizer Replace has no content") }
        self.content = content
        if let string = json["pattern"]?["String"]?.stringValue, !string.isEmpty {
            literal = Array(string.unicodeScalars)
            regex = nil
        } else if let pattern = json["pattern"]?["Regex"]?.stringValue, !pattern.isEmpty {
            // Oniguruma there, ICU here: the same for the patterns converters write (" {2,}").
            do {
                regex = try NSRegularExpression(pattern: pattern)
            } catch {
                throw TextError.unsupported(component: "the Replace regex \(pattern)", reason: "it does not compile here: \(error)")
            }
            literal = nil
        } else {
            throw TextError.unsupported(component: "the Replace pattern \(json["pattern"] ?? .null)",
                                        reason: "a non-empty String or Regex pattern is what the app runs")
        }
    }

    func apply(_ text: String) -> String {
        if let regex {
            return regex.stringByReplacingMatches(in: text, range: NSRange(text.startIndex..., in: text),
                                                  withTemplate: NSRegularExpression.escapedTemplate(for: content))
        }
        guard let literal else { return text }
        let scalars = Array(text.unicodeScalars)  // scalar by scalar: String's == would match canonically equal text
        var out = String.UnicodeScalarView()
        var index = 0
        while index < scalars.count {
            if index + literal.count <= scalars.count && scalars[index..<index + literal.count].elementsEqual(literal) {
                out.append(contentsOf: content.unicodeScalars)
                index += literal.count
            } else {
                out.append(scalars[index])
                index += 1
            }
        }
        return String(out)
    }
}
