import Foundation

// A latency profile in the one format edge_variator/profile.py reads (`edge-variator profile
// BUNDLE --import profile.json`; the schema's $defs/latency_profile):
//   {"format": "edge-variator-latency-profile", "version": 1, "device": "...", "runtime": "...",
//    "pte_sha256": "...", "warmup": 3, "repeats": 20,
//    "methods": {"layer_0_k4": {"64": {"median_ms": 1.9, "p90_ms": 2.2}, ...}, ...}}

public enum ProfileError: Error, Equatable, CustomStringConvertible, LocalizedError {
    case lengths([Int], multiple: Int, min: Int, max: Int)
    case counts(repeats: Int, warmup: Int)
    case invalid(String)

    public var description: String {
        switch self {
        case .lengths(let bad, let multiple, let min, let max):
            return "lengths \(bad) are not multiples of \(multiple) from \(min) to \(max)"
        case .counts: return "repeats must be at least 1 and warmup at least 0"
        case .invalid(let problem): return "not a latency profile (edge-variator-latency-profile 1): \(problem)"
        }
    }

    public var errorDescription: String? { description }
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

    public var format: String = LatencyProfile.format
    public var version: Int = 1
    public var device: String
    public var runtime: String
    public var pteSha256: String?
    public var warmup: Int
    public var repeats: Int
    public var methods: [String: [String: Timing]]  // method -> length (as a string) -> timing

    enum CodingKeys: String, CodingKey {
        case format, version, device, runtime, pteSha256 = "pte_sha256", warmup, repeats, methods
    }

    public init(device: String, runtime: String, pteSha256: String?, warmup: Int, repeats: Int,
                methods: [String: [String: Timing]]) {
        self.device = device
        self.runtime = runtime
        self.pteSha256 = pteSha256
        self.warmup = warmup
        self.repeats = repeats
        self.methods = methods
    }

    /// The JSON file to bring back to the host (sorted keys, as the Python side writes).
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// What check_profile checks: the schema's latency_profile and, given a manifest, that every
    /// method is covered and the profile was measured on its model.pte.
    public func check(against manifest: Manifest? = nil) throws {
        if format != LatencyProfile.format || version != 1 { throw ProfileError.invalid("format/version") }
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
        let missing = Set(manifest.methods.keys).subtracting(methods.keys).sorted()
        if !missing.isEmpty { throw ProfileError.invalid("the profile lacks methods this bundle has: \(missing.prefix(5))") }
        if let sha = pteSha256, sha != manifest.files.executorch.sha256 {
            throw ProfileError.invalid("the profile was measured on another model.pte (pte_sha256 differs)")
        }
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
