import Combine
import EdgeVariatorPolicy
import Foundation
import UIKit

enum Runtime: String, CaseIterable, Identifiable {
    case executorch = "ExecuTorch"
    case coreml = "Core ML"

    var id: String { rawValue }

    /// The bundle's program it runs: what profiles/<runtime>/ is named by.
    var program: ProgramRuntime {
        switch self {
        case .executorch: return .executorch
        case .coreml: return .coreml
        }
    }
}

/// The app's state: the bundles found, the one open (manifest, tokenizer, policy, backend), and
/// the runs. Inference runs on one serial queue, off the main thread; the policy decides on the
/// main actor, where its memory of the active rule (hysteresis) lives, once the text is tokenized
/// (a calibrated policy follows the text's padded length).
@MainActor
final class DemoModel: ObservableObject {
    @Published private(set) var bundleFolders: [URL] = []
    @Published private(set) var bundle: LoadedBundle?
    @Published private(set) var policy: Policy?
    @Published private(set) var policySource: String?  // whose table the policy is
    @Published private(set) var runtime: Runtime = .executorch
    @Published var budgetMs: Double?
    @Published private(set) var busy = false
    @Published private(set) var message: String?
    @Published private(set) var result: Classification?
    @Published private(set) var profileProgress: Double?
    @Published private(set) var profileFile: URL?
    @Published private(set) var profileSummary: [(ratio: Int, ms: Double)] = []

    let device = DeviceMonitor()
    private var backend: (any MethodBackend)?
    private let queue = DispatchQueue(label: "edge-variator.inference", qos: .userInitiated)

    static var documents: URL { FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0] }

    /// Bundles in Documents (each in its own folder, or one laid straight in Documents) and the
    /// one shipped in the app's Bundle/ folder, if any.
    func scan() {
        var found: [URL] = []
        let documents = Self.documents
        let isBundle = { (url: URL) in FileManager.default.fileExists(atPath: url.appendingPathComponent("manifest.json").path) }
        if isBundle(documents) { found.append(documents) }
        let entries = (try? FileManager.default.contentsOfDirectory(at: documents, includingPropertiesForKeys: nil)) ?? []
        found += entries.filter(isBundle).sorted { $0.lastPathComponent < $1.lastPathComponent }
        if let shipped = Bundle.main.url(forResource: "Bundle", withExtension: nil), isBundle(shipped) { found.append(shipped) }
        bundleFolders = found
        if bundle == nil, let first = found.first { Task { await open(first) } }
        if found.isEmpty { message = DemoError.noBundle.localizedDescription }
    }

    /// Copy a bundle folder picked in the Files app into Documents, then open it.
    func importBundle(from picked: URL) async {
        let scoped = picked.startAccessingSecurityScopedResource()
        defer { if scoped { picked.stopAccessingSecurityScopedResource() } }
        let target = Self.documents.appendingPathComponent(picked.lastPathComponent)
        do {
            if FileManager.default.fileExists(atPath: target.path) { try FileManager.default.removeItem(at: target) }
            try FileManager.default.copyItem(at: picked, to: target)
            scan()
            await open(target)
        } catch {
            message = "could not import \(picked.lastPathComponent): \(error.localizedDescription)"
        }
    }

    func open(_ folder: URL, runtime: Runtime? = nil) async {
        let runtime = runtime ?? self.runtime
        busy = true
        defer { busy = false }
        message = "opening \(folder.lastPathComponent) with \(runtime.rawValue)..."
        do {
            let bundle = try await offMain { try LoadedBundle(folder: folder) }  // hashes every file of the bundle
            let (policy, source) = try Self.policy(for: bundle, runtime: runtime.program, device: deviceName)
            let backend: any MethodBackend
            switch runtime {
            case .executorch:
                backend = try await offMain { try ExecuTorchBackend(bundle: folder, manifest: bundle.manifest) }
            case .coreml:
                guard #available(iOS 18.0, *) else { throw DemoError.noCoreML }
                backend = try await CoreMLBackend(bundle: folder, manifest: bundle.manifest)
            }
            self.bundle = bundle
            self.policy = policy
            policySource = source
            self.backend = backend
            self.runtime = runtime
            result = nil
            message = "\(bundle.name): \(bundle.manifest.model.layers) layers, ratios \(bundle.manifest.ratioValues), \(source)"
        } catch {
            message = "\(folder.lastPathComponent): \(error.localizedDescription)"
        }
    }

    /// "iPhone16,1 (iOS 18.2)": the device a profile says it was measured on, and the name of its
    /// files in profiles/<runtime>/ (deviceSlug).
    var deviceName: String { deviceDescription(systemVersion: UIDevice.current.systemVersion) }

    /// Where this phone's profiles of a bundle go, laid out as in the bundle (profiles/<runtime>/):
    /// the bundle's own folder when it can be written (Documents), else a folder of that name under
    /// Documents/bundle-profiles/ (a bundle shipped inside the app is read-only).
    static func profilesRoot(for bundle: LoadedBundle) -> URL {
        if FileManager.default.isWritableFile(atPath: bundle.folder.path) { return bundle.folder }
        return documents.appendingPathComponent("bundle-profiles").appendingPathComponent(bundle.folder.lastPathComponent)
    }

    /// The policy for this runtime on this phone: the table calibrated for them
    /// (profiles/<runtime>/<device>.policy.json, from `edge-variator calibrate`) when there is one and
    /// its runtime, program and table check out against the bundle; else the manifest's own table.
    static func policy(for bundle: LoadedBundle, runtime: ProgramRuntime, device: String) throws -> (Policy, String) {
        let file = calibratedPolicyURL(bundle: profilesRoot(for: bundle), runtime: runtime, device: device)
        guard FileManager.default.fileExists(atPath: file.path) else {
            return (try Policy(manifest: bundle.manifest), "the bundle's policy")
        }
        do {
            let table = try CalibratedPolicy.load(file, manifest: bundle.manifest, runtime: runtime)
            return (try Policy(manifest: bundle.manifest, table: table), "the policy calibrated for this phone (\(file.lastPathComponent))")
        } catch {
            return (try Policy(manifest: bundle.manifest),
                    "the bundle's policy (\(file.lastPathComponent) refused: \(error.localizedDescription))")
        }
    }

    /// What the policy would decide now for `text`, without taking the decision (no hysteresis
    /// update): at its padded length, or, while it is empty, at the longest profiled one.
    func preview(_ text: String) -> Result<Decision, Error> {
        guard let bundle, let policy else { return .failure(DemoError.noBundle) }
        return Result {
            let state = try device.state(budgetMs: budgetMs)
            let length = try? bundle.encode(text).length
            return try decide(policy.table, thresholds: policy.thresholds, state: state, activeRule: policy.activeRule,
                              length: length)
        }
    }

    func classify(_ text: String) async {
        guard let bundle, let policy, let backend, !busy else { return }
        busy = true
        defer { busy = false }
        do {
            device.refresh()
            let state = try device.state(budgetMs: budgetMs)
            let encoding = try await offMain { try bundle.encode(text) }
            let decision = try policy.decide(state, length: encoding.length)  // Runner.run: after tokenizing
            result = try await offMain { try EdgeVariatorPolicy.classify(encoding, decision: decision, bundle: bundle, backend: backend) }
            message = nil
        } catch {
            message = error.localizedDescription
        }
    }

    /// Time every method at these lengths and write the profile JSON where the bundle keeps its
    /// profiles: profiles/<runtime>/<device>.json (profilesRoot).
    func profile(lengths: [Int], warmup: Int, repeats: Int) async {
        guard let bundle, let backend, !busy else { return }
        busy = true
        profileProgress = 0
        defer { busy = false; profileProgress = nil }
        let device = deviceName
        do {
            let profile = try await offMain {
                try profileBundle(bundle, backend: backend, lengths: lengths, warmup: warmup, repeats: repeats, device: device,
                                  progress: { fraction in Task { @MainActor in self.profileProgress = fraction } })
            }
            let root = Self.profilesRoot(for: bundle)
            let file = profileURL(bundle: root, runtime: backend.runtime, device: device)
            try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            try profile.jsonData().write(to: file, options: .atomic)
            profileFile = file
            let longest = lengths.max() ?? 0
            profileSummary = try bundle.manifest.ratioValues.map { k in
                (k, try profile.depthLatency(manifest: bundle.manifest, ratio: k, length: longest).last ?? 0)
            }
            let shown = file.path.replacingOccurrences(of: Self.documents.path + "/", with: "Documents/")
            message = "profile written: \(shown)"
        } catch {
            message = "profiling failed: \(error.localizedDescription)"
        }
    }

    private func offMain<T>(_ work: @escaping () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work() }) }
        }
    }
}
