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

func fixture(_ name: String, file: String = #filePath) -> URL {
    URL(fileURLWithPath: file).deletingLastPathComponent().appendingPathComponent("Fixtures/\(name)")
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
