import Foundation

// A latency profile in the one format edge_variator/profile.py reads (`edge-variator profile
// BUNDLE --import profile.json`; the schema's $defs/latency_profile; docs/BUNDLE.md), kept in the
// bundle's profiles/<runtime>/<device>.json:
//   {"format": "edge-variator-latency-profile", "version": 2, "runtime": "executorch",
//    "runtime_version": "executorch 1.4.0 (xnnpack)", "device": "...",
//    "program_sha256": "...",                      # files.<runtime>.sha256 of the program timed
//    "warmup": 3, "repeats": 20,
//    "methods": {"layer_0_k4": {"64": {"median_ms": 1.9, "p90_ms": 2.2}, ...}, ...}}
// and the policy calibrated from it, profiles/<runtime>/<device>.policy.json (CalibratedPolicy).

public enum ProfileError: Error, Equatable, CustomStringConvertible, LocalizedError {
    case lengths([Int], multiple: Int, min: Int, max: Int)
    case counts(repeats: Int, warmup: Int)
    /// Not a latency profile of this format (what the schema refuses).
    case invalid(String)
    /// Not a calibrated policy of this format.
    case invalidPolicy(String)
    /// A document of the right format but another version (an older edge-variator or app wrote it).
    case version(what: String, found: String, expected: Int)
    /// A well-formed document that does not belong to this bundle or runtime.
    case mismatch(String)

    public var description: String {
        switch self {
        case .lengths(let bad, let multiple, let min, let max):
            return "lengths \(bad) are not multiples of \(multiple) from \(min) to \(max)"
        case .counts: return "repeats must be at least 1 and warmup at least 0"
        case .invalid(let problem):
            return "not a latency profile (\(LatencyProfile.format) \(LatencyProfile.version)): \(problem)"
        case .invalidPolicy(let problem):
            return "not a calibrated policy (\(CalibratedPolicy.format) \(CalibratedPolicy.version)): \(problem)"
        case .version(let what, let found, let expected):
            return "\(what) of version \(found) is not version \(expected) (an older edge-variator or app wrote it): make it again"
        case .mismatch(let problem): return problem
        }
    }

    public var errorDescription: String? { description }
}

/// A device name as a file name (profile.device_slug): lower case, every run of characters other
/// than a-z and 0-9 one "-", trimmed of "-"; "device" when nothing is left.
public func deviceSlug(_ device: String) -> String {
    var slug = ""
    var dash = false
    for scalar in device.lowercased().unicodeScalars {  // code points, as Python's re sees them
        if ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar) {
            if dash && !slug.isEmpty { slug.append("-") }
            slug.unicodeScalars.append(scalar)
            dash = false
        } else {
            dash = true
        }
    }
    return slug.isEmpty ? "device" : slug
}

/// The file name of a device's latency profile in profiles/<runtime>/: "<slug>.json".
public func profileFileName(device: String) -> String { "\(deviceSlug(device)).json" }

/// The file name of the policy calibrated from it, beside it: "<slug>.policy.json".
public func calibratedPolicyFileName(device: String) -> String { "\(deviceSlug(device)).policy.json" }

/// Where a bundle keeps the profile of `runtime` on `device` (profile.profile_path).
public func profileURL(bundle folder: URL, runtime: ProgramRuntime, device: String) -> URL {
    folder.appendingPathComponent("profiles").appendingPathComponent(runtime.rawValue)
        .appendingPathComponent(profileFileName(device: device))
}

/// Where a bundle keeps the policy calibrated for `runtime` on `device`, beside its profile.
public func calibratedPolicyURL(bundle folder: URL, runtime: ProgramRuntime, device: String) -> URL {
    folder.appendingPathComponent("profiles").appendingPathComponent(runtime.rawValue)
        .appendingPathComponent(calibratedPolicyFileName(device: device))
}

/// check_program: a document made on `runtime` (profile or calibrated policy) was made on this
/// bundle's program of that runtime.
func checkProgram(what: String, runtime documentRuntime: String, programSha256: String, manifest: Manifest,
                  runtime: ProgramRuntime) throws {
    if documentRuntime != runtime.rawValue {
        throw ProfileError.mismatch("the \(what) is for the bundle's \(documentRuntime) program, not its \(runtime.rawValue) one")
    }
    guard let program = manifest.program(runtime) else {
        throw ProfileError.mismatch("the bundle has no \(runtime.rawValue) program")
    }
    if programSha256 != program.sha256 {
        throw ProfileError.mismatch("the \(what) was made on another \(program.path) (program_sha256 differs); profile this bundle")
    }
}

/// The format and version of a document, read before anything else, so that an older one is told
/// its version rather than a missing field.
struct Header: Decodable {
    let format: JSONValue?
    let version: JSONValue?

    init(format: JSONValue?, version: JSONValue?) {
        self.format = format
        self.version = version
    }

    /// A typed document's own, to check as read ones are.
    init(format: String, version: Int) {
        self.init(format: .string(format), version: .number(Double(version)))
    }
}

/// The JSON of a document parsed with `decode`, a DecodingError turned into `wrap`'s error.
func decodeDocument<T: Decodable>(_ type: T.Type, from data: Data, wrap: (String) -> ProfileError) throws -> T {
    do {
        return try JSONDecoder().decode(T.self, from: data)
    } catch let error as DecodingError {
        throw wrap(Manifest.explain(error))
    }
}

/// Raise unless the header says this format and version (profile._follows' first step): `wrap`'s
/// error for another format, ProfileError.version for another version. A file's header is checked
/// before its fields are read, and a typed document's (made in code) by its check.
func checkFormat(_ header: Header, what: String, format: String, version: Int, wrap: (String) -> ProfileError) throws {
    guard header.format == .string(format) else {
        throw wrap("format is \(header.format?.description ?? "missing"), not \"\(format)\"")
    }
    if header.version != .number(Double(version)) {
        throw ProfileError.version(what: what, found: header.version?.description ?? "missing", expected: version)
    }
}

public struct Timing: Equatable, Codable, Sendable {
    public let medianMs: Double
    public let p90Ms: Double

    enum CodingKeys: String, CodingKey { case medianMs = "median_ms", p90Ms = "p90_ms" }

    /// From one method's repeated wall times: Python's statistics.median and the sorted value at
    /// min(n - 1, int(0.9 n)), exactly as profile.measure computes them.
    public init(times: [Double]) {
        let sorted = times.sorted()
        let count = sorted.count
        precondition(count > 0, "a timing needs at least one time")
        medianMs = count % 2 == 1 ? sorted[count / 2] : (sorted[count / 2 - 1] + sorted[count / 2]) / 2
        p90Ms = sorted[min(count - 1, Int(0.9 * Double(count)))]
    }

    public init(medianMs: Double, p90Ms: Double) {
        self.medianMs = medianMs
        self.p90Ms = p90Ms
    }
}

public struct LatencyProfile: Equatable, Codable, Sendable {
    public static let format = "edge-variator-latency-profile"
    public static let version = 2

    public var format: String = LatencyProfile.format
    public var version: Int = LatencyProfile.version
    /// Which of the bundle's programs was timed: "executorch" or "coreml" (ProgramRuntime).
    public var runtime: String
    /// What ran it, in words: "ExecuTorch 1.4.1 (XNNPACK), Swift API, iOS 18.2".
    public var runtimeVersion: String?
    public var device: String
    /// files.<runtime>.sha256 of the program timed.
    public var programSha256: String
    public var warmup: Int
    public var repeats: Int
    public var methods: [String: [String: Timing]]  // method -> length (as a string) -> timing

    enum CodingKeys: String, CodingKey {
        case format, version, runtime, runtimeVersion = "runtime_version", device, programSha256 = "program_sha256"
        case warmup, repeats, methods
    }

    public init(runtime: ProgramRuntime, runtimeVersion: String?, device: String, programSha256: String, warmup: Int,
                repeats: Int, methods: [String: [String: Timing]]) {
        self.runtime = runtime.rawValue
        self.runtimeVersion = runtimeVersion
        self.device = device
        self.programSha256 = programSha256
        self.warmup = warmup
        self.repeats = repeats
        self.methods = methods
    }

    /// A profile file's JSON: another format or version is refused before its fields are read
    /// (a version 1 profile had pte_sha256 and no program_sha256).
    public init(data: Data) throws {
        try LatencyProfile.checkFormat(decodeDocument(Header.self, from: data, wrap: ProfileError.invalid))
        self = try decodeDocument(LatencyProfile.self, from: data, wrap: ProfileError.invalid)
    }

    private static func checkFormat(_ header: Header) throws {
        try EdgeVariatorPolicy.checkFormat(header, what: "a latency profile", format: format, version: version,
                                           wrap: ProfileError.invalid)
    }

    /// profile.load_profile: a profile file, checked (against the bundle's `runtime` program, given a manifest).
    public static func load(_ url: URL, manifest: Manifest? = nil, runtime: ProgramRuntime = .executorch) throws -> LatencyProfile {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ProfileError.invalid("cannot read \(url.path): \(error.localizedDescription)")
        }
        let profile = try LatencyProfile(data: data)
        try profile.check(against: manifest, runtime: runtime)
        return profile
    }

    /// The JSON file to bring back to the host (sorted keys, as the Python side writes).
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// What check_profile checks: the schema's latency_profile and, given a manifest, that the
    /// profile timed that bundle's `runtime` program and covers every method.
    public func check(against manifest: Manifest? = nil, runtime: ProgramRuntime = .executorch) throws {
        try LatencyProfile.checkFormat(Header(format: format, version: version))
        if ProgramRuntime(rawValue: self.runtime) == nil {
            throw ProfileError.invalid("runtime \"\(self.runtime)\" is not one of \(ProgramRuntime.allCases.map(\.rawValue))")
        }
        if !isSha256(programSha256) { throw ProfileError.invalid("program_sha256 is not a sha256: \(programSha256)") }
        if warmup < 0 || repeats < 1 { throw ProfileError.counts(repeats: repeats, warmup: warmup) }
        if methods.isEmpty { throw ProfileError.invalid("methods is empty") }
        for (name, rows) in methods {
            for (length, timing) in rows {
                if length.isEmpty || !length.allSatisfy({ $0.isASCII && $0.isNumber }) {
                    throw ProfileError.invalid("methods/\(name): '\(length)' is not a length")
                }
                if !(timing.medianMs >= 0 && timing.p90Ms >= 0) || !timing.medianMs.isFinite || !timing.p90Ms.isFinite {
                    throw ProfileError.invalid("methods/\(name)/\(length): times must be finite numbers >= 0")
                }
            }
        }
        guard let manifest else { return }
        try checkProgram(what: "latency profile", runtime: self.runtime, programSha256: programSha256, manifest: manifest,
                         runtime: runtime)
        let missing = Set(manifest.methods.keys).subtracting(methods.keys).sorted()
        if !missing.isEmpty { throw ProfileError.mismatch("the profile lacks methods this bundle has: \(missing.prefix(5))") }
    }

    /// Median ms of a run that stops after layer 1, 2, ..., L at this ratio (profile.depth_latency).
    public func depthLatency(manifest: Manifest, ratio: Int, length: Int) throws -> [Double] {
        func ms(_ name: String) throws -> Double {
            guard let timing = methods[name]?[String(length)] else {
                throw ProfileError.invalid("no timing of \(name) at \(length) tokens")
            }
            return timing.medianMs
        }
        let exits = Set(manifest.exits.afterLayers)
        var total = try ms("embed")
        var cumulative: [Double] = []
        for (index, name) in try manifest.layerMethods(ratio: ratio).enumerated() {
            total += try ms(name) + (exits.contains(index) ? try ms("exit_\(index)") : 0)
            cumulative.append(total)
        }
        return cumulative
    }
}

/// Time every method at each length, as profile.measure does: within each repeat the methods are
/// called in turn, so that a slow moment falls on all of them alike; the first `warmup` repeats
/// are not kept. `prepare(method, length)` makes the inputs once (outside the timing) and returns
/// the call to time; `now()` is a clock in seconds. `progress(done, total)` after every call.
public func measureMethods(
    methods: [String], lengths: [Int], warmup: Int, repeats: Int,
    limits: (multiple: Int, min: Int, max: Int),
    now: () -> Double,
    prepare: (_ method: String, _ length: Int) throws -> () throws -> Void,
    progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }
) throws -> [String: [String: Timing]] {
    let bad = lengths.filter { $0 % limits.multiple != 0 || $0 < limits.min || $0 > limits.max }
    if !bad.isEmpty { throw ProfileError.lengths(bad, multiple: limits.multiple, min: limits.min, max: limits.max) }
    if repeats < 1 || warmup < 0 { throw ProfileError.counts(repeats: repeats, warmup: warmup) }
    var timings: [String: [String: Timing]] = Dictionary(uniqueKeysWithValues: methods.map { ($0, [:]) })
    let total = lengths.count * (warmup + repeats) * methods.count
    var done = 0
    for length in lengths {
        let calls = try methods.map { try prepare($0, length) }
        var times: [[Double]] = Array(repeating: [], count: methods.count)
        for repeatIndex in 0..<(warmup + repeats) {
            for (index, call) in calls.enumerated() {
                let began = now()
                try call()
                let elapsed = 1000 * (now() - began)
                if repeatIndex >= warmup { times[index].append(elapsed) }
                done += 1
                progress(done, total)
            }
        }
        for (index, method) in methods.enumerated() {
            timings[method]![String(length)] = Timing(times: times[index])
        }
    }
    return timings
}
