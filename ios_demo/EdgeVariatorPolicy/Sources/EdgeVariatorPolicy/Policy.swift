import Foundation

// The runtime policy, ported from edge_variator/runtime/policy.py (the reference): from the
// device's state to the compression ratio k and the exit threshold. The rules live in the bundle
// manifest (or a calibrated policy file beside it), never in this code: the port has no table of
// its own. tests/vectors/policy.json holds the cases the Python, Kotlin and Swift versions pass.

/// iOS `ProcessInfo.ThermalState` names, in order: a rule's `thermal_at_least` holds at or above it.
public enum ThermalState: String, CaseIterable, Comparable, Sendable {
    case nominal, fair, serious, critical

    /// A state by its name, exactly as written (no case folding: "Serious" is refused).
    public init(name: String) throws {
        guard let state = ThermalState(rawValue: name) else { throw DeviceStateError.unknownThermal(name) }
        self = state
    }

    /// `ProcessInfo.ThermalState.rawValue` (0 nominal ... 3 critical), so the mapping is testable
    /// where ProcessInfo has no thermal state (Linux); the app passes `thermalState.rawValue`.
    public init(processInfoRawValue value: Int) throws {
        guard ThermalState.allCases.indices.contains(value) else {
            throw DeviceStateError.unknownThermal("ProcessInfo.ThermalState(rawValue: \(value))")
        }
        self = ThermalState.allCases[value]
    }

    /// Android's PowerManager.getCurrentThermalStatus() (0...6) onto the four states: LIGHT and
    /// MODERATE throttle little (fair), SEVERE is where Android asks apps to cut work (serious),
    /// above that is critical. For parity with the Kotlin port.
    public static func fromAndroid(_ status: Int) throws -> ThermalState {
        switch status {
        case 0: return .nominal
        case 1, 2: return .fair
        case 3: return .serious
        case 4, 5, 6: return .critical
        default: throw DeviceStateError.androidThermal(status)
        }
    }

    public static let androidNames = ["NONE", "LIGHT", "MODERATE", "SEVERE", "CRITICAL", "EMERGENCY", "SHUTDOWN"]

    var level: Int { ThermalState.allCases.firstIndex(of: self)! }

    public static func < (lhs: ThermalState, rhs: ThermalState) -> Bool { lhs.level < rhs.level }
}

/// A call the policy cannot decide on: a device state it cannot read, or a text length below 1.
public enum DeviceStateError: Error, Equatable, CustomStringConvertible, LocalizedError {
    case battery(Double)
    case unknownThermal(String)
    case budget(Double)
    case androidThermal(Int)
    case length(Int)

    public var description: String {
        switch self {
        case .battery(let value):
            return "battery must be from 0 to 1 (a fraction, not a percentage), not \(value)"
        case .unknownThermal(let name):
            return "unknown thermal state '\(name)'; use one of \(ThermalState.allCases.map(\.rawValue)) "
                + "(ThermalState.fromAndroid maps Android's THERMAL_STATUS_* levels)"
        case .budget(let value):
            return "budget_ms must be a positive number of milliseconds or nil, not \(value)"
        case .androidThermal(let status):
            return "Android thermal status must be 0...6 (THERMAL_STATUS_NONE...SHUTDOWN), not \(status)"
        case .length(let length):
            return "the text's length must be a whole number of tokens from 1, not \(length)"
        }
    }

    public var errorDescription: String? { description }
}

/// A policy table that cannot be used with this bundle.
public enum PolicyError: Error, Equatable, CustomStringConvertible, LocalizedError {
    case noRules
    case batteryMargin(String)
    case ruleNotObject(Int)
    case ruleName(String)
    case unknownRatio(rule: String, ratio: String, ratios: [Int])
    case unknownThreshold(rule: String, threshold: String, thresholds: [String])
    case badCondition(rule: String, problem: String)
    case lastRuleHasConditions(String)
    case latency(String)

    public var description: String {
        switch self {
        case .noRules:
            return "the policy table needs a non-empty list of rules"
        case .batteryMargin(let value):
            return "battery_margin must be from 0 to 1, not \(value)"
        case .ruleNotObject(let index):
            return "rule \(index) is not an object with name, when, ratio and threshold"
        case .ruleName(let name):
            return "every rule needs a unique name; \(name) is missing or repeated"
        case .unknownRatio(let rule, let ratio, let ratios):
            return "rule '\(rule)' asks for ratio \(ratio), but the bundle has only \(ratios.sorted())"
        case .unknownThreshold(let rule, let threshold, let thresholds):
            let known = thresholds.isEmpty ? "none" : "\(thresholds.sorted())"
            return "rule '\(rule)' names exit threshold \(threshold), but the bundle has \(known)"
        case .badCondition(let rule, let problem):
            return "rule '\(rule)': \(problem)"
        case .lastRuleHasConditions(let rule):
            return "the last rule ('\(rule)') must have no conditions, so that every state gets a decision"
        case .latency(let problem):
            return "latency_ms \(problem)"
        }
    }

    public var errorDescription: String? { description }
}

/// What the phone is doing now. Built only valid: the initializer throws DeviceStateError.
public struct DeviceState: Equatable, Sendable {
    public let battery: Double  // 0...1
    public let charging: Bool
    public let lowPower: Bool
    public let thermal: ThermalState
    public let budgetMs: Double?  // a latency budget for one run, or nil

    public init(battery: Double, charging: Bool = false, lowPower: Bool = false,
                thermal: ThermalState = .nominal, budgetMs: Double? = nil) throws {
        guard battery >= 0, battery <= 1 else { throw DeviceStateError.battery(battery) }  // NaN fails both
        if let budget = budgetMs, !(budget > 0) { throw DeviceStateError.budget(budget) }  // +inf is a budget
        self.battery = battery
        self.charging = charging
        self.lowPower = lowPower
        self.thermal = thermal
        self.budgetMs = budgetMs
    }

    /// With the thermal state by name, as Python's DeviceState(thermal="serious") takes it.
    public init(battery: Double, charging: Bool = false, lowPower: Bool = false, thermalName: String,
                budgetMs: Double? = nil) throws {
        try self.init(battery: battery, charging: charging, lowPower: lowPower,
                      thermal: ThermalState(name: thermalName), budgetMs: budgetMs)
    }
}

/// One rule's conditions: all that are set must hold.
public struct Conditions: Equatable, Sendable {
    public var thermalAtLeast: ThermalState?
    public var batteryBelow: Double?
    public var charging: Bool?
    public var lowPower: Bool?

    public init(thermalAtLeast: ThermalState? = nil, batteryBelow: Double? = nil, charging: Bool? = nil,
                lowPower: Bool? = nil) {
        self.thermalAtLeast = thermalAtLeast
        self.batteryBelow = batteryBelow
        self.charging = charging
        self.lowPower = lowPower
    }

    public var isEmpty: Bool { thermalAtLeast == nil && batteryBelow == nil && charging == nil && lowPower == nil }

    public static let names = ["thermal_at_least", "battery_below", "charging", "low_power"]
}

public struct Rule: Equatable, Sendable {
    public var name: String
    public var when: Conditions
    public var ratio: Int
    public var threshold: String?  // a name in manifest.exits.thresholds; nil: no early exit

    public init(name: String, when: Conditions = Conditions(), ratio: Int, threshold: String?) {
        self.name = name
        self.when = when
        self.ratio = ratio
        self.threshold = threshold
    }
}

/// A policy table (`manifest["policy"]`), typed. Build one from JSON with `checkPolicy`.
public struct PolicyTable: Equatable, Sendable {
    public static let defaultBatteryMargin = 0.05

    public var batteryMargin: Double
    public var rules: [Rule]
    /// Every layer's ms at each ratio, per profiled padded length, on the target device:
    /// length -> ratio -> ms (`{"16": {"1": 2.1, ...}, "256": {...}}` in the JSON); nil: not profiled.
    public var latencyMs: [Int: [Int: Double]]?

    public init(batteryMargin: Double = PolicyTable.defaultBatteryMargin, rules: [Rule],
                latencyMs: [Int: [Int: Double]]? = nil) {
        self.batteryMargin = batteryMargin
        self.rules = rules
        self.latencyMs = latencyMs
    }

    /// The table as the manifest writes it.
    public var json: JSONValue {
        func conditions(_ when: Conditions) -> JSONValue {
            var object: [String: JSONValue] = [:]
            if let thermal = when.thermalAtLeast { object["thermal_at_least"] = .string(thermal.rawValue) }
            if let below = when.batteryBelow { object["battery_below"] = .number(below) }
            if let charging = when.charging { object["charging"] = .bool(charging) }
            if let lowPower = when.lowPower { object["low_power"] = .bool(lowPower) }
            return .object(object)
        }
        let rules: [JSONValue] = rules.map { rule in
            .object(["name": .string(rule.name), "when": conditions(rule.when), "ratio": .number(Double(rule.ratio)),
                     "threshold": rule.threshold.map(JSONValue.string) ?? .null])
        }
        let latency: JSONValue = latencyMs.map { table in
            .object(Dictionary(uniqueKeysWithValues: table.map { length, row in
                (String(length), JSONValue.object(Dictionary(uniqueKeysWithValues: row.map { (String($0.key), JSONValue.number($0.value)) })))
            }))
        } ?? .null
        return .object(["battery_margin": .number(batteryMargin), "latency_ms": latency, "rules": .array(rules)])
    }
}

public struct Decision: Equatable, Sendable {
    public let ratio: Int
    public let threshold: Double?  // nil: no early exit, every layer runs
    public let thresholdName: String?
    public let rule: String  // the rule that matched
    public let budgetApplied: Bool  // the latency budget raised the ratio above the rule's
    public let lengthApplied: Bool  // at this length a smaller ratio than the rule's is as fast or faster

    public init(ratio: Int, threshold: Double?, thresholdName: String?, rule: String, budgetApplied: Bool,
                lengthApplied: Bool = false) {
        self.ratio = ratio
        self.threshold = threshold
        self.thresholdName = thresholdName
        self.rule = rule
        self.budgetApplied = budgetApplied
        self.lengthApplied = lengthApplied
    }
}

// MARK: - Checking a table

private func show(_ value: JSONValue?) -> String { value.map(\.description) ?? "missing" }

/// The ratio a rule asks for: a JSON number equal to an integer (4 or 4.0, as Python's `in` takes it).
private func integer(_ value: JSONValue?) -> Int? {
    guard let number = value?.numberValue, number == number.rounded(), abs(number) < 1e9 else { return nil }
    return Int(number)
}

/// Check a policy table as the manifest holds it (JSON) and return it typed; throws PolicyError
/// for every table `check_policy` refuses. Stricter than Python where Python would accept a value
/// and then misbehave: booleans are not numbers, `charging`/`low_power` must be booleans, a rule
/// and its `when` must be objects, latency lengths and ratios integers written plainly ("16", not
/// "016": Python would accept that and then not find the row), and ms numbers.
public func checkPolicy(_ table: JSONValue, ratios: [Int], thresholds: [String: Double]) throws -> PolicyTable {
    guard let rulesJSON = table["rules"]?.arrayValue, !rulesJSON.isEmpty else { throw PolicyError.noRules }
    var margin = PolicyTable.defaultBatteryMargin
    if let value = table["battery_margin"] {
        guard let number = value.numberValue, number >= 0, number < 1 else {
            throw PolicyError.batteryMargin(value.description)
        }
        margin = number
    }
    var rules: [Rule] = []
    for (index, ruleJSON) in rulesJSON.enumerated() {
        guard let object = ruleJSON.objectValue else { throw PolicyError.ruleNotObject(index) }
        guard let name = object["name"]?.stringValue else { throw PolicyError.ruleName(show(object["name"])) }
        guard let ratio = integer(object["ratio"]) else {
            throw PolicyError.unknownRatio(rule: name, ratio: show(object["ratio"]), ratios: ratios)
        }
        let threshold: String?
        switch object["threshold"] {
        case nil, .null?: threshold = nil
        case .string(let value)?: threshold = value
        case let other?:
            throw PolicyError.unknownThreshold(rule: name, threshold: other.description,
                                               thresholds: Array(thresholds.keys))
        }
        var when = Conditions()
        if let whenJSON = object["when"] {
            guard let conditions = whenJSON.objectValue else {
                throw PolicyError.badCondition(rule: name, problem: "when must be an object, not \(whenJSON)")
            }
            let unknown = conditions.keys.filter { !Conditions.names.contains($0) }.sorted()
            if !unknown.isEmpty {
                throw PolicyError.badCondition(rule: name, problem: "unknown conditions \(unknown); known: \(Conditions.names)")
            }
            if let value = conditions["thermal_at_least"] {
                guard let state = value.stringValue.flatMap(ThermalState.init(rawValue:)) else {
                    throw PolicyError.badCondition(
                        rule: name, problem: "thermal_at_least must be one of \(ThermalState.allCases.map(\.rawValue)), not \(value)")
                }
                when.thermalAtLeast = state
            }
            if let value = conditions["battery_below"] {
                guard let below = value.numberValue, below > 0, below <= 1 else {
                    throw PolicyError.badCondition(rule: name, problem: "battery_below must be in (0, 1], not \(value)")
                }
                when.batteryBelow = below
            }
            for key in ["charging", "low_power"] {
                guard let value = conditions[key] else { continue }
                guard let flag = value.boolValue else {
                    throw PolicyError.badCondition(rule: name, problem: "\(key) must be true or false, not \(value)")
                }
                if key == "charging" { when.charging = flag } else { when.lowPower = flag }
            }
        }
        rules.append(Rule(name: name, when: when, ratio: ratio, threshold: threshold))
    }
    var latency: [Int: [Int: Double]]?
    if let value = table["latency_ms"], !value.isNull { latency = try latencyTable(value) }
    let typed = PolicyTable(batteryMargin: margin, rules: rules, latencyMs: latency)
    try checkPolicy(typed, ratios: ratios, thresholds: thresholds)
    return typed
}

/// Throw PolicyError unless every rule can be carried out by a bundle with these ratios and thresholds.
public func checkPolicy(_ table: PolicyTable, ratios: [Int], thresholds: [String: Double]) throws {
    if table.rules.isEmpty { throw PolicyError.noRules }
    if !(table.batteryMargin >= 0 && table.batteryMargin < 1) {
        throw PolicyError.batteryMargin(String(table.batteryMargin))
    }
    var names = Set<String>()
    for rule in table.rules {
        if names.contains(rule.name) { throw PolicyError.ruleName("'\(rule.name)'") }
        names.insert(rule.name)
        if !ratios.contains(rule.ratio) {
            throw PolicyError.unknownRatio(rule: rule.name, ratio: String(rule.ratio), ratios: ratios)
        }
        if let threshold = rule.threshold, thresholds[threshold] == nil {
            throw PolicyError.unknownThreshold(rule: rule.name, threshold: "'\(threshold)'",
                                               thresholds: Array(thresholds.keys))
        }
        if let below = rule.when.batteryBelow, !(below > 0 && below <= 1) {
            throw PolicyError.badCondition(rule: rule.name, problem: "battery_below must be in (0, 1], not \(below)")
        }
    }
    if let last = table.rules.last, !last.when.isEmpty { throw PolicyError.lastRuleHasConditions(last.name) }
    try checkLatency(table.latencyMs, ratios: ratios)
}

private let latencyShape = #"map each padded length to every ratio's ms, {"256": {"1": 40.0, "2": 34.0}}"#

/// A whole number written as Swift writes it ("16"; not "016", "+16" or " 16").
private func plainInteger(_ key: String) -> Int? {
    guard let value = Int(key), String(value) == key else { return nil }
    return value
}

/// latency_ms as JSON, typed: length -> ratio -> ms. checkLatency then checks what it holds.
private func latencyTable(_ value: JSONValue) throws -> [Int: [Int: Double]] {
    guard let object = value.objectValue, !object.isEmpty else { throw PolicyError.latency("must \(latencyShape), not \(value)") }
    var latency: [Int: [Int: Double]] = [:]
    for key in object.keys.sorted() {  // sorted: a table is refused with the same message every time
        let rowJSON = object[key]!
        guard let row = rowJSON.objectValue else {
            throw PolicyError.latency("must \(latencyShape); \"\(key)\" maps to \(rowJSON) (a table of an older "
                                      + "edge-variator, which had one length: calibrate again)")
        }
        guard let length = plainInteger(key), length > 0 else {
            throw PolicyError.latency("lengths must be positive whole numbers, not \"\(key)\"")
        }
        var parsed: [Int: Double] = [:]
        for ratioKey in row.keys.sorted() {
            guard let ratio = plainInteger(ratioKey) else {
                throw PolicyError.latency("at \(key) tokens has a key that is not a ratio: \"\(ratioKey)\"")
            }
            guard let ms = row[ratioKey]!.numberValue else {
                throw PolicyError.latency("at \(key) tokens, ratio \(ratioKey): a number of ms, not \(row[ratioKey]!)")
            }
            parsed[ratio] = ms
        }
        latency[length] = parsed
    }
    return latency
}

/// check_latency: nil, or every profiled length (from 1) holds every ratio's ms, finite and >= 0.
public func checkLatency(_ latency: [Int: [Int: Double]]?, ratios: [Int]) throws {
    guard let latency else { return }
    if latency.isEmpty { throw PolicyError.latency("must \(latencyShape), not {}") }
    for length in latency.keys.sorted() {
        if length < 1 { throw PolicyError.latency("lengths must be positive whole numbers, not \(length)") }
        let row = latency[length]!
        let missing = ratios.filter { row[$0] == nil }
        if !missing.isEmpty { throw PolicyError.latency("at \(length) tokens lacks ratios \(missing)") }
        for ratio in row.keys.sorted() {
            let ms = row[ratio]!
            if !(ms >= 0 && ms.isFinite) { throw PolicyError.latency("at \(length) tokens, ratio \(ratio): a number of ms, not \(ms)") }
        }
    }
}

/// Ratio -> ms at the shortest profiled length at or above `length` (the longest past them all,
/// or when no length is given). `latency` must not be empty.
public func latencyRow(_ latency: [Int: [Int: Double]], length: Int?) -> [Int: Double] {
    let lengths = latency.keys.sorted()
    let at = lengths.first { length != nil && $0 >= length! } ?? lengths[lengths.count - 1]
    return latency[at]!
}

// MARK: - Deciding

private func matches(_ when: Conditions, _ state: DeviceState, active: Bool, margin: Double) -> Bool {
    if let least = when.thermalAtLeast, state.thermal < least { return false }
    if let charging = when.charging, state.charging != charging { return false }
    if let lowPower = when.lowPower, state.lowPower != lowPower { return false }
    if let below = when.batteryBelow {
        // Hysteresis: the rule that matched last time holds until battery_below + margin.
        let limit = below + (active ? margin : 0.0)
        if !(state.battery < limit) { return false }
    }
    return true
}

/// The decision for one state and a text of `length` padded tokens (nil: not known); `activeRule`
/// is the rule that matched the previous call (hysteresis). The table must have passed checkPolicy
/// (its last rule matches every state). Throws DeviceStateError for a length below 1.
///
/// With latency_ms it reads the row for the length (latencyRow), lowers the rule's ratio to the
/// fastest there of those no larger (ties to the less compressed: on short texts the merge and
/// restore cost more than the FFN they save), then a budget raises it to the least compressed
/// ratio at least that whose latency fits, or the fastest of those when none fits.
public func decide(_ table: PolicyTable, thresholds: [String: Double], state: DeviceState,
                   activeRule: String? = nil, length: Int? = nil) throws -> Decision {
    if let length, length < 1 { throw DeviceStateError.length(length) }
    let rule = table.rules.first { matches($0.when, state, active: $0.name == activeRule, margin: table.batteryMargin) }
        ?? table.rules[table.rules.count - 1]
    var ratio = rule.ratio
    var budgetApplied = false
    var lengthApplied = false
    if let latency = table.latencyMs, !latency.isEmpty {
        let row = latencyRow(latency, length: length)
        func fastest(_ ratios: [Int]) -> Int? { ratios.min { (row[$0]!, $0) < (row[$1]!, $1) } }
        if let lowered = fastest(row.keys.filter { $0 <= rule.ratio }) {
            ratio = lowered
            lengthApplied = ratio != rule.ratio
        }
        if let budget = state.budgetMs {
            let larger = row.keys.filter { $0 >= ratio }.sorted()  // least compressed first
            if let raised = larger.first(where: { row[$0]! <= budget }) ?? fastest(larger) {
                budgetApplied = raised != ratio
                ratio = raised
            }
        }
    }
    let threshold = rule.threshold.flatMap { thresholds[$0] }
    return Decision(ratio: ratio, threshold: threshold, thresholdName: rule.threshold, rule: rule.name,
                    budgetApplied: budgetApplied, lengthApplied: lengthApplied)
}

/// The stateful policy an app holds: remembers the active rule so the ratio does not flap.
public final class Policy {
    public let table: PolicyTable
    public let thresholds: [String: Double]
    public private(set) var activeRule: String?

    public init(table: PolicyTable, ratios: [Int], thresholds: [String: Double]) throws {
        try checkPolicy(table, ratios: ratios, thresholds: thresholds)
        var table = table
        if let latency = table.latencyMs, !latency.isEmpty {  // only the bundle's ratios take part, at every length
            table.latencyMs = latency.mapValues { row in row.filter { ratios.contains($0.key) } }
        }
        self.table = table
        self.thresholds = thresholds
    }

    /// A table as JSON (checked with checkPolicy first).
    public convenience init(json: JSONValue, ratios: [Int], thresholds: [String: Double]) throws {
        try self.init(table: checkPolicy(json, ratios: ratios, thresholds: thresholds), ratios: ratios,
                      thresholds: thresholds)
    }

    /// The manifest's table (written at export, checked when the manifest was read), or `table`
    /// (a calibrated policy's, CalibratedPolicy.check) in its place: Policy.from_manifest. There is
    /// no table of the app's own to fall back on.
    public convenience init(manifest: Manifest, table: PolicyTable? = nil) throws {
        try self.init(table: table ?? manifest.policyTable, ratios: manifest.ratioValues, thresholds: manifest.exits.thresholds)
    }

    /// The decision for `state` and a text of `length` padded tokens (nil: not known, the longest
    /// profiled row); a refused length leaves the active rule as it was.
    public func decide(_ state: DeviceState, length: Int? = nil) throws -> Decision {
        let decision = try EdgeVariatorPolicy.decide(table, thresholds: thresholds, state: state, activeRule: activeRule,
                                                     length: length)
        activeRule = decision.rule
        return decision
    }

    /// Forget the active rule (a new session: no hysteresis from before).
    public func reset() { activeRule = nil }
}

#if canImport(Darwin)
extension ThermalState {
    /// The app's `ProcessInfo.processInfo.thermalState`; a state a later iOS adds counts as critical
    /// (the policy then compresses most, the safe side for a phone that reports something new).
    public init(_ state: ProcessInfo.ThermalState) {
        switch state {
        case .nominal: self = .nominal
        case .fair: self = .fair
        case .serious: self = .serious
        case .critical: self = .critical
        @unknown default: self = .critical
        }
    }
}
#endif
