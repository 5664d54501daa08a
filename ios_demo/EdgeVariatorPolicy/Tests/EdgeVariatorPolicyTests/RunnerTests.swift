import Foundation
import XCTest
@testable import EdgeVariatorPolicy

/// A stand-in for ExecuTorch / Core ML: the hidden state counts the layers run, exit i answers
/// with logits[i], and every call is recorded. What the app's classify and profile screens run.
final class StandInBackend: MethodBackend {
    struct Hidden { let layers: Int; let length: Int }

    let runtime: ProgramRuntime
    let runtimeVersion = "stand-in"
    let logits: [Int: [Double]]
    private(set) var calls: [String] = []

    init(logits: [Int: [Double]], runtime: ProgramRuntime = .executorch) {
        self.logits = logits
        self.runtime = runtime
    }

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
                return try openBundle(url)
            }
        }
        return try openBundle(standInBundle(tokenizer: root.appendingPathComponent("edge_variator/default/mr_slender")))
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
        problems = []
        let json = try JSONValue.parse(profile.jsonData())
        if json["version"] != .number(2) || json["runtime"] != .string("executorch") { problems.append("version/runtime") }
        if json["program_sha256"] != .string(bundle.manifest.files.executorch.sha256) { problems.append("program_sha256") }
        if json["runtime_version"] != .string("stand-in") || json["pte_sha256"] != nil { problems.append("runtime_version/pte_sha256") }
        tally.record("version 2: runtime executorch, program_sha256 = files.executorch.sha256", problems)
        let coreml = StandInBackend(logits: [:], runtime: .coreml)
        if let package = bundle.manifest.files.coreml {
            do {
                let profile = try profileBundle(bundle, backend: coreml, lengths: [16], warmup: 0, repeats: 1, device: "test")
                tally.record("a Core ML profile carries files.coreml.sha256, the package digest",
                             profile.runtime == "coreml" && profile.programSha256 == package.sha256 ? [] : ["got \(profile.runtime), \(profile.programSha256)"])
            } catch {
                tally.record("a Core ML profile carries files.coreml.sha256, the package digest", ["\(error)"])
            }
        } else {
            do {
                _ = try profileBundle(bundle, backend: coreml, lengths: [16], warmup: 0, repeats: 1, device: "test")
                tally.record("a Core ML backend over a bundle without files.coreml is refused", ["accepted"])
            } catch {
                tally.record("a Core ML backend over a bundle without files.coreml is refused", "\(error)".contains("coreml") ? [] : ["got \(error)"])
            }
        }
        tally.summary()
    }
}
