import Foundation
import XCTest
@testable import EdgeVariatorPolicy

/// The three tokenizers against edge_variator.tokenizer (Hugging Face `tokenizers` underneath) on
/// the shared vectors: tests/vectors/tokenizers/{kind}.json holds, for the tokenizer folder {kind}/,
/// each text's padded ids, mask and truncation flag at max_length 128 or 16, and the texts it
/// refuses as empty (written by scripts/tokenizer_vectors.py). Every case must match.
final class TokenizerTests: XCTestCase {
    func testWordPieceMatchesTheSharedVectors() throws { try checkSharedVectors(.wordpiece) }
    func testByteLevelBPEMatchesTheSharedVectors() throws { try checkSharedVectors(.bpe) }
    func testUnigramMatchesTheSharedVectors() throws { try checkSharedVectors(.unigram) }

    func checkSharedVectors(_ kind: TokenizerKind) throws {
        let tally = Tally("tokenizer.\(kind.rawValue)")
        let vectors = try loadJSON(vectorFolder().appendingPathComponent("\(kind.rawValue).json"))
        let tokenizer = try loadTokenizer(directory: vectorFolder().appendingPathComponent(kind.rawValue), kind: kind)
        tally.record("kind \(kind.rawValue), pad id \(tokenizer.padId)",
                     vectors["kind"]?.stringValue == kind.rawValue && vectors["pad_token_id"]?.numberValue == Double(tokenizer.padId)
                         ? [] : ["the file says \(vectors["kind"] ?? .null), pad id \(vectors["pad_token_id"] ?? .null)"])
        let cases = try XCTUnwrap(vectors["cases"]?.arrayValue)
        var casesPassed = 0
        for (index, testCase) in cases.enumerated() {
            let text = testCase["text"]?.stringValue ?? ""
            let maxLength = Int(testCase["max_length"]?.numberValue ?? 0)
            let shown = text.count > 40 ? String(text.prefix(40)).debugDescription + "..." : text.debugDescription
            let problems = encodingProblems(tokenizer, text, maxLength: maxLength, expected: testCase)
            if problems.isEmpty { casesPassed += 1 }
            tally.record("[\(index)] max_length \(maxLength) \(shown)", problems)
        }
        let errors = vectors["errors"]?.arrayValue ?? []
        for entry in errors {
            let text = entry["text"]?.stringValue ?? ""
            do {
                _ = try tokenizer.encode(text, maxLength: 128)
                tally.record("empty text \(text.debugDescription) is refused", ["accepted"])
            } catch {
                tally.record("empty text \(text.debugDescription) is refused", error as? TextError == .empty ? [] : ["got \(error)"])
            }
        }
        print("\(kind.rawValue): \(casesPassed)/\(cases.count) cases match")
        tally.summary(expected: 1 + cases.count + errors.count)
    }

    func encodingProblems(_ tokenizer: any Tokenizer, _ text: String, maxLength: Int, expected: JSONValue) -> [String] {
        let ids = expected["input_ids"]?.arrayValue?.compactMap(\.numberValue).map { Int($0) } ?? []
        let mask = expected["attention_mask"]?.arrayValue?.compactMap(\.numberValue).map { Int($0) } ?? []
        do {
            let encoding = try tokenizer.encode(text, maxLength: maxLength)
            var problems: [String] = []
            if encoding.inputIds != ids {
                let first = zip(encoding.inputIds, ids).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                    ?? min(encoding.inputIds.count, ids.count)
                problems.append("ids differ from position \(first): got \(Array(encoding.inputIds.dropFirst(first).prefix(6))), "
                                + "expected \(Array(ids.dropFirst(first).prefix(6))) (lengths \(encoding.length), \(ids.count))")
            }
            if encoding.attentionMask != mask { problems.append("mask differs") }
            if encoding.truncated != expected["truncated"]?.boolValue { problems.append("truncated: got \(encoding.truncated)") }
            return problems
        } catch {
            return ["threw \(error)"]
        }
    }

    func vectorFolder() throws -> URL { try repoRoot().appendingPathComponent("tests/vectors/tokenizers") }

    /// A vector folder's tokenizer.json with `change` applied to it.
    func editedTokenizerJSON(_ kind: TokenizerKind, _ change: (inout [String: JSONValue]) -> Void) throws -> Data {
        var file = try XCTUnwrap(loadJSON(vectorFolder().appendingPathComponent("\(kind.rawValue)/tokenizer.json")).objectValue)
        change(&file)
        return try JSONEncoder().encode(JSONValue.object(file))
    }

    /// The text's ids, special tokens included, unpadded.
    func ids(_ tokenizer: any Tokenizer, _ text: String) throws -> [Int] {
        let encoding = try tokenizer.encode(text, maxLength: 128)
        return Array(encoding.inputIds.prefix(encoding.realTokens))
    }

    // MARK: - Added tokens: the flags the vectors do not exercise, against `tokenizers` 0.23.3's answers

    func testAddedTokenFlagsActAsInTheTokenizersLibrary() throws {
        let tally = Tally("tokenizer.added")
        func token(_ id: Int, _ content: String, singleWord: Bool = false, lstrip: Bool = false, rstrip: Bool = false,
                   normalized: Bool = false) -> JSONValue {
            .object(["id": .number(Double(id)), "content": .string(content), "single_word": .bool(singleWord), "lstrip": .bool(lstrip),
                     "rstrip": .bool(rstrip), "normalized": .bool(normalized), "special": .bool(false)])
        }
        // "word" is in the BPE vocabulary as 4262, so it keeps that id whatever the file says; "[both]" then takes 6002.
        let bpe = try loadTokenizer(tokenizerJSON: editedTokenizerJSON(.bpe) { file in
            file["added_tokens"] = .array((file["added_tokens"]?.arrayValue ?? []) + [
                token(6001, "[rs]", rstrip: true), token(6002, "word", singleWord: true),
                token(6003, "[both]", lstrip: true, rstrip: true, normalized: true),
            ])
        }, kind: .bpe, padToken: "<pad>")
        let bpeCases: [(String, [Int])] = [
            ("a [rs]   b", [0, 68, 224, 6001, 69, 2]),  // rstrip takes the spaces after it
            ("[rs]\t\nend", [0, 6001, 410, 2]),
            ("word words sword word.", [0, 4262, 3036, 1013, 599, 224, 4262, 17, 2]),  // single_word: not inside words
            ("x  [both]  y", [0, 91, 6002, 92, 2]),
            ("<mask> word<mask>", [0, 6000, 224, 4262, 6000, 2]),  // <mask> lstrip
            ("a<s>b</s>  <mask>", [0, 68, 0, 69, 2, 6000, 2]),
        ]
        // "ＡＢＣ" normalized=true matches the normalized text, so "ABC" too; "ＸＹ" normalized=false only itself.
        let unigram = try loadTokenizer(tokenizerJSON: editedTokenizerJSON(.unigram) { file in
            file["added_tokens"] = .array((file["added_tokens"]?.arrayValue ?? []) + [token(4002, "ＡＢＣ", normalized: true), token(4003, "ＸＹ")])
        }, kind: .unigram, padToken: "<pad>")
        let unigramCases: [(String, [Int])] = [
            ("xＡＢＣy and xABCy", [0, 137, 4002, 578, 9, 137, 4002, 578, 2]),
            ("ＸＹ but not XY", [0, 4003, 47, 35, 2168, 1569, 2]),
            ("  <mask>  spaced <s>", [0, 4001, 526, 14, 0, 2]),
        ]
        for (name, tokenizer, cases) in [("bpe", bpe, bpeCases), ("unigram", unigram, unigramCases)] {
            for (text, expected) in cases {
                let got = try ids(tokenizer, text)
                tally.record("\(name) \(text.debugDescription)", got == expected ? [] : ["got \(got), expected \(expected)"])
            }
        }
        tally.summary()
    }

    // MARK: - Refusals

    func testAComponentTheAppDoesNotRunIsRefusedByName() throws {
        let tally = Tally("tokenizer.unsupported")
        let refusals: [(TokenizerKind, String, JSONValue, String)] = [
            (.bpe, "pre_tokenizer", .object(["type": .string("Whitespace")]), "Whitespace"),
            (.bpe, "normalizer", .object(["type": .string("NFKC")]), "NFKC"),
            (.bpe, "post_processor", .object(["type": .string("ByteLevel"), "trim_offsets": .bool(true)]), "ByteLevel"),
            (.unigram, "normalizer", .object(["type": .string("Sequence"), "normalizers": .array([.object(["type": .string("NFKD")])])]), "NFKD"),
            (.unigram, "pre_tokenizer", .object(["type": .string("UnicodeScripts")]), "UnicodeScripts"),
            (.wordpiece, "normalizer", .object(["type": .string("Lowercase")]), "Lowercase"),
            (.wordpiece, "pre_tokenizer", .object(["type": .string("WhitespaceSplit")]), "WhitespaceSplit"),
        ]
        for (kind, key, component, name) in refusals {
            let data = try editedTokenizerJSON(kind) { $0[key] = component }
            let what = "\(kind.rawValue) with the \(key) \(name) is refused naming it"
            do {
                _ = try loadTokenizer(tokenizerJSON: data, kind: kind)
                tally.record(what, ["accepted"])
            } catch TextError.unsupported(let refused, _) {
                tally.record(what, refused.contains(name) ? [] : ["refused \(refused)"])
            } catch {
                tally.record(what, ["threw \(error)"])
            }
        }
        let fallback = try editedTokenizerJSON(.unigram) { file in
            var model = file["model"]?.objectValue ?? [:]
            model["byte_fallback"] = .bool(true)
            file["model"] = .object(model)
        }
        do {
            _ = try loadTokenizer(tokenizerJSON: fallback, kind: .unigram)
            tally.record("Unigram byte_fallback is refused", ["accepted"])
        } catch {
            tally.record("Unigram byte_fallback is refused", "\(error)".contains("byte_fallback") ? [] : ["threw \(error)"])
        }
        tally.summary(expected: refusals.count + 1)
    }

    func testAManifestKindThatContradictsTokenizerJSONIsRefused() throws {
        let tally = Tally("tokenizer.kind")
        for (kind, folder, modelType) in [(TokenizerKind.bpe, "wordpiece", "WordPiece"), (.unigram, "bpe", "BPE"), (.wordpiece, "unigram", "Unigram")] {
            let what = "a \(folder) folder read as \(kind.rawValue) is refused"
            do {
                _ = try loadTokenizer(directory: vectorFolder().appendingPathComponent(folder), kind: kind)
                tally.record(what, ["accepted"])
            } catch {
                tally.record(what, error as? TextError == .kindMismatch(manifest: kind.rawValue, tokenizerJSON: modelType) ? [] : ["threw \(error)"])
            }
        }
        // The app's way in: the manifest's model.tokenizer picks the tokenizer, and must agree with the folder.
        let wordpiece = try vectorFolder().appendingPathComponent("wordpiece")
        do {
            _ = try LoadedBundle(folder: standInBundle(tokenizer: wordpiece, tokenizerKind: "unigram"))
            tally.record("a bundle whose manifest says unigram over a WordPiece tokenizer.json is refused", ["accepted"])
        } catch {
            tally.record("a bundle whose manifest says unigram over a WordPiece tokenizer.json is refused",
                         error as? TextError == .kindMismatch(manifest: "unigram", tokenizerJSON: "WordPiece") ? [] : ["threw \(error)"])
        }
        do {
            _ = try LoadedBundle(folder: standInBundle(tokenizer: wordpiece, tokenizerKind: "sentencepiece"))
            tally.record("model.tokenizer \"sentencepiece\" is refused", ["accepted"])
        } catch {
            tally.record("model.tokenizer \"sentencepiece\" is refused", "\(error)".contains("sentencepiece") && error is ManifestError ? [] : ["threw \(error)"])
        }
        tally.summary(expected: 5)
    }

    /// LoadedBundle reads each family's tokenizer from its manifest (none named: WordPiece).
    func testABundlePicksItsTokenizerFromTheManifest() throws {
        let tally = Tally("tokenizer.bundle")
        for (kind, written) in [(TokenizerKind.wordpiece, nil), (.wordpiece, "wordpiece"), (.bpe, "bpe"), (.unigram, "unigram")] {
            let vectors = try loadJSON(vectorFolder().appendingPathComponent("\(kind.rawValue).json"))
            let first = try XCTUnwrap(vectors["cases"]?.arrayValue?.first)
            let bundle = try LoadedBundle(folder: standInBundle(tokenizer: vectorFolder().appendingPathComponent(kind.rawValue), tokenizerKind: written))
            var problems = bundle.tokenizer.kind == kind ? [] : ["a \(bundle.tokenizer.kind.rawValue) tokenizer"]
            problems += encodingProblems(bundle.tokenizer, first["text"]?.stringValue ?? "", maxLength: 128, expected: first)
            tally.record("model.tokenizer \(written ?? "absent"): \(kind.rawValue), its first vector", problems)
        }
        tally.summary(expected: 4)
    }

    // MARK: - Padding, and a WordPiece read from vocab.txt

    func testPaddingAndVocabText() throws {
        let tally = Tally("tokenizer.padding")
        let lengths = [(1, 16), (16, 16), (17, 24), (24, 24), (25, 32), (128, 128)]
        for (length, padded) in lengths {
            tally.record("\(length) tokens pad to \(padded)", WordPieceTokenizer.paddedLength(length) == padded ? [] : ["got \(WordPieceTokenizer.paddedLength(length))"])
        }
        // vocab.txt, the other form a tokenizer/ folder may hold: a token per line, its id its line.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ev-vocab-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n##s\nworld\n,\n".write(to: folder.appendingPathComponent("vocab.txt"), atomically: true, encoding: .utf8)
        let tokenizer = try loadTokenizer(directory: folder, kind: .wordpiece)
        let encoding = try tokenizer.encode("Hellos, WORLD! x", maxLength: 16)
        tally.record("vocab.txt: [CLS] hello ##s , world [UNK] [UNK] [SEP]",
                     Array(encoding.inputIds.prefix(8)) == [2, 4, 5, 7, 6, 1, 1, 3] && encoding.realTokens == 8 ? [] : ["got \(encoding.inputIds)"])
        tally.record("max_length 20 is refused", (try? tokenizer.encode("x", maxLength: 20)) == nil ? [] : ["accepted"])
        tally.summary()
    }
}
