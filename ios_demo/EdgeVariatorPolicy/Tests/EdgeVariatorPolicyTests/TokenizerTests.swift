import Foundation
import XCTest
@testable import EdgeVariatorPolicy

/// The Swift WordPiece against edge_variator.tokenizer (Hugging Face's fast tokenizer) on the
/// repository's own tokenizer (edge_variator/default/mr_slender/tokenizer.json, the one its bundles
/// ship): Fixtures/tokenizer.json holds the Python side's ids, mask and truncation flag per text.
final class TokenizerTests: XCTestCase {
    func testMatchesThePythonTokenizer() throws {
        let tally = Tally("tokenizer")
        let fixtureJSON = try loadJSON(fixture("tokenizer.json"))
        let folder = try repoRoot().appendingPathComponent(try XCTUnwrap(fixtureJSON["tokenizer_dir"]?.stringValue))
        let tokenizer = try WordPieceTokenizer.load(directory: folder)
        let maxLength = Int(try XCTUnwrap(fixtureJSON["max_length"]?.numberValue))
        let cases = try XCTUnwrap(fixtureJSON["cases"]?.arrayValue)
        for (index, testCase) in cases.enumerated() {
            let text = testCase["text"]?.stringValue ?? ""
            let shown = text.count > 40 ? String(text.prefix(40)).debugDescription + "..." : text.debugDescription
            let ids = testCase["input_ids"]?.arrayValue?.compactMap(\.numberValue).map { Int($0) } ?? []
            let mask = testCase["attention_mask"]?.arrayValue?.compactMap(\.numberValue).map { Int($0) } ?? []
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
                if encoding.truncated != testCase["truncated"]?.boolValue { problems.append("truncated: got \(encoding.truncated)") }
                tally.record("[\(index)] \(shown)", problems)
            } catch {
                tally.record("[\(index)] \(shown)", ["threw \(error)"])
            }
        }
        for entry in fixtureJSON["errors"]?.arrayValue ?? [] {
            let text = entry["text"]?.stringValue ?? ""
            do {
                _ = try tokenizer.encode(text, maxLength: maxLength)
                tally.record("empty text \(text.debugDescription) is refused", ["accepted"])
            } catch {
                tally.record("empty text \(text.debugDescription) is refused", error as? TextError == .empty ? [] : ["got \(error)"])
            }
        }
        tally.summary(expected: cases.count + (fixtureJSON["errors"]?.arrayValue?.count ?? 0))
    }

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
        let tokenizer = try WordPieceTokenizer.load(directory: folder)
        let encoding = try tokenizer.encode("Hellos, WORLD! x", maxLength: 16)
        tally.record("vocab.txt: [CLS] hello ##s , world [UNK] [UNK] [SEP]",
                     Array(encoding.inputIds.prefix(8)) == [2, 4, 5, 7, 6, 1, 1, 3] && encoding.realTokens == 8 ? [] : ["got \(encoding.inputIds)"])
        tally.record("max_length 20 is refused", (try? tokenizer.encode("x", maxLength: 20)) == nil ? [] : ["accepted"])
        tally.summary()
    }
}
