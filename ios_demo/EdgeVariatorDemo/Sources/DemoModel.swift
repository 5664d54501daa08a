import Combine
import EdgeVariatorPolicy
import Foundation
import UIKit

enum Runtime: String, CaseIterable, Identifiable {
    case executorch = "ExecuTorch"
    case coreml = "Core ML"

    var id: String { rawValue }
}

/// The app's state: the bundles found, the one open (manifest, tokenizer, policy, backend), and
/// the runs. Inference runs on one serial queue, off the main thread; the policy decides on the
/// main actor, where its memory of the active rule (hysteresis) lives.
@MainActor
final class DemoModel: ObservableObject {
    @Published private(set) var bundleFolders: [URL] = []
    @Published private(set) var bundle: LoadedBundle?
    @Published private(set) var policy: Policy?
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
            let bundle = try LoadedBundle(folder: folder)
            let policy = try Policy(manifest: bundle.manifest)  // null policy: the default table
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
            self.backend = backend
            self.runtime = runtime
            result = nil
            message = "\(bundle.name): \(bundle.manifest.model.layers) layers, ratios \(bundle.manifest.ratioValues), "
                + "\(bundle.manifest.policy == nil ? "default policy" : "the bundle's policy")"
        } catch {
            message = "\(folder.lastPathComponent): \(error.localizedDescription)"
        }
    }

    /// What the policy would decide now, without taking the decision (no hysteresis update).
    func preview() -> Result<Decision, Error> {
        guard let policy else { return .failure(DemoError.noBundle) }
        return Result {
            let state = try device.state(budgetMs: budgetMs)
            return decide(policy.table, thresholds: policy.thresholds, state: state, activeRule: policy.activeRule)
        }
    }

    func classify(_ text: String) async {
        guard let bundle, let policy, let backend, !busy else { return }
        busy = true
        defer { busy = false }
        do {
            device.refresh()
            let decision = policy.decide(try device.state(budgetMs: budgetMs))
            result = try await offMain { try EdgeVariatorPolicy.classify(text, decision: decision, bundle: bundle, backend: backend) }
            message = nil
        } catch {
            message = error.localizedDescription
        }
    }

    /// Time every method at these lengths and write the profile JSON into Documents/profiles/.
    func profile(lengths: [Int], warmup: Int, repeats: Int) async {
        guard let bundle, let backend, !busy else { return }
        busy = true
        profileProgress = 0
        defer { busy = false; profileProgress = nil }
        let device = deviceDescription(systemVersion: UIDevice.current.systemVersion)
        do {
            let profile = try await offMain {
                try profileBundle(bundle, backend: backend, lengths: lengths, warmup: warmup, repeats: repeats, device: device,
                                  progress: { fraction in Task { @MainActor in self.profileProgress = fraction } })
            }
            let folder = Self.documents.appendingPathComponent("profiles")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "-")
            let file = folder.appendingPathComponent("profile-\(bundle.folder.lastPathComponent)-\(runtime == .coreml ? "coreml" : "executorch")-\(stamp).json")
            try profile.jsonData().write(to: file, options: .atomic)
            profileFile = file
            let longest = lengths.max() ?? 0
            profileSummary = try bundle.manifest.ratioValues.map { k in
                (k, try profile.depthLatency(manifest: bundle.manifest, ratio: k, length: longest).last ?? 0)
            }
            message = "profile written: Documents/profiles/\(file.lastPathComponent)"
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
