import Foundation
import XCTest
@testable import EdgeVariatorPolicy

/// tests/vectors/policy.json, every case, step, Android level, bad table and the default table.
final class PolicyVectorTests: XCTestCase {
    var vectors: JSONValue!
    var ratios: [Int] = []
    var thresholds: [String: Double] = [:]

    override func setUpWithError() throws {
        vectors = try loadJSON(repoRoot().appendingPathComponent("tests/vectors/policy.json"))
        ratios = try XCTUnwrap(vectors["ratios"]?.arrayValue).compactMap { $0.numberValue.map { Int($0) } }
        thresholds = try XCTUnwrap(vectors["thresholds"]?.objectValue).compactMapValues(\.numberValue)
        XCTAssertEqual(ratios.count, vectors["ratios"]?.arrayValue?.count, "policy.json ratios must be integers")
    }

    /// A step's state as the vectors write it; types Python refuses are DeviceStateErrors here too.
    func deviceState(_ json: JSONValue) throws -> DeviceState {
        guard let object = json.objectValue else { throw DeviceStateError.unknownThermal("state \(json)") }
        let known: Set<String> = ["battery", "charging", "low_power", "thermal", "budget_ms"]
        let unknown = Set(object.keys).subtracting(known)
        if !unknown.isEmpty { throw VectorFormatError("state has keys this test does not know: \(unknown.sorted())") }
        guard let battery = vectorNumber(object["battery"]) else { throw DeviceStateError.battery(.nan) }
        func flag(_ key: String) throws -> Bool {
            switch object[key] {
            case nil: return false
            case .bool(let value)?: return value
            default: throw DeviceStateError.unknownThermal("\(key) = \(object[key]!)")  // Python: not a bool
            }
        }
        let budget: Double?
        switch object["budget_ms"] {
        case nil, .null?: budget = nil
        case let value?:
            guard let number = vectorNumber(value) else { throw DeviceStateError.budget(.nan) }
            budget = number
        }
        let thermal = object["thermal"]?.stringValue ?? (object["thermal"] == nil ? "nominal" : "\(object["thermal"]!)")
        return try DeviceState(battery: battery, charging: flag("charging"), lowPower: flag("low_power"),
                               thermalName: thermal, budgetMs: budget)
    }

    func testEveryCaseAndStep() throws {
        let tally = Tally("policy.cases")
        let cases = try XCTUnwrap(vectors["cases"]?.arrayValue)
        let tables = try XCTUnwrap(vectors["tables"]?.objectValue)
        var steps = 0
        for (caseIndex, testCase) in cases.enumerated() {
            let name = testCase["name"]?.stringValue ?? "#\(caseIndex)"
            let caseSteps = testCase["steps"]?.arrayValue ?? []
            steps += caseSteps.count
            guard let tableName = testCase["table"]?.stringValue, let table = tables[tableName] else {
                tally.record("[\(caseIndex)] \"\(name)\"", ["names no table in tables"])
                continue
            }
            // A case may name its own bundle: "ratios" and "thresholds", else the top-level ones.
            let caseRatios = testCase["ratios"]?.arrayValue?.compactMap { $0.numberValue.map { Int($0) } } ?? ratios
            let caseThresholds = testCase["thresholds"]?.objectValue?.compactMapValues(\.numberValue) ?? thresholds
            let known: Set<String> = ["name", "table", "steps", "ratios", "thresholds"]
            if let keys = testCase.objectValue?.keys, !Set(keys).isSubset(of: known) {
                tally.record("[\(caseIndex)] \"\(name)\"", ["has keys this test does not know: \(Set(keys).subtracting(known).sorted())"])
                continue
            }
            let policy: Policy
            do {
                policy = try Policy(json: table, ratios: caseRatios, thresholds: caseThresholds)
            } catch {
                for index in caseSteps.indices {
                    tally.record("[\(caseIndex)] \"\(name)\" step \(index + 1)", ["table \(tableName) refused: \(error)"])
                }
                continue
            }
            for (index, step) in caseSteps.enumerated() {
                let what = "[\(caseIndex)] \"\(name)\" step \(index + 1)/\(caseSteps.count) (table \(tableName))"
                tally.record(what, check(step: step, policy: policy))
            }
        }
        tally.summary(expected: steps)
        print("vectors policy.cases: \(cases.count) cases, \(steps) steps")
        XCTAssertFalse(cases.isEmpty, "policy.json has no cases")
    }

    /// The problems of one step (none: it passed).
    func check(step: JSONValue, policy: Policy) -> [String] {
        guard let stateJSON = step["state"], let expect = step["expect"]?.objectValue else {
            return ["a step needs state and expect"]
        }
        let stepKeys: Set<String> = ["state", "length", "expect"]
        if let keys = step.objectValue?.keys, !Set(keys).isSubset(of: stepKeys) {
            return ["step has keys this test does not know: \(Set(keys).subtracting(stepKeys).sorted())"]
        }
        // The text's padded length, when the step gives one (nil: the policy does not know it).
        let length: Int?
        switch step["length"] {
        case nil: length = nil
        case .number(let value)? where value == value.rounded() && abs(value) < 1e9: length = Int(value)
        case let other?: return ["length must be an integer, not \(other)"]
        }
        let before = policy.activeRule
        if let error = expect["error"]?.stringValue {
            guard error == "DeviceStateError" else { return ["unknown expected error \(error)"] }
            do {
                let state = try deviceState(stateJSON)
                let decision = try policy.decide(state, length: length)
                return ["expected DeviceStateError, got ratio \(decision.ratio) by rule \(decision.rule)"]
            } catch is DeviceStateError {
                return policy.activeRule == before ? [] : ["the error changed the active rule from \(before ?? "none") to \(policy.activeRule ?? "none")"]
            } catch {
                return ["expected DeviceStateError, got \(type(of: error)): \(error)"]
            }
        }
        let known: Set<String> = ["ratio", "rule", "threshold_name", "threshold", "budget_applied", "length_applied"]
        let unknown = Set(expect.keys).subtracting(known)
        if !unknown.isEmpty { return ["expect has keys this test does not check: \(unknown.sorted())"] }
        let decision: Decision
        do {
            decision = try policy.decide(deviceState(stateJSON), length: length)
        } catch {
            return ["expected a decision, got \(type(of: error)): \(error)"]
        }
        var problems: [String] = []
        if let ratio = expect["ratio"]?.numberValue, Double(decision.ratio) != ratio {
            problems.append("ratio: expected \(Int(ratio)), got \(decision.ratio)")
        }
        if let rule = expect["rule"]?.stringValue, decision.rule != rule {
            problems.append("rule: expected \(rule), got \(decision.rule)")
        }
        if let name = expect["threshold_name"] {
            if name.stringValue != decision.thresholdName {
                problems.append("threshold_name: expected \(name), got \(decision.thresholdName ?? "null")")
            }
        }
        if let threshold = expect["threshold"] {
            if !close(threshold.numberValue, decision.threshold, 1e-9) || (threshold.isNull != (decision.threshold == nil)) {
                problems.append("threshold: expected \(threshold), got \(show(decision.threshold))")
            }
        }
        if let applied = expect["budget_applied"]?.boolValue, applied != decision.budgetApplied {
            problems.append("budget_applied: expected \(applied), got \(decision.budgetApplied)")
        }
        if let applied = expect["length_applied"]?.boolValue, applied != decision.lengthApplied {
            problems.append("length_applied: expected \(applied), got \(decision.lengthApplied)")
        }
        if policy.activeRule != decision.rule { problems.append("the active rule is not the decision's") }
        return problems
    }

    func testAndroidThermalMapping() throws {
        let tally = Tally("policy.android_thermal")
        let rows = try XCTUnwrap(vectors["android_thermal"]?.arrayValue)
        for row in rows {
            guard let status = row["status"]?.numberValue.map({ Int($0) }) else {
                tally.record("\(row)", ["no integer status"])
                continue
            }
            let what = "status \(status)"
            if let error = row["error"]?.stringValue {
                do {
                    let state = try ThermalState.fromAndroid(status)
                    tally.record(what, ["expected \(error), got \(state.rawValue)"])
                } catch let failure as DeviceStateError {
                    let named = failure.description.contains("\(status)")
                    tally.record(what, error == "DeviceStateError" && named ? [] : ["got \(failure)"])
                } catch {
                    tally.record(what, ["expected \(error), got \(error)"])
                }
            } else {
                let expected = row["thermal"]?.stringValue ?? "?"
                do {
                    let state = try ThermalState.fromAndroid(status)
                    tally.record("\(what) (\(ThermalState.androidNames[status]))",
                                 state.rawValue == expected ? [] : ["expected \(expected), got \(state.rawValue)"])
                } catch {
                    tally.record(what, ["expected \(expected), got \(error)"])
                }
            }
        }
        tally.summary(expected: rows.count)
    }

    func testBadTablesAreRefused() throws {
        let tally = Tally("policy.bad_tables")
        let bad = try XCTUnwrap(vectors["bad_tables"]?.arrayValue)
        for (index, entry) in bad.enumerated() {
            let name = entry["name"]?.stringValue ?? "#\(index)"
            let tableRatios = entry["ratios"]?.arrayValue?.compactMap { $0.numberValue.map { Int($0) } } ?? ratios
            let tableThresholds = entry["thresholds"]?.objectValue?.compactMapValues(\.numberValue) ?? thresholds
            guard let table = entry["table"] else {
                tally.record("[\(index)] \"\(name)\"", ["no table"])
                continue
            }
            do {
                _ = try Policy(json: table, ratios: tableRatios, thresholds: tableThresholds)
                tally.record("[\(index)] \"\(name)\"", ["accepted; expected PolicyError"])
            } catch let error as PolicyError {
                print("  refused: \(error)")
                tally.record("[\(index)] \"\(name)\"", error.description.isEmpty ? ["empty message"] : [])
            } catch {
                tally.record("[\(index)] \"\(name)\"", ["expected PolicyError, got \(type(of: error)): \(error)"])
            }
        }
        tally.summary(expected: bad.count)
        XCTAssertFalse(bad.isEmpty, "policy.json has no bad tables")
    }

    /// tables.full is what default_policy writes into a manifest at export (default_policy_of); the
    /// port has no default_policy of its own, so it checks that it reads that table and writes it
    /// back as the same JSON, key for key.
    func testTheExportedTableReadsAndWritesBack() throws {
        let tally = Tally("policy.default_policy_of")
        let spec = try XCTUnwrap(vectors["default_policy_of"])
        let specRatios = try XCTUnwrap(spec["ratios"]?.arrayValue).compactMap { $0.numberValue.map { Int($0) } }
        let specThresholds = try XCTUnwrap(spec["thresholds"]?.objectValue).compactMapValues(\.numberValue)
        let tableName = try XCTUnwrap(spec["table"]?.stringValue)
        let expected = try XCTUnwrap(vectors["tables"]?[tableName])
        var problems: [String] = []
        do {
            let table = try checkPolicy(expected, ratios: specRatios, thresholds: specThresholds)
            if table.json != expected { problems.append("JSON differs:\n  got      \(table.json)\n  expected \(expected)") }
            if table.rules.last?.name != "default" || table.rules.count != 7 { problems.append("rules \(table.rules.map(\.name))") }
        } catch {
            problems.append("refused: \(error)")
        }
        tally.record("tables.\(tableName) (default_policy of ratios \(specRatios), thresholds \(specThresholds.keys.sorted())) "
                     + "reads and writes back", problems)
        tally.summary(expected: 1)
    }
}

struct VectorFormatError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
