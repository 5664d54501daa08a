import Foundation
import XCTest
@testable import EdgeVariatorPolicy

/// A real exported manifest: edge_variator/default/bundles/*/manifest.json (and $EDGE_VARIATOR_MANIFEST).
/// Parsed (schema 2), its bundle's files checked against its checksums, its policy table built, and
/// its ratios, exits, thresholds, checksums and inputs checked against the raw JSON and against what
/// the exporter writes; the same JSON without its policy table, or as schema 1, is refused.
final class ManifestTests: XCTestCase {
    func manifests() throws -> [URL] {
        var found: [URL] = []
        if let extra = ProcessInfo.processInfo.environment["EDGE_VARIATOR_MANIFEST"], !extra.isEmpty {
            found.append(URL(fileURLWithPath: extra))
        }
        let bundles = try repoRoot().appendingPathComponent("edge_variator/default/bundles")
        let folders = (try? FileManager.default.contentsOfDirectory(atPath: bundles.path)) ?? []
        for folder in folders.sorted() {
            let manifest = bundles.appendingPathComponent(folder).appendingPathComponent("manifest.json")
            if FileManager.default.fileExists(atPath: manifest.path) { found.append(manifest) }
        }
        if found.isEmpty {
            let message = "no bundle manifest: edge_variator/default/bundles/*/manifest.json is absent "
                + "(export one, or set EDGE_VARIATOR_MANIFEST)"
            if ProcessInfo.processInfo.environment["EDGE_VARIATOR_REQUIRE_MANIFEST"] == "1" {
                XCTFail(message)
                print("check FAIL manifest: \(message)")
            } else {
                print("check SKIP manifest: \(message)")
                throw XCTSkip(message)
            }
        }
        return found
    }

    func testRealManifests() throws {
        let tally = Tally("manifest")
        for url in try manifests() {
            let label = url.deletingLastPathComponent().lastPathComponent
            let manifest: Manifest
            let raw: JSONValue
            do {
                manifest = try Manifest.load(url)
                raw = try loadJSON(url)
                tally.record("\(label): parses and validates", [])
            } catch {
                tally.record("\(label): parses and validates", ["\(error)"])
                continue
            }
            checkAgainstRaw(manifest, raw, label, tally)
            checkFiles(manifest, url.deletingLastPathComponent(), label, tally)
            checkRefusals(raw, label, tally)
            checkPolicy(manifest, raw, label, tally)
            checkLoop(manifest, label, tally)
            checkProfiles(manifest, url.deletingLastPathComponent(), label, tally)
            checkTokenizer(manifest, url.deletingLastPathComponent(), label, tally)
            checkWrittenProfile(manifest, label, tally)
        }
        tally.summary()
    }

    func checkAgainstRaw(_ manifest: Manifest, _ raw: JSONValue, _ label: String, _ tally: Tally) {
        // ratios: the same lists as the file, and the ones build_manifest writes (layer_{i}_k{k}).
        var problems: [String] = []
        let rawRatios = raw["ratios"]?.objectValue ?? [:]
        if Set(rawRatios.keys) != Set(manifest.ratios.keys) { problems.append("ratio keys differ from the file") }
        for k in manifest.ratioValues {
            let names = (try? manifest.layerMethods(ratio: k)) ?? []
            if rawRatios[String(k)]?.arrayValue?.compactMap(\.stringValue) != names { problems.append("ratio \(k) differs from the file") }
            if names != (0..<manifest.model.layers).map({ "layer_\($0)_k\(k)" }) { problems.append("ratio \(k) is \(names)") }
            let missing = names.filter { manifest.methods[$0] == nil }
            if !missing.isEmpty { problems.append("ratio \(k) names undescribed methods \(missing)") }
            if let functions = manifest.files.executorch.functions, !Set(names).isSubset(of: functions) {
                problems.append("ratio \(k) names methods model.pte lacks")
            }
        }
        if !manifest.ratioValues.contains(1) || !manifest.ratioValues.allSatisfy({ [1, 2, 4, 8].contains($0) }) {
            problems.append("ratios \(manifest.ratioValues)")
        }
        tally.record("\(label): ratios \(manifest.ratioValues), \(manifest.model.layers) layers each", problems)

        problems = []
        let rawAfter = raw["exits"]?["after_layers"]?.arrayValue?.compactMap(\.numberValue).map { Int($0) }
        if rawAfter != manifest.exits.afterLayers { problems.append("after_layers differ from the file") }
        if manifest.exits.afterLayers.last != manifest.model.layers - 1 { problems.append("no exit after the last layer") }
        for index in manifest.exits.afterLayers {
            let outputs = manifest.methods["exit_\(index)"]?.outputs.first?.shape
            if outputs?.last != .size(manifest.model.labels.count) { problems.append("exit_\(index) does not give \(manifest.model.labels.count) logits") }
        }
        if raw["exits"]?["criterion"]?.stringValue != manifest.exits.criterion.rawValue { problems.append("criterion differs") }
        tally.record("\(label): exits after \(manifest.exits.afterLayers), \(manifest.exits.criterion.rawValue)", problems)

        problems = []
        let rawThresholds = raw["exits"]?["thresholds"]?.objectValue ?? [:]
        if Set(rawThresholds.keys) != Set(manifest.exits.thresholds.keys) { problems.append("threshold names differ") }
        for (name, value) in manifest.exits.thresholds {
            if !close(rawThresholds[name]?.numberValue, value, 1e-9) { problems.append("\(name) = \(value) differs from the file") }
            if !(value >= 0) { problems.append("\(name) = \(value) is negative") }
        }
        tally.record("\(label): thresholds \(manifest.exits.thresholds.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })", problems)

        problems = []
        let embed = manifest.methods["embed"]
        if embed?.inputs.first?.dtype != "int64" || embed?.inputs.first?.shape != [.size(1), .symbol("seq")] { problems.append("embed input") }
        if embed?.outputs.first?.shape != [.size(1), .symbol("seq"), .size(manifest.model.hidden)] { problems.append("embed output") }
        for name in manifest.ratios.values.flatMap({ $0 }) {
            let inputs = manifest.methods[name]?.inputs.map(\.dtype)
            if inputs != ["float32", "int64"] { problems.append("\(name) inputs \(inputs ?? [])") }
        }
        if manifest.methodNames.first != "embed" { problems.append("call order") }
        tally.record("\(label): method signatures (embed, layers, exits)", problems)

        problems = []
        let rawChecksums = raw["checksums"]?.objectValue?.compactMapValues(\.stringValue) ?? [:]
        if rawChecksums != manifest.checksums { problems.append("checksums differ from the file") }
        if manifest.checksums[manifest.files.executorch.path] != manifest.files.executorch.sha256 { problems.append("model.pte's checksum") }
        for name in manifest.files.tokenizer where manifest.checksums["tokenizer/\(name)"] == nil {
            problems.append("no checksum of tokenizer/\(name)")
        }
        if raw["inputs"]?["export_key"]?.stringValue != manifest.inputs.exportKey { problems.append("inputs.export_key differs") }
        if raw["library_version"]?.stringValue != manifest.libraryVersion { problems.append("library_version differs") }
        if let ratios = manifest.inputs.ratios, ratios.sorted() != manifest.ratioValues { problems.append("inputs.ratios \(ratios)") }
        if let thresholds = manifest.inputs.thresholds, thresholds != manifest.exits.thresholds { problems.append("inputs.thresholds") }
        tally.record("\(label): \(manifest.checksums.count) checksums, export_key \(manifest.inputs.exportKey.prefix(12)), "
                     + "library \(manifest.libraryVersion)", problems)
    }

    /// The bundle folder loads: every file its checksums list is there, unaltered (model.pte hashed
    /// whole); a Core ML package's digest from its files is files.coreml.sha256 (folder_digest's).
    func checkFiles(_ manifest: Manifest, _ folder: URL, _ label: String, _ tally: Tally) {
        guard FileManager.default.fileExists(atPath: folder.appendingPathComponent(manifest.files.executorch.path).path) else {
            print("  \(label): no \(manifest.files.executorch.path) beside the manifest; its files are not checked")
            return
        }
        do {
            let started = monotonicSeconds()
            let loaded = try openBundle(folder).manifest
            let seconds = monotonicSeconds() - started
            tally.record("\(label): opening the bundle hashes its \(loaded.checksums.count) files and they match "
                         + "(\(String(format: "%.1f", seconds)) s)", loaded.checksums == manifest.checksums ? [] : ["checksums differ"])
        } catch {
            tally.record("\(label): its files match its checksums", ["\(error)"])
        }
        guard let package = manifest.files.coreml else {
            print("  \(label): no files.coreml: the Core ML backend is unavailable for it")
            return
        }
        do {
            let digest = try folderDigest(folder.appendingPathComponent(package.path))
            tally.record("\(label): the digest of \(package.path)'s files is files.coreml.sha256 (the compiled-model cache key)",
                         digest == package.sha256 && manifest.packageDigest(package.path) == package.sha256 ? [] : ["got \(digest)"])
        } catch {
            tally.record("\(label): the digest of \(package.path)", ["\(error)"])
        }
    }

    /// The same manifest without its policy table (missing or null), or as schema 1, is refused.
    func checkRefusals(_ raw: JSONValue, _ label: String, _ tally: Tally) {
        guard case .object(let object) = raw else { return }
        var noPolicy = object
        noPolicy.removeValue(forKey: "policy")
        var nullPolicy = object
        nullPolicy["policy"] = .null
        var schema1 = object
        schema1["schema_version"] = .number(1)
        var noChecksums = object
        noChecksums.removeValue(forKey: "checksums")
        for (what, edited, word) in [("without its policy table", noPolicy, "policy"), ("with a null policy", nullPolicy, "policy"),
                                     ("as schema 1", schema1, "export the bundle again"), ("without checksums", noChecksums, "checksums")] {
            do {
                _ = try Manifest(data: JSONEncoder().encode(JSONValue.object(edited)))
                tally.record("\(label): \(what) is refused", ["accepted"])
            } catch {
                let message = "\(error)"
                tally.record("\(label): \(what) is refused (\"\(word)\")",
                             error is ManifestError && message.lowercased().contains(word) ? [] : ["got \(message)"])
            }
        }
    }

    func checkPolicy(_ manifest: Manifest, _ raw: JSONValue, _ label: String, _ tally: Tally) {
        let policy: Policy
        do {
            policy = try Policy(manifest: manifest)
        } catch {
            tally.record("\(label): policy builds", ["\(error)"])
            return
        }
        var problems: [String] = []
        if let table = raw["policy"] {
            if (try? EdgeVariatorPolicy.checkPolicy(table, ratios: manifest.ratioValues, thresholds: manifest.exits.thresholds)) != policy.table {
                problems.append("the policy is not the file's table")
            }
        } else {
            problems.append("no policy in the file")
        }
        tally.record("\(label): policy builds from the manifest's table (\(policy.table.rules.count) rules)", problems)

        // Every state the phone can be in gets a decision the bundle can carry out.
        problems = []
        var rules = Set<String>()
        var seen = Set<Int>()
        for thermal in ThermalState.allCases {
            for battery in stride(from: 0.0, through: 1.0, by: 0.01) {
                for charging in [false, true] {
                    for lowPower in [false, true] {
                        guard let state = try? DeviceState(battery: battery, charging: charging, lowPower: lowPower, thermal: thermal) else {
                            problems.append("state battery \(battery) refused")
                            continue
                        }
                        guard let decision = try? policy.decide(state) else {
                            problems.append("state battery \(battery) refused by the policy")
                            continue
                        }
                        rules.insert(decision.rule)
                        seen.insert(decision.ratio)
                        if manifest.ratios[String(decision.ratio)] == nil { problems.append("ratio \(decision.ratio) not in the bundle") }
                        if let name = decision.thresholdName {
                            if !close(manifest.exits.thresholds[name], decision.threshold, 1e-9) { problems.append("threshold \(name)") }
                        } else if decision.threshold != nil {
                            problems.append("a threshold without a name")
                        }
                    }
                }
            }
        }
        let uniqueProblems = Array(Set(problems)).sorted()
        tally.record("\(label): every state decides (rules \(rules.sorted()), ratios \(seen.sorted()))", uniqueProblems)

        // The table export writes (default_policy's rules) picks the careful (lowest) threshold when
        // cool and full, the eager one when hot.
        let exported = ["critical", "low_power", "serious", "battery_low", "fair", "battery_half", "default"]
        if policy.table.rules.map(\.name) == exported, policy.table.latencyMs == nil,
           let careful = manifest.exits.thresholds.min(by: { ($0.value, $0.key) < ($1.value, $1.key) }),
           let eager = manifest.exits.thresholds.max(by: { ($0.value, $0.key) < ($1.value, $1.key) }) {
            policy.reset()
            let cool = try? DeviceState(battery: 1.0, charging: true)
            let hot = try? DeviceState(battery: 1.0, thermal: .critical)
            let coolDecision = cool.flatMap { try? policy.decide($0) }
            let hotDecision = hot.flatMap { try? policy.decide($0) }
            problems = []
            if coolDecision?.ratio != 1 || !close(coolDecision?.threshold, careful.value, 1e-9) { problems.append("cool: \(String(describing: coolDecision))") }
            if hotDecision?.ratio != manifest.ratioValues.filter({ $0 <= 8 }).max() || !close(hotDecision?.threshold, eager.value, 1e-9) {
                problems.append("hot: \(String(describing: hotDecision))")
            }
            tally.record("\(label): exported table: k=1 with \(careful.key) when cool, most compressed with \(eager.key) when critical", problems)
        }
    }

    func checkLoop(_ manifest: Manifest, _ label: String, _ tally: Tally) {
        // The loop over the manifest's methods with stand-in exits: the calls a phone makes.
        for k in manifest.ratioValues {
            var calls: [String] = []
            do {
                let methods = try manifest.layerMethods(ratio: k)
                let result = try earlyExit(
                    layerMethods: methods, exitsAfter: manifest.exits.afterLayers, threshold: nil,
                    criterion: manifest.exits.criterion, start: "embed",
                    layer: { _, method, _ in calls.append(method); return method },
                    exitLogits: { index, _ in
                        calls.append("exit_\(index)")
                        return manifest.model.labels.indices.map { Double($0) }
                    })
                var expected: [String] = []
                for (index, method) in methods.enumerated() {
                    expected.append(method)
                    if manifest.exits.afterLayers.contains(index) { expected.append("exit_\(index)") }
                }
                let unknown = calls.filter { manifest.methods[$0] == nil }
                var problems: [String] = []
                if calls != expected { problems.append("called \(calls)") }
                if !unknown.isEmpty { problems.append("called methods the bundle lacks: \(unknown)") }
                if result.exitLayer != manifest.model.layers { problems.append("stopped after \(result.exitLayer) with no threshold") }
                if result.label != manifest.model.labels.count - 1 { problems.append("label \(result.label)") }
                tally.record("\(label): loop at k=\(k) calls \(calls.count) methods, all in the manifest", problems)
            } catch {
                tally.record("\(label): loop at k=\(k)", ["\(error)"])
            }
        }
    }

    /// The profiles and calibrated policies the bundle keeps (profiles/<runtime>/), if any, read and
    /// check out against it: each file is named after its device.
    func checkProfiles(_ manifest: Manifest, _ folder: URL, _ label: String, _ tally: Tally) {
        for runtime in ProgramRuntime.allCases {
            let directory = folder.appendingPathComponent("profiles").appendingPathComponent(runtime.rawValue)
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
            for name in names {
                let url = directory.appendingPathComponent(name)
                do {
                    if name.hasSuffix(".policy.json") {
                        let document = try CalibratedPolicy(data: Data(contentsOf: url))
                        let table = try document.check(against: manifest, runtime: runtime)
                        _ = try Policy(manifest: manifest, table: table)
                        tally.record("\(label): profiles/\(runtime.rawValue)/\(name) is a calibrated policy of this bundle",
                                     calibratedPolicyFileName(device: document.device) == name ? [] : ["not named after \(document.device)"])
                    } else {
                        let profile = try LatencyProfile.load(url, manifest: manifest, runtime: runtime)
                        var problems = profileFileName(device: profile.device) == name ? [] : ["not named after \(profile.device)"]
                        let lengths = profile.methods["embed"].map { $0.keys.compactMap { Int($0) }.sorted() } ?? []
                        if let length = lengths.first {
                            for k in manifest.ratioValues {
                                let depth = try profile.depthLatency(manifest: manifest, ratio: k, length: length)
                                if depth.count != manifest.model.layers { problems.append("depth latency at k=\(k): \(depth)") }
                            }
                        }
                        tally.record("\(label): profiles/\(runtime.rawValue)/\(name) is a profile of this bundle (lengths \(lengths))", problems)
                    }
                } catch {
                    tally.record("\(label): profiles/\(runtime.rawValue)/\(name)", ["\(error)"])
                }
            }
        }
    }

    /// A profile as the app writes it for this bundle (fake clock, version 2, its ExecuTorch program)
    /// passes the same checks as profile.check_profile; it is left in the temporary folder for
    /// `edge-variator profile --import`.
    func checkWrittenProfile(_ manifest: Manifest, _ label: String, _ tally: Tally) {
        do {
            var clock = 0.0
            let timings = try measureMethods(
                methods: manifest.methodNames, lengths: [16, 64], warmup: 1, repeats: 3,
                limits: (manifest.model.padMultiple, manifest.model.minLength, manifest.model.maxLength),
                now: { clock }, prepare: { _, length in { clock += Double(length) / 1_000_000 } })
            let profile = LatencyProfile(runtime: .executorch, runtimeVersion: "EdgeVariatorPolicy tests (fake clock)",
                                         device: "Linux test (fake clock)", programSha256: manifest.files.executorch.sha256,
                                         warmup: 1, repeats: 3, methods: timings)
            try profile.check(against: manifest, runtime: .executorch)
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("edge-variator-swift-profile-\(label).json")
            try profile.jsonData().write(to: out)
            print("  wrote \(out.path)")
            tally.record("\(label): a profile of its \(timings.count) methods in the import format", [])
        } catch {
            tally.record("\(label): a profile of its methods in the import format", ["\(error)"])
        }
    }

    func checkTokenizer(_ manifest: Manifest, _ folder: URL, _ label: String, _ tally: Tally) {
        let directory = folder.appendingPathComponent("tokenizer")
        guard FileManager.default.fileExists(atPath: directory.path) else { return }
        do {
            let tokenizer = try loadTokenizer(directory: directory, kind: manifest.model.tokenizerKind)
            var problems: [String] = []
            if tokenizer.vocabSize != manifest.model.vocabSize { problems.append("vocabulary of \(tokenizer.vocabSize), model has \(manifest.model.vocabSize)") }
            if let pad = manifest.model.padTokenId, pad != tokenizer.padId { problems.append("pad id \(tokenizer.padId), manifest \(pad)") }
            let encoding = try tokenizer.encode("a charming and affecting journey", maxLength: manifest.model.maxLength)
            if encoding.length % manifest.model.padMultiple != 0 || encoding.length < manifest.model.minLength { problems.append("length \(encoding.length)") }
            tally.record("\(label): tokenizer/ loads (\(manifest.files.tokenizer.joined(separator: ", ")))", problems)
        } catch {
            tally.record("\(label): tokenizer/ loads", ["\(error)"])
        }
    }
}
