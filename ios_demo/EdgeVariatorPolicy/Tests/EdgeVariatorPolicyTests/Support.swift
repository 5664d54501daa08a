import Foundation
import XCTest
@testable import EdgeVariatorPolicy

/// The repository root: $EDGE_VARIATOR_REPO (or $EDGE_VARIATOR_ROOT, as the Kotlin tests name it),
/// else the folder above this file that holds tests/vectors.
func repoRoot(file: String = #filePath) throws -> URL {
    let environment = ProcessInfo.processInfo.environment
    if let root = environment["EDGE_VARIATOR_REPO"] ?? environment["EDGE_VARIATOR_ROOT"], !root.isEmpty {
        return URL(fileURLWithPath: root)
    }
    var folder = URL(fileURLWithPath: file).deletingLastPathComponent()
    while folder.path != "/" {
        if FileManager.default.fileExists(atPath: folder.appendingPathComponent("tests/vectors/policy.json").path) {
            return folder
        }
        folder.deleteLastPathComponent()
    }
    throw XCTSkip("cannot find the repository root above \(file); set EDGE_VARIATOR_REPO")
}

/// Bundles opened so far, by folder: opening one hashes every file (model.pte is tens of MB, slow
/// in a debug build), so the tests that open the same bundle share it.
private var openedBundles: [URL: LoadedBundle] = [:]
private let openedBundlesLock = NSLock()

func openBundle(_ folder: URL) throws -> LoadedBundle {
    openedBundlesLock.lock()
    defer { openedBundlesLock.unlock() }
    if let bundle = openedBundles[folder] { return bundle }
    let bundle = try LoadedBundle(folder: folder)
    openedBundles[folder] = bundle
    return bundle
}

func loadJSON(_ url: URL) throws -> JSONValue {
    try JSONValue.parse(Data(contentsOf: url))
}

/// Every vector or check prints one line, `check PASS <what>` or `check FAIL <what>: <why>`, which
/// run_swift_tests.sh counts (XCTest counts test methods, not vectors); a failure also fails the test.
final class Tally {
    let group: String
    private(set) var passed = 0
    private(set) var failed = 0

    init(_ group: String) { self.group = group }

    /// Record one vector: `problems` empty means it passed.
    func record(_ what: String, _ problems: [String], file: StaticString = #filePath, line: UInt = #line) {
        if problems.isEmpty {
            passed += 1
            print("check PASS \(group) \(what)")
        } else {
            failed += 1
            let why = problems.joined(separator: "; ")
            print("check FAIL \(group) \(what): \(why)")
            XCTFail("\(group) \(what): \(why)", file: file, line: line)
        }
    }

    func summary(expected: Int? = nil, file: StaticString = #filePath, line: UInt = #line) {
        let total = passed + failed
        print("vectors \(group): \(total) checked, \(passed) passed, \(failed) failed")
        if let expected, expected != total {
            XCTFail("\(group): checked \(total) vectors but the file has \(expected)", file: file, line: line)
        }
    }
}

/// A number as the vectors write it: a JSON number, or the strings "NaN" / "Infinity" / "-Infinity".
func vectorNumber(_ value: JSONValue?) -> Double? {
    switch value {
    case .number(let number)?: return number
    case .string("NaN")?: return .nan
    case .string("Infinity")?: return .infinity
    case .string("-Infinity")?: return -.infinity
    default: return nil
    }
}

func close(_ a: Double?, _ b: Double?, _ tolerance: Double) -> Bool {
    switch (a, b) {
    case (nil, nil): return true
    case (let a?, let b?): return abs(a - b) <= tolerance || a == b
    default: return false
    }
}

func show(_ value: Double?) -> String { value.map { String($0) } ?? "null" }

/// A bundle folder made here, schema 2: a manifest (6 layers, ratios 1 2 4 8, an exit after each
/// layer, model.tokenizer = tokenizerKind, absent when nil as in older bundles; the table export
/// writes for these ratios and thresholds, policy.json's tables.full), the tokenizer folder's
/// tokenizer.json and tokenizer_config.json, and a stand-in model.pte (the tests' backends stand in
/// for the program); the checksums list all three.
func standInBundle(tokenizer: URL, tokenizerKind: String? = nil) throws -> URL {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ev-bundle-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder.appendingPathComponent("tokenizer"), withIntermediateDirectories: true)
    var checksums: [String: JSONValue] = [:]
    var tokenizerFiles: [JSONValue] = []
    for name in ["tokenizer.json", "tokenizer_config.json"] where FileManager.default.fileExists(atPath: tokenizer.appendingPathComponent(name).path) {
        try FileManager.default.copyItem(at: tokenizer.appendingPathComponent(name), to: folder.appendingPathComponent("tokenizer/\(name)"))
        checksums["tokenizer/\(name)"] = .string(try SHA256.hex(file: folder.appendingPathComponent("tokenizer/\(name)")))
        tokenizerFiles.append(.string(name))
    }
    let program = Data("a stand-in for model.pte: only its sha256 is checked here\n".utf8)
    try program.write(to: folder.appendingPathComponent("model.pte"))
    let programSha256 = SHA256.hex(program)
    checksums["model.pte"] = .string(programSha256)
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
    let file: JSONValue = .object(["path": .string("model.pte"), "sha256": .string(programSha256), "bytes": .number(Double(program.count))])
    var model: [String: JSONValue] = ["layers": .number(6), "hidden": .number(384), "vocab_size": .number(30522), "max_length": .number(128),
                                      "min_length": .number(16), "pad_multiple": .number(8), "labels": .array([.string("negative"), .string("positive")])]
    if let tokenizerKind { model["tokenizer"] = .string(tokenizerKind) }
    let thresholds: JSONValue = .object(["drop_1": .number(0.3), "drop_2": .number(0.5)])
    let policy = try XCTUnwrap(loadJSON(repoRoot().appendingPathComponent("tests/vectors/policy.json"))["tables"]?["full"])
    let zeros = JSONValue.string(String(repeating: "0", count: 64))
    let manifest: JSONValue = .object([
        "schema_version": .number(2), "library_version": .string("0.1.0"),
        "backbone": .object(["id": .string("stand-in"), "sha256": zeros]),
        "model": .object(model),
        "methods": .object(methods), "ratios": .object(ratios),
        "exits": .object(["after_layers": .array((0..<6).map { .number(Double($0)) }), "criterion": .string("entropy"),
                          "thresholds": thresholds]),
        "files": .object(["executorch": file, "tokenizer": .array(tokenizerFiles)]),
        "policy": policy, "checksums": .object(checksums),
        "inputs": .object(["export_key": zeros, "checkpoint_sha256": zeros, "thresholds": thresholds]),
    ])
    try JSONEncoder().encode(manifest).write(to: folder.appendingPathComponent("manifest.json"))
    return folder
}
