import Foundation

// A calibrated policy file (the schema's $defs/calibrated_policy; docs/BUNDLE.md), which
// `edge-variator calibrate` writes beside the profile it came from, profiles/<runtime>/<device>.policy.json:
//   {"format": "edge-variator-calibrated-policy", "version": 2,
//    "runtime": "executorch", "device": "...", "program_sha256": "...",
//    "length": 128, "budgets": {"serious": 20.0},
//    "policy": {... the manifest's table with budgeted rules' ratios set (fitted at `length`) and
//               "latency_ms": {"16": {"1": 2.1, "2": 2.4, ...}, ..., "256": {...}}}}
// latency_ms is every layer's median ms at each ratio per profiled padded length, so the policy
// follows each text's length (PolicyTable.latencyMs). Version 1 had one length's row
// ({"1": 40.0}) and is refused: calibrate again.
// An app uses its table instead of the manifest's when its runtime, program and table all check
// out against the bundle (profile.check_calibrated_policy), and refuses it otherwise.

public struct CalibratedPolicy: Equatable, Codable {
    public static let format = "edge-variator-calibrated-policy"
    public static let version = 2

    public var format: String = CalibratedPolicy.format
    public var version: Int = CalibratedPolicy.version
    public var runtime: String  // "executorch" or "coreml": the program the profile timed
    public var device: String
    public var programSha256: String  // files.<runtime>.sha256 of that program
    public var length: Int  // the padded length the budgets were fitted at
    public var budgets: [String: Double]  // rule name -> ms
    public var policy: JSONValue  // the table, as written

    enum CodingKeys: String, CodingKey {
        case format, version, runtime, device, programSha256 = "program_sha256", length, budgets, policy
    }

    /// A calibrated policy file's JSON: another format or version is refused before its fields are read.
    public init(data: Data) throws {
        try CalibratedPolicy.checkFormat(decodeDocument(Header.self, from: data, wrap: ProfileError.invalidPolicy))
        self = try decodeDocument(CalibratedPolicy.self, from: data, wrap: ProfileError.invalidPolicy)
    }

    private static func checkFormat(_ header: Header) throws {
        try EdgeVariatorPolicy.checkFormat(header, what: "a calibrated policy", format: format, version: version,
                                           wrap: ProfileError.invalidPolicy)
    }

    /// profile.load_calibrated_policy: the table of a calibrated policy file, checked against the
    /// bundle's `runtime` program, ratios and thresholds.
    public static func load(_ url: URL, manifest: Manifest, runtime: ProgramRuntime = .executorch) throws -> PolicyTable {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ProfileError.invalidPolicy("cannot read \(url.path): \(error.localizedDescription)")
        }
        return try CalibratedPolicy(data: data).check(against: manifest, runtime: runtime)
    }

    /// check_calibrated_policy: of this format, made on the bundle's `runtime` program, and a table
    /// the bundle's ratios and thresholds can carry out (PolicyError otherwise). Returns the table.
    @discardableResult
    public func check(against manifest: Manifest, runtime: ProgramRuntime = .executorch) throws -> PolicyTable {
        try CalibratedPolicy.checkFormat(Header(format: format, version: version))
        if ProgramRuntime(rawValue: self.runtime) == nil {
            throw ProfileError.invalidPolicy("runtime \"\(self.runtime)\" is not one of \(ProgramRuntime.allCases.map(\.rawValue))")
        }
        if !isSha256(programSha256) { throw ProfileError.invalidPolicy("program_sha256 is not a sha256: \(programSha256)") }
        if length < 1 { throw ProfileError.invalidPolicy("length \(length) is not a number of tokens") }
        if let bad = budgets.first(where: { !($0.value > 0) }) {
            throw ProfileError.invalidPolicy("budgets/\(bad.key): \(bad.value) is not a positive number of ms")
        }
        try checkProgram(what: "calibrated policy", runtime: self.runtime, programSha256: programSha256, manifest: manifest,
                         runtime: runtime)
        return try checkPolicy(policy, ratios: manifest.ratioValues, thresholds: manifest.exits.thresholds)
    }
}
