import Foundation

// The app's side of edge_variator/runtime/runner.py and profile.measure, over any MethodBackend.

/// How an app calls a bundle's methods (embed, layer_{i}_k{k}, exit_{i}): ExecuTorch's Module or
/// Core ML's functions in the app, a stand-in in the tests. `classify` and `profileBundle` run the
/// same loop over any of them.
public protocol MethodBackend: AnyObject {
    associatedtype Hidden
    associatedtype Mask

    /// Which of the bundle's programs it runs (a latency profile's "runtime"); its timings are that
    /// program's, files.<runtime>.sha256 their profile's program_sha256.
    var runtime: ProgramRuntime { get }
    /// What runs it, in words (a latency profile's "runtime_version").
    var runtimeVersion: String { get }

    func load(_ methods: [String]) throws
    func mask(_ values: [Int]) throws -> Mask
    func embed(_ ids: [Int]) throws -> Hidden
    func layer(_ method: String, _ hidden: Hidden, _ mask: Mask) throws -> Hidden
    func exitLogits(_ method: String, _ hidden: Hidden, _ mask: Mask) throws -> [Double]
    /// Standard normal hidden states (what profile.method_inputs feeds the layers and exits).
    func randomHidden(length: Int, width: Int) throws -> Hidden
}


/// A bundle folder as the app found it: manifest, tokenizer, and where it lies. Opening it checks
/// the manifest and every file its checksums list (Manifest.load(bundle:)).
public struct LoadedBundle {
    public let folder: URL
    public let manifest: Manifest
    public let tokenizer: any Tokenizer

    public init(folder: URL) throws {
        self.folder = folder
        manifest = try Manifest.load(bundle: folder)
        tokenizer = try loadTokenizer(directory: folder.appendingPathComponent("tokenizer"), kind: manifest.model.tokenizerKind)
    }

    public var name: String { "\(manifest.backbone.id) (\(folder.lastPathComponent))" }

    /// The text tokenized and padded as the bundle runs it (at most model.max_length tokens): its
    /// `length` is the padded length the policy decides at. Refuses an empty text (TextError).
    public func encode(_ text: String) throws -> Encoding {
        try tokenizer.encode(text, maxLength: manifest.model.maxLength)
    }
}

/// One text classified, with what the policy decided and what each step cost.
public struct Classification {
    public let label: String
    public let probabilities: [Double]
    public let exitLayer: Int  // 1-based: how many layers ran
    public let layers: Int
    public let decision: Decision
    public let uncertainty: Double
    public let tokens: Int  // the padded length it ran at
    public let truncated: Bool
    public let steps: [(method: String, ms: Double)]  // in call order

    public var totalMs: Double { steps.reduce(0) { $0 + $1.ms } }
}

/// A monotonic clock in seconds (the host's perf_counter on the Python side).
public func monotonicSeconds() -> Double {
    Double(DispatchTime.now().uptimeNanoseconds) / 1e9
}

/// Runner.run(text, state): tokenize, then the policy's decision for `state` at the text's padded
/// length, then the loop. An empty text or a refused state leaves the policy's active rule as it was.
public func classify<B: MethodBackend>(_ text: String, state: DeviceState, policy: Policy, bundle: LoadedBundle,
                                       backend: B) throws -> Classification {
    let encoding = try bundle.encode(text)
    let decision = try policy.decide(state, length: encoding.length)
    return try classify(encoding, decision: decision, bundle: bundle, backend: backend)
}

/// Runner.run(text, decision=...): a decision given outright, whatever the text's length.
public func classify<B: MethodBackend>(_ text: String, decision: Decision, bundle: LoadedBundle, backend: B) throws -> Classification {
    try classify(bundle.encode(text), decision: decision, bundle: bundle, backend: backend)
}

/// The runner's loop (edge_variator/runtime/runner.py) over a text tokenized by `bundle.encode`:
/// embed, then the layers of the decided ratio, asking each exit on the way and stopping at the
/// first confident one. An app that decides elsewhere (on the main actor) tokenizes first, decides
/// at `encoding.length`, then runs this.
public func classify<B: MethodBackend>(_ encoding: Encoding, decision: Decision, bundle: LoadedBundle,
                                       backend: B) throws -> Classification {
    let manifest = bundle.manifest
    var steps: [(method: String, ms: Double)] = []
    func timed<T>(_ method: String, _ body: () throws -> T) rethrows -> T {
        let start = monotonicSeconds()
        let value = try body()
        steps.append((method, 1000 * (monotonicSeconds() - start)))
        return value
    }
    let mask = try backend.mask(encoding.attentionMask)
    let hidden = try timed("embed") { try backend.embed(encoding.inputIds) }
    let result = try earlyExit(
        layerMethods: manifest.layerMethods(ratio: decision.ratio), exitsAfter: manifest.exits.afterLayers,
        threshold: decision.threshold, criterion: manifest.exits.criterion, start: hidden,
        layer: { _, method, hidden in try timed(method) { try backend.layer(method, hidden, mask) } },
        exitLogits: { index, hidden in
            let method = "exit_\(index)"
            return try timed(method) { try backend.exitLogits(method, hidden, mask) }
        })
    return Classification(label: manifest.model.labels[result.label], probabilities: result.probabilities,
                          exitLayer: result.exitLayer, layers: result.layers, decision: decision,
                          uncertainty: result.uncertainty, tokens: encoding.length, truncated: encoding.truncated,
                          steps: steps)
}

/// Time every method of the bundle at each length (profile.measure's loop and inputs: token ids
/// of 1000, a mask of ones, standard normal hidden states) and return the profile to export
/// (version 2: the backend's runtime, and that program's files.<runtime>.sha256), checked as
/// check_profile checks it.
public func profileBundle<B: MethodBackend>(_ bundle: LoadedBundle, backend: B, lengths: [Int], warmup: Int, repeats: Int,
                               device: String, clock: () -> Double = monotonicSeconds,
                               progress: (Double) -> Void = { _ in }) throws -> LatencyProfile {
    let manifest = bundle.manifest
    guard let program = manifest.program(backend.runtime) else {
        throw ProfileError.mismatch("the bundle has no \(backend.runtime.rawValue) program")
    }
    let methods = manifest.methodNames
    try backend.load(methods)
    let timings = try measureMethods(
        methods: methods, lengths: lengths, warmup: warmup, repeats: repeats,
        limits: (manifest.model.padMultiple, manifest.model.minLength, manifest.model.maxLength),
        now: clock,
        prepare: { method, length in
            if method == "embed" {
                let ids = Array(repeating: 1000, count: length)
                return { _ = try backend.embed(ids) }
            }
            let hidden = try backend.randomHidden(length: length, width: manifest.model.hidden)
            let mask = try backend.mask(Array(repeating: 1, count: length))
            if method.hasPrefix("exit_") {
                return { _ = try backend.exitLogits(method, hidden, mask) }
            }
            return { _ = try backend.layer(method, hidden, mask) }
        },
        progress: { done, total in progress(Double(done) / Double(total)) })
    let profile = LatencyProfile(runtime: backend.runtime, runtimeVersion: backend.runtimeVersion, device: device,
                                 programSha256: program.sha256, warmup: warmup, repeats: repeats, methods: timings)
    try profile.check(against: manifest, runtime: backend.runtime)
    return profile
}
