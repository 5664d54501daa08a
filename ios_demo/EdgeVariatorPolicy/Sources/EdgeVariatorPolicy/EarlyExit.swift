import Foundation

// Exits and the early-exit loop, ported from edge_variator/exits.py (`uncertainty`) and
// edge_variator/runtime/runner.py (`Runner.run`): embed, then the layer methods of the chosen
// ratio; after each layer that has an exit, ask it, and stop at the first exit whose uncertainty
// is below the threshold (nil: never early) or at the last layer.

/// How an exit's confidence is measured: lower is more confident.
public enum Criterion: String, Codable, CaseIterable, Sendable {
    case entropy  // softmax entropy, in nats
    case maxProb = "max_prob"  // 1 - the largest probability
}

public enum ExitError: Error, Equatable, CustomStringConvertible, LocalizedError {
    case emptyLogits(exit: Int)
    case noLastExit(layers: Int, exitsAfter: [Int])

    public var description: String {
        switch self {
        case .emptyLogits(let exit): return "exit \(exit) gave no logits"
        case .noLastExit(let layers, let after):
            return "no exit after the last layer (\(layers - 1)); exits after \(after.sorted()): a run could end without an answer"
        }
    }

    public var errorDescription: String? { description }
}

/// log-softmax in Double: max-shifted, so that ±1000 logits stay finite.
public func logSoftmax(_ logits: [Double]) -> [Double] {
    guard let largest = logits.max() else { return [] }
    let shifted = logits.map { $0 - largest }
    let logSum = log(shifted.reduce(0.0) { $0 + exp($1) })
    return shifted.map { $0 - logSum }
}

public func softmax(_ logits: [Double]) -> [Double] { logSoftmax(logits).map(exp) }

/// The uncertainty of one exit's logits; NaN for no logits (never below a threshold).
public func uncertainty(_ logits: [Double], criterion: Criterion) -> Double {
    let logProbs = logSoftmax(logits)
    if logProbs.isEmpty { return .nan }
    switch criterion {
    case .entropy:
        return -logProbs.reduce(0.0) { $0 + exp($1) * $1 }
    case .maxProb:
        return 1 - exp(logProbs.max()!)
    }
}

public func uncertainty(_ logits: [Float], criterion: Criterion) -> Double {
    uncertainty(logits.map(Double.init), criterion: criterion)
}

/// The index of the largest logit; the first one on a tie (as torch.argmax).
public func argmax(_ values: [Double]) -> Int {
    var best = 0
    for index in values.indices where values[index] > values[best] { best = index }
    return best
}

public struct ExitResult: Equatable, Sendable {
    public let label: Int
    public let probabilities: [Double]
    public let exitLayer: Int  // 1-based: how many layers ran
    public let layers: Int  // how many the model has
    public let uncertainty: Double
    public let logits: [Double]
}

/// The early-exit loop over a hidden state of any type (an ExecuTorch tensor, an MLMultiArray,
/// or nothing in a test). `layer(index, method, hidden)` runs one layer method; `exitLogits(index,
/// hidden)` runs exit `index` after it. Layers without an exit are not asked.
public func earlyExit<Hidden>(
    layerMethods: [String], exitsAfter: [Int], threshold: Double?, criterion: Criterion, start: Hidden,
    layer: (_ index: Int, _ method: String, _ hidden: Hidden) throws -> Hidden,
    exitLogits: (_ index: Int, _ hidden: Hidden) throws -> [Double]
) throws -> ExitResult {
    let exits = Set(exitsAfter)
    let last = layerMethods.count - 1
    guard last >= 0, exits.contains(last) else { throw ExitError.noLastExit(layers: layerMethods.count, exitsAfter: exitsAfter) }
    var hidden = start
    for (index, method) in layerMethods.enumerated() {
        hidden = try layer(index, method, hidden)
        guard exits.contains(index) else { continue }
        let logits = try exitLogits(index, hidden)
        if logits.isEmpty { throw ExitError.emptyLogits(exit: index) }
        let score = uncertainty(logits, criterion: criterion)
        if let threshold, score < threshold {
            return ExitResult(label: argmax(logits), probabilities: softmax(logits), exitLayer: index + 1,
                              layers: layerMethods.count, uncertainty: score, logits: logits)
        }
        if index == last {
            return ExitResult(label: argmax(logits), probabilities: softmax(logits), exitLayer: index + 1,
                              layers: layerMethods.count, uncertainty: score, logits: logits)
        }
    }
    throw ExitError.noLastExit(layers: layerMethods.count, exitsAfter: exitsAfter)  // unreachable
}

/// The loop without a model: `layers` layers, `exitLogits(index)` the logits of the exit after
/// layer `index` (0-based). What the vectors in tests/vectors/exits.json describe.
public func earlyExit(layers: Int, exitsAfter: [Int], threshold: Double?, criterion: Criterion,
                      exitLogits: (_ index: Int) throws -> [Double]) throws -> ExitResult {
    try earlyExit(layerMethods: (0..<max(layers, 0)).map { "layer_\($0)" }, exitsAfter: exitsAfter,
                  threshold: threshold, criterion: criterion, start: (),
                  layer: { _, _, _ in () }, exitLogits: { index, _ in try exitLogits(index) })
}
