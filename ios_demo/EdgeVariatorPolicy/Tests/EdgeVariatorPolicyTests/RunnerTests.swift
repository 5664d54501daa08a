import Foundation
import XCTest
@testable import EdgeVariatorPolicy

/// A stand-in for ExecuTorch / Core ML: the hidden state counts the layers run, exit i answers
/// with logits[i], and every call is recorded. What the app's classify and profile screens run.
final class StandInBackend: MethodBackend {
    struct Hidden { let layers: Int; let length: Int }

    let runtime = "stand-in"
    let pteSha256: String? = nil
    let logits: [Int: [Double]]
    private(set) var calls: [String] = []

    init(logits: [Int: [Double]]) { self.logits = logits }

    func load(_ methods: [String]) throws { calls.append(contentsOf: methods.map { "load \($0)" }) }
    func mask(_ values: [Int]) throws -> [Int] { values }

    func embed(_ ids: [Int]) throws -> Hidden {
        calls.append("embed")
        return Hidden(layers: 0, length: ids.count)
    }

    func layer(_ method: String, _ hidden: Hidden, _ mask: [Int]) throws -> Hidden {
        calls.append(method)
        precondition(mask.count == hidden.length, "mask and hidden disagree on the length")
        return Hidden(layers: hidden.layers + 1, length: hidden.length)
    }

    func exitLogits(_ method: String, _ hidden: Hidden, _ mask: [Int]) throws -> [Double] {
        calls.append(method)
        if hidden.layers == 0 { return [0, 0] }  // the profiler's random hidden state
        guard method == "exit_\(hidden.layers - 1)" else { throw ExitError.emptyLogits(exit: -1) }  // asked out of turn
        return logits[hidden.layers - 1] ?? [0, 0]
    }

    func randomHidden(length: Int, width: Int) throws -> Hidden { Hidden(layers: 0, length: length) }
}

final class RunnerTests: XCTestCase {
    /// The bundle the tests use: the real manifest when there is one, else a manifest made here
    /// (6 layers, ratios 1 2 4 8, an exit after each layer) with the repository's tokenizer.
    func bundle() throws -> LoadedBundle {
        let root = try repoRoot()
        let bundles = root.appendingPathComponent("edge_variator/default/bundles")
        for folder in ((try? FileManager.default.contentsOfDirectory(atPath: bundles.path)) ?? []).sorted() {
            let url = bundles.appendingPathComponent(folder)
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("manifest.json").path) {
                return try LoadedBundle(folder: url)
            }
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ev-bundle-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("tokenizer"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: root.appendingPathComponent("edge_variator/default/mr_slender/tokenizer.json"),
                                         to: folder.appendingPathComponent("tokenizer/tokenizer.json"))
        func tensor(_ name: String, _ dtype: String, _ shape: [JSONValue]) -> JSONValue {
            .object(["name": .string(name), "dtype": .string(dtype), "shape": .array(shape)])
        }
        let hidden = tensor("hidden", "float32", [.number(1), .string("seq"), .number(384)])
        let mask = tensor("attention_mask", "int64", [.number(1), .string("seq")])
        var methods: [String: JSONValue] = ["embed": .object(["inputs": .array([tensor("input_ids", "int64", [.number(1), .string("seq")])]),
                                                              "outputs": .array([hidden])])]
        var ratios: [String: JSONValue] = [:]
        for k in [1, 2, 4, 8] {
            ratios[String(k)] = .array((0..<6).map { .string("layer_\($0)_k\(k)") })
            for i in 0..<6 { methods["layer_\(i)_k\(k)"] = .object(["inputs": .array([hidden, mask]), "outputs": .array([hidden])]) }
        }
        for i in 0..<6 {
            methods["exit_\(i)"] = .object(["inputs": .array([hidden, mask]),
                                            "outputs": .array([tensor("logits", "float32", [.number(1), .number(2)])])])
        }
        let file: JSONValue = .object(["path": .string("model.pte"), "sha256": .string(String(repeating: "0", count: 64)), "bytes": .number(1)])
        let manifest: JSONValue = .object([
            "schema_version": .number(1), "backbone": .object(["id": .string("stand-in"), "sha256": .string(String(repeating: "0", count: 64))]),
            "model": .object(["layers": .number(6), "hidden": .number(384), "vocab_size": .number(30522), "max_length": .number(128),
                              "min_length": .number(16), "pad_multiple": .number(8), "labels": .array([.string("negative"), .string("positive")])]),
            "methods": .object(methods), "ratios": .object(ratios),
            "exits": .object(["after_layers": .array((0..<6).map { .number(Double($0)) }), "criterion": .string("entropy"),
                              "thresholds": .object(["drop_1": .number(0.3), "drop_2": .number(0.5)])]),
            "files": .object(["executorch": file, "tokenizer": .array([.string("tokenizer.json")])]),
            "policy": .null, "latency_profile": .null,
        ])
        try JSONEncoder().encode(manifest).write(to: folder.appendingPathComponent("manifest.json"))
        return try LoadedBundle(folder: folder)
    }

    func testClassifyRunsTheDecidedRatioAndStopsAtTheFirstConfidentExit() throws {
        let tally = Tally("runner.classify")
        let bundle = try bundle()
        let policy = try Policy(manifest: bundle.manifest)
        // Exit 2 is confident (entropy ~0.04), the others are not.
        let logits: [Int: [Double]] = [2: [0, 5]]
        for (what, state, layers) in [("full battery: k=1, the careful threshold", try DeviceState(battery: 1), 3),
                                      ("critical: most compressed", try DeviceState(battery: 1, thermal: .critical), 3)] {
            let backend = StandInBackend(logits: logits)
            let decision = policy.decide(state)
            let result = try classify("a charming and affecting journey", decision: decision, bundle: bundle, backend: backend)
            let methods = try bundle.manifest.layerMethods(ratio: decision.ratio)
            var expected = ["embed"]
            for index in 0..<layers { expected += [methods[index], "exit_\(index)"] }
            var problems: [String] = []
            if backend.calls != expected { problems.append("called \(backend.calls)") }
            if result.exitLayer != layers || result.label != bundle.manifest.model.labels[1] { problems.append("exit \(result.exitLayer), \(result.label)") }
            if result.steps.map(\.method) != expected { problems.append("steps \(result.steps.map(\.method))") }
            if result.tokens != 16 || result.truncated { problems.append("tokens \(result.tokens)") }
            if !(result.totalMs >= 0) { problems.append("total \(result.totalMs) ms") }
            tally.record("\(what) (k=\(decision.ratio), \(decision.thresholdName ?? "no threshold"))", problems)
        }
        let never = Decision(ratio: 1, threshold: nil, thresholdName: nil, rule: "test", budgetApplied: false)
        let all = try classify("text", decision: never, bundle: bundle, backend: StandInBackend(logits: logits))
        tally.record("no threshold: every layer runs", all.exitLayer == bundle.manifest.model.layers ? [] : ["stopped after \(all.exitLayer)"])
        do {
            _ = try classify("   ", decision: never, bundle: bundle, backend: StandInBackend(logits: logits))
            tally.record("an empty text is refused", ["accepted"])
        } catch {
            tally.record("an empty text is refused", error as? TextError == .empty ? [] : ["got \(error)"])
        }
        tally.summary()
    }

    func testProfileBundleCoversEveryMethodInTheImportFormat() throws {
        let tally = Tally("runner.profile")
        let bundle = try bundle()
        let backend = StandInBackend(logits: [:])
        var clock = 0.0
        var reported: [Double] = []
        let profile = try profileBundle(bundle, backend: backend, lengths: [16, 64], warmup: 1, repeats: 2, device: "test",
                                        clock: { clock += 0.001; return clock }, progress: { reported.append($0) })
        var problems: [String] = []
        do { try profile.check(against: bundle.manifest) } catch { problems.append("\(error)") }
        if Set(profile.methods.keys) != Set(bundle.manifest.methods.keys) { problems.append("methods differ") }
        if profile.methods.values.contains(where: { Set($0.keys) != ["16", "64"] }) { problems.append("lengths") }
        if reported.last != 1 { problems.append("progress ended at \(reported.last ?? -1)") }
        if !backend.calls.prefix(bundle.manifest.methods.count).allSatisfy({ $0.hasPrefix("load ") }) { problems.append("methods not loaded first") }
        tally.record("\(profile.methods.count) methods x 2 lengths, checked against the manifest", problems)
        tally.summary()
    }
}
