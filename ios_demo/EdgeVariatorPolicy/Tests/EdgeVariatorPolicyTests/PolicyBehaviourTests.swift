import Foundation
import XCTest
@testable import EdgeVariatorPolicy

/// What the vectors do not spell out: the iOS thermal mapping, the messages, the places where the
/// port is stricter than Python on types, the budget edge cases, and what a length-aware table
/// decides beyond the ratios the vectors check (lengthApplied, budgetApplied after a lowering).
final class PolicyBehaviourTests: XCTestCase {
    let thresholds = ["drop_1": 0.6, "drop_2": 0.7]

    func testIOSThermalStateNamesAndRawValues() throws {
        let tally = Tally("policy.ios_thermal")
        // ProcessInfo.ThermalState: nominal = 0, fair = 1, serious = 2, critical = 3.
        for (raw, name) in ["nominal", "fair", "serious", "critical"].enumerated() {
            let byRaw = try? ThermalState(processInfoRawValue: raw)
            let byName = try? ThermalState(name: name)
            tally.record("ProcessInfo.ThermalState(rawValue: \(raw)) is \(name)",
                         byRaw?.rawValue == name && byName == byRaw ? [] : ["got \(String(describing: byRaw))"])
        }
        for raw in [-1, 4] {
            tally.record("ProcessInfo raw value \(raw) is refused",
                         (try? ThermalState(processInfoRawValue: raw)) == nil ? [] : ["accepted"])
        }
        tally.record("nominal < fair < serious < critical",
                     ThermalState.allCases == ThermalState.allCases.sorted() && ThermalState.nominal < .critical ? [] : ["order"])
        tally.summary()
    }

    func testErrorsNameTheProblem() {
        let tally = Tally("policy.messages")
        func message(_ make: () throws -> Any) -> String {
            do { _ = try make(); return "" } catch { return "\(error)" }
        }
        let cases: [(String, String, [String])] = [
            ("percentage battery", message { try DeviceState(battery: 55) }, ["battery", "55", "fraction"]),
            ("NaN battery", message { try DeviceState(battery: .nan) }, ["battery", "nan"]),
            ("unknown thermal", message { try DeviceState(battery: 1, thermalName: "Serious") }, ["thermal", "Serious", "nominal"]),
            ("zero budget", message { try DeviceState(battery: 1, budgetMs: 0) }, ["budget_ms", "0"]),
            ("Android 7", message { try ThermalState.fromAndroid(7) }, ["Android", "7"]),
            ("unknown ratio", message {
                try Policy(json: .object(["rules": .array([.object(["name": .string("d"), "when": .object([:]),
                                                                   "ratio": .number(4), "threshold": .null])])]),
                           ratios: [1, 2], thresholds: [:])
            }, ["ratio 4", "[1, 2]", "'d'"]),
            ("latency lacks ratios", message {
                try Policy(json: .object(["latency_ms": .object(["256": .object(["1": .number(10)])]),
                                          "rules": .array([.object(["name": .string("d"), "when": .object([:]),
                                                                    "ratio": .number(1), "threshold": .null])])]),
                           ratios: [1, 2], thresholds: [:])
            }, ["latency_ms", "256 tokens", "[2]"]),
            ("latency of one length (an older edge-variator's)", message {
                try Policy(json: .object(["latency_ms": .object(["1": .number(40), "2": .number(34)]),
                                          "rules": .array([.object(["name": .string("d"), "when": .object([:]),
                                                                    "ratio": .number(1), "threshold": .null])])]),
                           ratios: [1, 2], thresholds: [:])
            }, ["latency_ms", "older edge-variator", "calibrate again", "{\"256\": {\"1\": 40.0"]),
            ("length 0", message {
                try Policy(table: PolicyTable(rules: [Rule(name: "d", ratio: 1, threshold: nil)]), ratios: [1], thresholds: [:])
                    .decide(DeviceState(battery: 1), length: 0)
            }, ["length", "tokens", "0"]),
        ]
        for (what, text, needles) in cases {
            let missing = needles.filter { !text.contains($0) }
            tally.record(what, missing.isEmpty ? [] : ["message \"\(text)\" lacks \(missing)"])
        }
        tally.summary()
    }

    /// Tables Python accepts through its types' looseness (True == 1, a string for a boolean) and
    /// then misapplies: the port refuses them with PolicyError.
    func testStricterThanPythonOnTypes() {
        let tally = Tally("policy.types")
        func rule(_ fields: [String: JSONValue]) -> JSONValue {
            var base: [String: JSONValue] = ["name": .string("r"), "when": .object([:]), "ratio": .number(1), "threshold": .null]
            base.merge(fields) { $1 }
            return .object(base)
        }
        let fallback = rule(["name": .string("default")])
        let tables: [(String, JSONValue)] = [
            ("ratio true", .object(["rules": .array([rule(["ratio": .bool(true)])])])),
            ("ratio as a string", .object(["rules": .array([rule(["ratio": .string("1")])])])),
            ("charging as a string", .object(["rules": .array([rule(["when": .object(["charging": .string("yes")])]), fallback])])),
            ("low_power as 1", .object(["rules": .array([rule(["when": .object(["low_power": .number(1)])]), fallback])])),
            ("battery_below true", .object(["rules": .array([rule(["when": .object(["battery_below": .bool(true)])]), fallback])])),
            ("battery_below 0", .object(["rules": .array([rule(["when": .object(["battery_below": .number(0)])]), fallback])])),
            ("battery_below 1.5", .object(["rules": .array([rule(["when": .object(["battery_below": .number(1.5)])]), fallback])])),
            ("when is a list", .object(["rules": .array([rule(["when": .array([])])])])),
            ("threshold is a number", .object(["rules": .array([rule(["threshold": .number(0.6)])])])),
            ("battery_margin 1", .object(["battery_margin": .number(1), "rules": .array([fallback])])),
            ("battery_margin null", .object(["battery_margin": .null, "rules": .array([fallback])])),
            ("latency_ms a list", .object(["latency_ms": .array([.string("1")]), "rules": .array([fallback])])),
            ("latency_ms ms a string", .object(["latency_ms": .object(["16": .object(["1": .string("10")])]), "rules": .array([fallback])])),
            ("latency_ms ms true", .object(["latency_ms": .object(["16": .object(["1": .bool(true)])]), "rules": .array([fallback])])),
            ("latency_ms ms null", .object(["latency_ms": .object(["16": .object(["1": .null])]), "rules": .array([fallback])])),
            ("latency_ms flat (one length, ratio -> ms)", .object(["latency_ms": .object(["1": .number(10)]), "rules": .array([fallback])])),
            ("latency_ms row null", .object(["latency_ms": .object(["16": .null]), "rules": .array([fallback])])),
            ("latency_ms length \"016\" (Python would not find its row)",
             .object(["latency_ms": .object(["016": .object(["1": .number(10)])]), "rules": .array([fallback])])),
            ("latency_ms length \"+16\"", .object(["latency_ms": .object(["+16": .object(["1": .number(10)])]), "rules": .array([fallback])])),
            ("latency_ms length -16", .object(["latency_ms": .object(["-16": .object(["1": .number(10)])]), "rules": .array([fallback])])),
            ("latency_ms ratio key not a ratio", .object(["latency_ms": .object(["16": .object(["k1": .number(10)])]), "rules": .array([fallback])])),
            ("rules not a list", .object(["rules": .object([:])])),
            ("table not an object", .array([])),
            ("rule not an object", .object(["rules": .array([.string("default")])])),
            ("name missing", .object(["rules": .array([.object(["when": .object([:]), "ratio": .number(1), "threshold": .null])])])),
        ]
        for (what, table) in tables {
            do {
                _ = try Policy(json: table, ratios: [1], thresholds: thresholds)
                tally.record(what, ["accepted; expected PolicyError"])
            } catch is PolicyError {
                tally.record(what, [])
            } catch {
                tally.record(what, ["expected PolicyError, got \(error)"])
            }
        }
        // Typed tables, which no JSON writes: refused by the same check.
        let rules = [Rule(name: "default", ratio: 1, threshold: nil)]
        let typed: [(String, [Int: [Int: Double]])] = [
            ("typed latency empty", [:]), ("typed length 0", [0: [1: 1]]), ("typed ms NaN", [16: [1: .nan]]),
            ("typed ms infinite", [16: [1: .infinity]]), ("typed ms negative", [16: [1: -1]]),
        ]
        for (what, latency) in typed {
            do {
                _ = try Policy(table: PolicyTable(rules: rules, latencyMs: latency), ratios: [1], thresholds: thresholds)
                tally.record(what, ["accepted; expected PolicyError"])
            } catch is PolicyError {
                tally.record(what, [])
            } catch {
                tally.record(what, ["expected PolicyError, got \(error)"])
            }
        }
        // What Python accepts the port accepts too: 4.0 for 4, a missing "when", extra latency ratios.
        let loose: JSONValue = .object([
            "latency_ms": .object(["16": .object(["1": .number(10), "2": .number(5), "16": .number(1)])]),
            "rules": .array([.object(["name": .string("default"), "ratio": .number(2.0), "threshold": .string("drop_1")])]),
        ])
        do {
            let policy = try Policy(json: loose, ratios: [1, 2], thresholds: thresholds)
            let decision = try policy.decide(DeviceState(battery: 1, budgetMs: 1))
            tally.record("4.0 for 4, no when, extra latency keys dropped",
                         policy.table.latencyMs == [16: [1: 10, 2: 5]] && decision.ratio == 2 && !decision.budgetApplied ? [] : ["got \(decision)"])
        } catch {
            tally.record("4.0 for 4, no when, extra latency keys dropped", ["refused: \(error)"])
        }
        tally.summary()
    }

    func testBudgetEdges() throws {
        let tally = Tally("policy.budget")
        let table = PolicyTable(rules: [Rule(name: "default", ratio: 1, threshold: nil)],
                                latencyMs: [256: [1: 40, 2: 34, 4: 30, 8: 27.5]])
        let policy = try Policy(table: table, ratios: [1, 2, 4, 8], thresholds: thresholds)
        let infinite = try policy.decide(DeviceState(battery: 1, budgetMs: .infinity))
        tally.record("an infinite budget fits k = 1 (Python accepts inf)", infinite.ratio == 1 ? [] : ["got \(infinite.ratio)"])
        let tight = try policy.decide(DeviceState(battery: 1, budgetMs: 27.5))
        tally.record("a budget equal to k = 8's latency fits", tight.ratio == 8 && tight.budgetApplied ? [] : ["got \(tight)"])
        let noLatency = try Policy(table: PolicyTable(rules: table.rules), ratios: [1, 2], thresholds: thresholds)
        let ignored = try noLatency.decide(DeviceState(battery: 1, budgetMs: 1), length: 16)
        tally.record("no latency table: the budget and the length are ignored",
                     ignored.ratio == 1 && !ignored.budgetApplied && !ignored.lengthApplied ? [] : ["got \(ignored)"])
        tally.record("-inf budget is refused", (try? DeviceState(battery: 1, budgetMs: -.infinity)) == nil ? [] : ["accepted"])
        tally.summary()
    }

    /// policy.py's test_a_length_aware_table_uses_a_ratio_only_where_it_is_faster_than_k1, and the
    /// flags: lengthApplied when the length lowered the rule's ratio, budgetApplied when the budget
    /// then raised it (the two together), neither when the rule's ratio is the fastest there.
    func testALengthAwareTableUsesARatioOnlyWhereItIsFaster() throws {
        let tally = Tally("policy.length")
        let rules = [Rule(name: "critical", when: Conditions(thermalAtLeast: .critical), ratio: 4, threshold: "drop_2"),
                     Rule(name: "battery_low", when: Conditions(batteryBelow: 0.2, charging: false), ratio: 4, threshold: "drop_2"),
                     Rule(name: "default", ratio: 1, threshold: "drop_1")]
        let latency: [Int: [Int: Double]] = [16: [1: 2.0, 2: 2.5, 4: 2.7, 8: 3.0],
                                             64: [1: 9.0, 2: 7.0, 4: 7.5, 8: 6.0],
                                             256: [1: 40.0, 2: 34.0, 4: 30.0, 8: 27.0]]
        let policy = try Policy(table: PolicyTable(rules: rules, latencyMs: latency), ratios: [1, 2, 4], thresholds: thresholds)
        tally.record("a profile of a bigger bundle: k = 8 is dropped from every row",
                     policy.table.latencyMs?.values.allSatisfy { Set($0.keys) == [1, 2, 4] } == true ? [] : ["got \(String(describing: policy.table.latencyMs))"])
        let low = try DeviceState(battery: 0.1)
        let short = try policy.decide(low, length: 16)
        tally.record("16 tokens: k = 4 wanted, k = 1 fastest, lengthApplied",
                     short.ratio == 1 && short.lengthApplied && !short.budgetApplied && short.rule == "battery_low"
                        && short.thresholdName == "drop_2" ? [] : ["got \(short)"])
        let long = try policy.decide(low, length: 256)
        tally.record("256 tokens: k = 4 is the fastest, not lengthApplied",
                     long.ratio == 4 && !long.lengthApplied && !long.budgetApplied ? [] : ["got \(long)"])
        let unknown = try policy.decide(low)
        tally.record("no length: the longest row", unknown.ratio == 4 && !unknown.lengthApplied ? [] : ["got \(unknown)"])
        let normal = try policy.decide(DeviceState(battery: 1), length: 16)
        tally.record("k = 1 asked: never lengthApplied", normal.ratio == 1 && !normal.lengthApplied ? [] : ["got \(normal)"])
        for bad in [0, -16] {
            let before = policy.activeRule
            do {
                let decision = try policy.decide(DeviceState(battery: 1, thermal: .critical), length: bad)
                tally.record("length \(bad) is refused", ["got \(decision)"])
            } catch let error as DeviceStateError {
                tally.record("length \(bad) is refused", error == .length(bad) && policy.activeRule == before
                                ? [] : ["got \(error), active rule \(policy.activeRule ?? "none")"])
            }
        }

        // With k = 8 in the bundle: at 64 tokens k = 4 is lowered to k = 2 (7.0 ms), then a 6.5 ms
        // budget raises it past k = 4 (7.5) to k = 8 (6.0): both flags.
        let wide = try Policy(table: PolicyTable(rules: rules, latencyMs: latency), ratios: [1, 2, 4, 8], thresholds: thresholds)
        let both = try wide.decide(DeviceState(battery: 0.1, budgetMs: 6.5), length: 64)
        tally.record("lowered to k = 2, then raised by the budget to k = 8",
                     both.ratio == 8 && both.lengthApplied && both.budgetApplied ? [] : ["got \(both)"])
        let none = try wide.decide(DeviceState(battery: 0.1, budgetMs: 1), length: 16)
        tally.record("nothing fits at 16 tokens: the fastest of k >= 1, not budgetApplied",
                     none.ratio == 1 && none.lengthApplied && !none.budgetApplied ? [] : ["got \(none)"])
        let fits = try wide.decide(DeviceState(battery: 0.1, budgetMs: 100), length: 64)
        tally.record("a budget the lowered ratio fits leaves it",
                     fits.ratio == 2 && fits.lengthApplied && !fits.budgetApplied ? [] : ["got \(fits)"])

        // A tie goes to the less compressed ratio, and counts as lowered.
        let tie = PolicyTable(rules: [Rule(name: "default", ratio: 2, threshold: nil)], latencyMs: [16: [1: 2, 2: 2]])
        let tied = try decide(tie, thresholds: [:], state: DeviceState(battery: 1), length: 9)
        tally.record("a tie at 16 tokens goes to k = 1 (9 tokens read the 16 row)",
                     tied.ratio == 1 && tied.lengthApplied ? [] : ["got \(tied)"])

        // The nested table reads back from its JSON as it was.
        let table = PolicyTable(rules: rules, latencyMs: latency)
        let reread = try? checkPolicy(table.json, ratios: [1, 2, 4, 8], thresholds: thresholds)
        tally.record("the table's JSON ({\"16\": {\"1\": 2, ...}, ...}) reads back equal",
                     reread == table && table.json["latency_ms"]?["64"]?["8"] == .number(6) ? [] : ["got \(table.json)"])
        tally.summary(expected: 12)
    }

    func testResetForgetsTheActiveRule() throws {
        let tally = Tally("policy.reset")
        let table = PolicyTable(rules: [Rule(name: "battery_low", when: Conditions(batteryBelow: 0.2, charging: false), ratio: 4, threshold: "drop_2"),
                                        Rule(name: "battery_half", when: Conditions(batteryBelow: 0.5, charging: false), ratio: 2, threshold: "drop_1"),
                                        Rule(name: "default", ratio: 1, threshold: "drop_1")])
        let policy = try Policy(table: table, ratios: [1, 2, 4, 8], thresholds: thresholds)
        _ = try policy.decide(DeviceState(battery: 0.19))
        let held = try policy.decide(DeviceState(battery: 0.22))
        policy.reset()
        let fresh = try policy.decide(DeviceState(battery: 0.22))
        tally.record("hysteresis holds, reset drops it",
                     held.rule == "battery_low" && fresh.rule == "battery_half" ? [] : ["got \(held.rule), \(fresh.rule)"])
        tally.summary()
    }

    /// The port has no table of its own: a bundle's policy is the table its manifest holds (here the
    /// shared vector bundle's, which export wrote for ratios 1 and 2: every level asks for at most
    /// k = 2), or a calibrated one passed in; a manifest without one is refused when read.
    func testThePolicyIsTheManifestsTable() throws {
        let tally = Tally("policy.manifest_table")
        let url = try repoRoot().appendingPathComponent("tests/vectors/bundle/manifest.json")
        let manifest = try Manifest.load(url)
        let policy = try Policy(manifest: manifest)
        let ratios = policy.table.rules.map(\.ratio)
        tally.record("ratios [1, 2]: the manifest's rules as written", ratios == [2, 2, 2, 2, 2, 2, 1] && policy.table == manifest.policyTable
                        ? [] : ["got \(ratios)"])
        let calibrated = PolicyTable(rules: [Rule(name: "default", ratio: 2, threshold: nil)], latencyMs: [16: [1: 23, 2: 5]])
        let decision = try Policy(manifest: manifest, table: calibrated).decide(try DeviceState(battery: 1))
        tally.record("a table passed in replaces the manifest's", decision.ratio == 2 && decision.rule == "default" && decision.threshold == nil
                        ? [] : ["got \(decision)"])
        let unusable = PolicyTable(rules: [Rule(name: "default", ratio: 8, threshold: nil)])
        tally.record("a table passed in is checked against the bundle", (try? Policy(manifest: manifest, table: unusable)) == nil ? [] : ["accepted"])
        var raw = try XCTUnwrap(loadJSON(url).objectValue)
        raw.removeValue(forKey: "policy")
        do {
            _ = try Manifest(data: JSONEncoder().encode(JSONValue.object(raw)))
            tally.record("a manifest without a policy table is refused", ["accepted"])
        } catch {
            tally.record("a manifest without a policy table is refused", error is ManifestError && "\(error)".contains("policy") ? [] : ["got \(error)"])
        }
        tally.summary(expected: 4)
    }
}
