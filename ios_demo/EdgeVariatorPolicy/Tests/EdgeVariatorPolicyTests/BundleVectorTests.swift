import Foundation
import XCTest
@testable import EdgeVariatorPolicy

/// tests/vectors/bundle.json (scripts/bundle_vectors.py) over tests/vectors/bundle/, every case, as
/// tests/test_profile.py::test_the_shared_bundle_vectors_are_what_python_decides runs them: each
/// is refused or not, and a refusal's message holds the case's "mentions" (case-insensitive).
final class BundleVectorTests: XCTestCase {
    var vectors: JSONValue = .null
    var fixture = URL(fileURLWithPath: "/")

    override func setUpWithError() throws {
        let folder = try repoRoot().appendingPathComponent("tests/vectors")
        vectors = try loadJSON(folder.appendingPathComponent("bundle.json"))
        fixture = folder.appendingPathComponent(try XCTUnwrap(vectors["bundle"]?.stringValue))
    }

    func cases(_ key: String) throws -> [JSONValue] {
        let cases = try XCTUnwrap(vectors[key]?.arrayValue, "bundle.json has no \(key)")
        XCTAssertFalse(cases.isEmpty, "bundle.json has no \(key)")
        return cases
    }

    /// A copy of the fixture bundle in a temporary folder, removed when the test ends.
    func copyOfFixture() throws -> URL {
        let parent = FileManager.default.temporaryDirectory.appendingPathComponent("ev-bundle-vectors-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: parent) }
        let copy = parent.appendingPathComponent("bundle")
        try FileManager.default.copyItem(at: fixture, to: copy)
        return copy
    }

    /// The message of what `check` throws, nil when it passes.
    func refusal(_ check: () throws -> Void) -> String? {
        do {
            try check()
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// A case's "state" (battery, thermal, charging, low_power), as Python's DeviceState(**state).
    func deviceState(_ json: JSONValue) throws -> DeviceState {
        let unknown = Set(json.objectValue?.keys ?? [:].keys).subtracting(["battery", "thermal", "charging", "low_power"])
        if !unknown.isEmpty { throw VectorFormatError("state has keys this test does not know: \(unknown.sorted())") }
        return try DeviceState(battery: XCTUnwrap(json["battery"]?.numberValue), charging: json["charging"]?.boolValue ?? false,
                               lowPower: json["low_power"]?.boolValue ?? false, thermalName: json["thermal"]?.stringValue ?? "nominal")
    }

    /// What a case expects against what happened.
    func problems(_ entry: JSONValue, _ message: String?) -> [String] {
        let refused = entry["refused"]?.boolValue ?? false
        switch (refused, message) {
        case (false, nil): return []
        case (false, let message?): return ["refused: \(message)"]
        case (true, nil): return ["accepted; expected a refusal mentioning \"\(entry["mentions"]?.stringValue ?? "")\""]
        case (true, let message?):
            let word = entry["mentions"]?.stringValue ?? ""
            if word.isEmpty { return ["the case names no word for its refusal"] }
            print("  refused: \(message)")
            return message.lowercased().contains(word.lowercased()) ? [] : ["the message \"\(message)\" does not mention \"\(word)\""]
        }
    }

    func testTheFixtureIsASchema2BundleWhoseChecksumsListItsFiles() throws {
        let tally = Tally("bundle.fixture")
        let manifest = try Manifest.load(bundle: fixture)
        tally.record("loads (schema \(manifest.schemaVersion), \(manifest.checksums.count) checksums)", manifest.schemaVersion == 2 ? [] : ["schema"])
        // bundle_checksums: every file but manifest.json and profiles/, by relative path.
        var found: [String: String] = [:]
        let walker = try XCTUnwrap(FileManager.default.enumerator(at: fixture, includingPropertiesForKeys: [.isRegularFileKey]))
        let prefix = fixture.standardizedFileURL.path + "/"
        for case let url as URL in walker where try url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile == true {
            let path = String(url.standardizedFileURL.path.dropFirst(prefix.count))
            if path != "manifest.json" && !path.hasPrefix("profiles/") { found[path] = try SHA256.hex(file: url) }
        }
        tally.record("the checksums are the files beside the manifest, by sha256",
                     found == manifest.checksums ? [] : ["found \(found.keys.sorted()), listed \(manifest.checksums.keys.sorted())"])
        tally.record("inputs.export_key and library_version are read",
                     isSha256(manifest.inputs.exportKey) && !manifest.libraryVersion.isEmpty && manifest.inputs.ratios == [1, 2] ? [] : ["got \(manifest.inputs)"])
        let digest = try folderDigest(fixture.appendingPathComponent("tokenizer"))
        tally.record("the digest of tokenizer/ from its files is the one made from the checksums",
                     digest == manifest.packageDigest("tokenizer") ? [] : ["\(digest) != \(manifest.packageDigest("tokenizer"))"])
        tally.summary(expected: 4)
    }

    func testManifestCases() throws {
        let tally = Tally("bundle.manifest_cases")
        let entries = try cases("manifest_cases")
        let raw = try loadJSON(fixture.appendingPathComponent("manifest.json"))
        for (index, entry) in entries.enumerated() {
            let name = entry["name"]?.stringValue ?? "#\(index)"
            do {
                let copy = try copyOfFixture()
                let manifest = try edited(raw, entry["edits"]?.arrayValue ?? [])
                try JSONEncoder().encode(manifest).write(to: copy.appendingPathComponent("manifest.json"))
                let message = refusal { _ = try Manifest.load(bundle: copy) }
                tally.record("[\(index)] \(name)", problems(entry, message))
            } catch {
                tally.record("[\(index)] \(name)", ["\(error)"])
            }
        }
        tally.summary(expected: entries.count)
    }

    func testFileCases() throws {
        let tally = Tally("bundle.file_cases")
        let entries = try cases("file_cases")
        for (index, entry) in entries.enumerated() {
            let name = entry["name"]?.stringValue ?? "#\(index)"
            do {
                let path = try XCTUnwrap(entry["path"]?.stringValue)
                let copy = try copyOfFixture()
                let target = copy.appendingPathComponent(path)
                switch entry["how"]?.stringValue {
                case "append": try (Data(contentsOf: target) + Data("altered\n".utf8)).write(to: target)
                case "truncate":
                    let bytes = try Data(contentsOf: target)
                    try bytes.prefix(bytes.count / 2).write(to: target)
                case "delete": try FileManager.default.removeItem(at: target)
                case let how: throw VectorFormatError("unknown how \(how ?? "null")")
                }
                let message = refusal { _ = try Manifest.load(bundle: copy) }
                var found = problems(entry, message)
                if let message, !message.contains(path) { found.append("the message does not name \(path)") }
                if entry["mentions"]?.stringValue != path { found.append("the case mentions \(entry["mentions"] ?? .null), not its path") }
                tally.record("[\(index)] \(name)", found)
            } catch {
                tally.record("[\(index)] \(name)", ["\(error)"])
            }
        }
        tally.summary(expected: entries.count)
    }

    func testProfileCases() throws {
        let tally = Tally("bundle.profile_cases")
        let manifest = try Manifest.load(bundle: fixture)
        let entries = try cases("profile_cases")
        for (index, entry) in entries.enumerated() {
            let name = entry["name"]?.stringValue ?? "#\(index)"
            do {
                let runtime = try XCTUnwrap(entry["runtime"]?.stringValue.flatMap(ProgramRuntime.init(rawValue:)))
                let data = try JSONEncoder().encode(try XCTUnwrap(entry["profile"]))
                let message = refusal { try LatencyProfile(data: data).check(against: manifest, runtime: runtime) }
                tally.record("[\(index)] \(name) (for \(runtime.rawValue))", problems(entry, message))
            } catch {
                tally.record("[\(index)] \(name)", ["\(error)"])
            }
        }
        tally.summary(expected: entries.count)
    }

    func testCalibratedPolicyCases() throws {
        let tally = Tally("bundle.calibrated_policy_cases")
        let manifest = try Manifest.load(bundle: fixture)
        let entries = try cases("calibrated_policy_cases")
        for (index, entry) in entries.enumerated() {
            let name = entry["name"]?.stringValue ?? "#\(index)"
            do {
                let runtime = try XCTUnwrap(entry["runtime"]?.stringValue.flatMap(ProgramRuntime.init(rawValue:)))
                let data = try JSONEncoder().encode(try XCTUnwrap(entry["document"]))
                var table: PolicyTable?
                let message = refusal { table = try CalibratedPolicy(data: data).check(against: manifest, runtime: runtime) }
                var found = problems(entry, message)
                if let table, let state = entry["state"], let expect = entry["expect"] {
                    let decision = try Policy(manifest: manifest, table: table).decide(deviceState(state))
                    if decision.ratio != expect["ratio"]?.numberValue.map({ Int($0) }) || decision.rule != expect["rule"]?.stringValue
                        || decision.thresholdName != expect["threshold_name"]?.stringValue {
                        found.append("decided \(decision), expected \(expect)")
                    }
                    if table == manifest.policyTable { found.append("the calibrated table is the manifest's") }
                } else if entry["refused"]?.boolValue == false {
                    found.append("an accepted case with no state and expected decision")
                }
                tally.record("[\(index)] \(name) (for \(runtime.rawValue))", found)
            } catch {
                tally.record("[\(index)] \(name)", ["\(error)"])
            }
        }
        tally.summary(expected: entries.count)
    }

    func testDeviceFiles() throws {
        let tally = Tally("bundle.device_files")
        let entries = try cases("device_files")
        for (index, entry) in entries.enumerated() {
            let device = entry["device"]?.stringValue ?? ""
            let file = entry["file"]?.stringValue ?? ""
            var found: [String] = []
            if profileFileName(device: device) != file { found.append("got \(profileFileName(device: device))") }
            let slug = String(file.dropLast(".json".count))
            if deviceSlug(device) != slug { found.append("slug \(deviceSlug(device))") }
            if calibratedPolicyFileName(device: device) != "\(slug).policy.json" { found.append("policy file \(calibratedPolicyFileName(device: device))") }
            for runtime in ProgramRuntime.allCases {
                let url = profileURL(bundle: fixture, runtime: runtime, device: device)
                if url.path != fixture.path + "/profiles/\(runtime.rawValue)/\(file)" { found.append("profile at \(url.path)") }
                let policy = calibratedPolicyURL(bundle: fixture, runtime: runtime, device: device)
                if policy.deletingLastPathComponent() != url.deletingLastPathComponent() { found.append("the policy is not beside the profile") }
            }
            tally.record("[\(index)] \(String(reflecting: device)) -> \(file)", found)
        }
        tally.summary(expected: entries.count)
    }

    /// SHA-256 against FIPS 180-4's examples, in blocks of every size, and the folder digest
    /// against edge_variator.files.folder_digest of the same files (worked out in Python).
    func testSHA256AndTheFolderDigest() throws {
        let tally = Tally("bundle.sha256")
        let known: [(String, Data, String)] = [
            ("empty", Data(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            ("abc", Data("abc".utf8), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            ("448 bits", Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8),
             "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
            ("a million a", Data(repeating: 0x61, count: 1_000_000), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
        ]
        for (what, data, expected) in known {
            tally.record("\(what)", SHA256.hex(data) == expected ? [] : ["got \(SHA256.hex(data))"])
        }
        let text = Data((0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let whole = SHA256.hex(text)
        var differ: [Int] = []
        for size in [1, 3, 55, 56, 63, 64, 65, 127, 999] {
            var hash = SHA256()
            var offset = 0
            while offset < text.count {
                hash.update(text[offset..<min(offset + size, text.count)])
                offset += size
            }
            if hash.finalize() != whole { differ.append(size) }
        }
        tally.record("1000 bytes in blocks of 1 to 999 bytes hash alike", differ.isEmpty ? [] : ["blocks of \(differ) differ"])
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ev-digest-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("b"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        for (path, content) in [("a.txt", "x\n"), ("b/c.txt", "y\n"), ("b-d.txt", "z\n")] {
            try Data(content.utf8).write(to: folder.appendingPathComponent(path))
        }
        let file = try SHA256.hex(file: folder.appendingPathComponent("a.txt"), blockSize: 1)
        tally.record("a file read in blocks", file == SHA256.hex(Data("x\n".utf8)) ? [] : ["got \(file)"])
        // "b-d.txt" before "b/c.txt": code point order, as sorted() and `sha256sum | sort` with LC_ALL=C.
        let digest = try folderDigest(folder)
        tally.record("folder_digest of a.txt, b-d.txt, b/c.txt",
                     digest == "8777da36e9de508e1abe8d93303332628fbb03b8c906ef9a57f868cee681e02d" ? [] : ["got \(digest)"])
        tally.summary(expected: known.count + 3)
    }
}

/// `document` with each edit applied (bundle_vectors.edited): {"path": [...], "value": v} sets,
/// {"path": [...], "delete": true} removes; a path goes through object keys and array indices.
func edited(_ document: JSONValue, _ edits: [JSONValue]) throws -> JSONValue {
    func apply(_ value: JSONValue, _ path: ArraySlice<JSONValue>, _ edit: JSONValue) throws -> JSONValue? {
        guard let key = path.first else { return edit["delete"]?.boolValue == true ? nil : edit["value"] ?? .null }
        switch (value, key) {
        case (.object(var object), .string(let name)):
            guard path.count == 1 || object[name] != nil else { throw VectorFormatError("no \(name) to edit") }
            object[name] = try apply(object[name] ?? .null, path.dropFirst(), edit)
            return .object(object)
        case (.array(var array), .number(let number)):
            let index = Int(number)
            guard array.indices.contains(index) else { throw VectorFormatError("no item \(index) to edit") }
            if let item = try apply(array[index], path.dropFirst(), edit) { array[index] = item } else { array.remove(at: index) }
            return .array(array)
        default:
            throw VectorFormatError("cannot follow \(key) into \(value)")
        }
    }
    var result = document
    for edit in edits {
        let path = try XCTUnwrap(edit["path"]?.arrayValue)
        result = try XCTUnwrap(apply(result, path[...], edit))
    }
    return result
}
