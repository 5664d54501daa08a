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
            let result = try classify("a charming and affecting journey", state: state, policy: policy, bundle: bundle, backend: backend)
            let decision = result.decision
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

    /// Runner.run(text, state): the policy decides after tokenizing, at the text's padded length, so
    /// one state runs a short text and a long one at different ratios under a length-aware table.
    func testClassifyDecidesAtTheTextsPaddedLength() throws {
        let tally = Tally("runner.length")
        let bundle = try bundle()
        let manifest = bundle.manifest
        let most = try XCTUnwrap(manifest.ratioValues.max())
        // At 16 tokens k = 1 is the fastest (merge and restore cost more than they save); at 128 the most compressed.
        var latency: [Int: [Int: Double]] = [16: [:], 128: [:]]
        for k in manifest.ratioValues {
            latency[16]![k] = 2 + 0.1 * Double(k)
            latency[128]![k] = 20 - Double(k)
        }
        let rules = [Rule(name: "critical", when: Conditions(thermalAtLeast: .critical), ratio: most, threshold: nil),
                     Rule(name: "default", ratio: 1, threshold: nil)]
        let policy = try Policy(manifest: manifest, table: PolicyTable(rules: rules, latencyMs: latency))
        let hot = try DeviceState(battery: 1, thermal: .critical)
        let short = "a charming and affecting journey"
        let long = Array(repeating: short, count: 40).joined(separator: " ")
        let runs: [(String, String, Int, Bool)] = [("a short text: k = 1, the fastest at its length", short, 1, true),
                                                   ("a long text: k = \(most), the fastest at its length", long, most, false)]
        for (what, text, ratio, lowered) in runs {
            let backend = StandInBackend(logits: [:])
            let result = try classify(text, state: hot, policy: policy, bundle: bundle, backend: backend)
            let expected = try manifest.layerMethods(ratio: ratio)
            var problems: [String] = []
            if result.decision.ratio != ratio || result.decision.lengthApplied != lowered || result.decision.rule != "critical" {
                problems.append("decided \(result.decision)")
            }
            let layers = backend.calls.filter { $0.hasPrefix("layer_") }
            if layers != expected { problems.append("ran \(layers)") }
            if (text == long) != (result.tokens > 16) { problems.append("\(result.tokens) tokens") }
            tally.record("\(what) (\(result.tokens) tokens)", problems)
        }
        let before = policy.activeRule
        do {
            _ = try classify("   ", state: DeviceState(battery: 1), policy: policy, bundle: bundle, backend: StandInBackend(logits: [:]))
            tally.record("an empty text is refused before the policy decides", ["accepted"])
        } catch {
            tally.record("an empty text is refused before the policy decides",
                         error as? TextError == .empty && policy.activeRule == before ? [] : ["got \(error), active rule \(policy.activeRule ?? "none")"])
        }
        tally.summary(expected: 3)
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
