import Foundation
import XCTest
@testable import EdgeVariatorPolicy

/// tests/vectors/exits.json: every score and every run of the early-exit loop.
final class ExitVectorTests: XCTestCase {
    var vectors: JSONValue!

    override func setUpWithError() throws {
        vectors = try loadJSON(repoRoot().appendingPathComponent("tests/vectors/exits.json"))
    }

    func numbers(_ value: JSONValue?) -> [Double]? {
        guard let array = value?.arrayValue else { return nil }
        let numbers = array.compactMap(vectorNumber)
        return numbers.count == array.count ? numbers : nil
    }

    func testEveryScore() throws {
        let tally = Tally("exits.scores")
        let scores = try XCTUnwrap(vectors["scores"]?.arrayValue)
        for (index, vector) in scores.enumerated() {
            guard let name = vector["criterion"]?.stringValue, let criterion = Criterion(rawValue: name),
                  let logits = numbers(vector["logits"]), let expected = vectorNumber(vector["score"]),
                  let label = vector["label"]?.numberValue else {
                tally.record("[\(index)]", ["malformed vector \(vector)"])
                continue
            }
            let score = uncertainty(logits, criterion: criterion)
            var problems: [String] = []
            let unknown = Set(vector.objectValue?.keys ?? [:].keys).subtracting(["criterion", "logits", "score", "label"])
            if !unknown.isEmpty { problems.append("keys this test does not check: \(unknown.sorted())") }
            if !close(score, expected, 1e-6) { problems.append("score: expected \(expected), got \(score)") }
            if argmax(logits) != Int(label) { problems.append("label: expected \(Int(label)), got \(argmax(logits))") }
            let probabilities = softmax(logits)
            if abs(probabilities.reduce(0, +) - 1) > 1e-9 { problems.append("probabilities sum to \(probabilities.reduce(0, +))") }
            let shown = logits.count > 4 ? "\(logits.count) logits" : "\(logits)"
            tally.record("[\(index)] \(name) \(shown)", problems)
        }
        tally.summary(expected: scores.count)
        XCTAssertFalse(scores.isEmpty, "exits.json has no scores")
    }

    func testEveryRun() throws {
        let tally = Tally("exits.runs")
        let runs = try XCTUnwrap(vectors["runs"]?.arrayValue)
        for (index, run) in runs.enumerated() {
            let name = run["name"]?.stringValue ?? "#\(index)"
            guard let criterionName = run["criterion"]?.stringValue, let criterion = Criterion(rawValue: criterionName),
                  let layers = run["layers"]?.numberValue.map({ Int($0) }),
                  let after = numbers(run["after_layers"])?.map({ Int($0) }),
                  let logits = run["logits"]?.arrayValue?.compactMap({ numbers($0) }),
                  let expect = run["expect"]?.objectValue, let threshold = run["threshold"] else {
                tally.record("[\(index)] \"\(name)\"", ["malformed vector"])
                continue
            }
            let what = "[\(index)] \(criterionName) \"\(name)\""
            guard logits.count == after.count else {
                tally.record(what, ["\(logits.count) logit rows for \(after.count) exits"])
                continue
            }
            var asked: [Int] = []
            var ran: [Int] = []
            do {
                let result = try earlyExit(
                    layerMethods: (0..<layers).map { "layer_\($0)" }, exitsAfter: after,
                    threshold: threshold.isNull ? nil : vectorNumber(threshold), criterion: criterion, start: 0,
                    layer: { index, _, depth in ran.append(index); return depth + 1 },
                    exitLogits: { index, depth in
                        asked.append(index)
                        XCTAssertEqual(depth, index + 1, "\(what): exit \(index) asked after \(depth) layers")
                        return logits[after.firstIndex(of: index)!]
                    })
                var problems: [String] = []
                let unknown = Set(expect.keys).subtracting(["exit_layer", "label", "score"])
                    .union(Set(run.objectValue?.keys ?? [:].keys).subtracting(["name", "criterion", "layers", "after_layers", "threshold", "logits", "expect"]))
                if !unknown.isEmpty { problems.append("keys this test does not check: \(unknown.sorted())") }
                if let layer = expect["exit_layer"]?.numberValue, Int(layer) != result.exitLayer {
                    problems.append("exit_layer: expected \(Int(layer)), got \(result.exitLayer)")
                }
                if let label = expect["label"]?.numberValue, Int(label) != result.label {
                    problems.append("label: expected \(Int(label)), got \(result.label)")
                }
                if let score = vectorNumber(expect["score"]), !close(score, result.uncertainty, 1e-6) {
                    problems.append("score: expected \(score), got \(result.uncertainty)")
                }
                if ran != Array(0..<result.exitLayer) { problems.append("ran layers \(ran), expected 0..<\(result.exitLayer)") }
                if asked != after.filter({ $0 < result.exitLayer }) { problems.append("asked exits \(asked)") }
                // The closure-only helper agrees with the generic loop.
                let simple = try earlyExit(layers: layers, exitsAfter: after,
                                           threshold: threshold.isNull ? nil : vectorNumber(threshold), criterion: criterion,
                                           exitLogits: { logits[after.firstIndex(of: $0)!] })
                if simple != result { problems.append("earlyExit(layers:) differs: \(simple)") }
                tally.record(what, problems)
            } catch {
                tally.record(what, ["threw \(error)"])
            }
        }
        tally.summary(expected: runs.count)
        XCTAssertFalse(runs.isEmpty, "exits.json has no runs")
    }

    func testTheLoopRefusesABundleWithoutALastExit() {
        let tally = Tally("exits.loop")
        do {
            _ = try earlyExit(layers: 3, exitsAfter: [0, 1], threshold: 0.3, criterion: .entropy) { _ in [0, 0] }
            tally.record("no exit after the last layer", ["accepted"])
        } catch let error as ExitError {
            tally.record("no exit after the last layer", error == .noLastExit(layers: 3, exitsAfter: [0, 1]) ? [] : ["got \(error)"])
        } catch {
            tally.record("no exit after the last layer", ["got \(error)"])
        }
        do {
            _ = try earlyExit(layers: 1, exitsAfter: [0], threshold: 0.3, criterion: .entropy) { _ in [] }
            tally.record("an exit with no logits", ["accepted"])
        } catch {
            tally.record("an exit with no logits", error as? ExitError == .emptyLogits(exit: 0) ? [] : ["got \(error)"])
        }
        tally.record("Float logits", close(uncertainty([Float(2), -1], criterion: .entropy), 0.1908649504184723, 1e-6) ? [] : ["differs"])
        tally.summary()
    }
}
