import Foundation
import XCTest
@testable import EdgeVariatorPolicy

/// The profile the app writes: the timing loop (with a fake clock) and the JSON format that
/// `edge-variator profile BUNDLE --import` reads.
final class ProfileTests: XCTestCase {
    func testMedianAndP90AsPython() {
        let tally = Tally("profile.stats")
        // statistics.median and sorted[min(n - 1, int(0.9 n))], worked out by hand.
        let cases: [([Double], Double, Double)] = [
            ([5], 5, 5),
            ([3, 1], 2, 3),
            ([4, 1, 3, 2], 2.5, 4),
            (Array(stride(from: 1.0, through: 20, by: 1)).reversed(), 10.5, 19),
            (Array(stride(from: 1.0, through: 10, by: 1)), 5.5, 10),
            (Array(stride(from: 1.0, through: 11, by: 1)), 6, 10),
        ]
        for (times, median, p90) in cases {
            let timing = Timing(times: times)
            tally.record("\(times.count) times: median \(median), p90 \(p90)",
                         timing.medianMs == median && timing.p90Ms == p90 ? [] : ["got \(timing)"])
        }
        tally.summary()
    }

    func testMeasureLoopAndFormat() throws {
        let tally = Tally("profile.format")
        var clock = 0.0
        var order: [String] = []
        let timings = try measureMethods(
            methods: ["embed", "layer_0_k1", "exit_0"], lengths: [16, 64], warmup: 2, repeats: 5,
            limits: (multiple: 8, min: 16, max: 128), now: { clock },
            prepare: { method, length in
                { order.append(method); clock += Double(length) * (method == "embed" ? 1 : 2) }  // whole seconds: exact
            })
        tally.record("methods called in turn within each repeat",
                     Array(order.prefix(4)) == ["embed", "layer_0_k1", "exit_0", "embed"] && order.count == 2 * 7 * 3 ? [] : ["order \(order.prefix(6))"])
        tally.record("timings per method and length", timings["embed"]?["64"]?.medianMs == 64_000 && timings["exit_0"]?["16"]?.p90Ms == 32_000
                        ? [] : ["got \(timings)"])
        let profile = LatencyProfile(runtime: .coreml, runtimeVersion: "Core ML (test)", device: "iPhone (test)",
                                     programSha256: String(repeating: "a", count: 64), warmup: 2, repeats: 5, methods: timings)
        let data = try profile.jsonData()
        let json = try JSONValue.parse(data)
        var problems: [String] = []
        for key in ["format", "version", "runtime", "runtime_version", "device", "program_sha256", "warmup", "repeats", "methods"]
            where json[key] == nil {
            problems.append("no \(key)")
        }
        if json["pte_sha256"] != nil { problems.append("pte_sha256 (version 1's) is written") }
        if json["format"] != .string("edge-variator-latency-profile") || json["version"] != .number(2) { problems.append("format/version") }
        if json["runtime"] != .string("coreml") || json["program_sha256"] != .string(String(repeating: "a", count: 64)) {
            problems.append("runtime/program_sha256")
        }
        if json["methods"]?["layer_0_k1"]?["16"]?["median_ms"]?.numberValue != 32_000 { problems.append("methods/layer_0_k1/16/median_ms") }
        if json["methods"]?["layer_0_k1"]?["16"]?["p90_ms"] == nil { problems.append("p90_ms") }
        tally.record("JSON keys as profile.py writes them", problems)
        let back = try LatencyProfile(data: data)
        tally.record("reads back", back == profile ? [] : ["differs"])
        do {
            try profile.check()
            tally.record("passes check", [])
        } catch {
            tally.record("passes check", ["\(error)"])
        }
        tally.summary()
    }

    func testBadLengthsAndCountsAreRefused() {
        let tally = Tally("profile.refusals")
        for (what, lengths, warmup, repeats) in [("length 20", [20], 1, 1), ("length 8", [8], 1, 1), ("length 256 > max", [256], 1, 1),
                                                  ("0 repeats", [16], 1, 0), ("-1 warmup", [16], -1, 1)] {
            do {
                _ = try measureMethods(methods: ["embed"], lengths: lengths, warmup: warmup, repeats: repeats,
                                       limits: (8, 16, 128), now: { 0 }, prepare: { _, _ in {} })
                tally.record(what, ["accepted"])
            } catch {
                tally.record(what, error is ProfileError ? [] : ["got \(error)"])
            }
        }
        tally.summary()
    }
}
