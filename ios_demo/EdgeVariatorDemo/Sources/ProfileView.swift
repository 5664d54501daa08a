import EdgeVariatorPolicy
import SwiftUI
import UniformTypeIdentifiers

/// Time every method of the open bundle on this phone (warm-up, repeats, median and p90 at each
/// length), write the profile JSON (version 2, profiles/<runtime>/<device>.json) that
/// `edge-variator calibrate` and `edge-variator profile BUNDLE --import` read, and share it.
struct ProfileView: View {
    @EnvironmentObject private var model: DemoModel
    @State private var lengths: Set<Int> = [16, 64, 128]
    @State private var warmup = 3
    @State private var repeats = 20

    private var allowedLengths: [Int] {
        guard let limits = model.bundle?.manifest.model else { return [] }
        return [16, 32, 64, 128, 256, 512].filter { $0 >= limits.minLength && $0 <= limits.maxLength && $0 % limits.padMultiple == 0 }
    }

    var body: some View {
        NavigationStack {
            Form {
                Section {
                    ForEach(allowedLengths, id: \.self) { length in
                        Toggle("\(length) tokens", isOn: Binding(
                            get: { lengths.contains(length) },
                            set: { on in if on { lengths.insert(length) } else { lengths.remove(length) } }))
                    }
                    Stepper("Warm-up: \(warmup)", value: $warmup, in: 0...20)
                    Stepper("Repeats: \(repeats)", value: $repeats, in: 1...200)
                } header: {
                    Text("What to time")
                } footer: {
                    Text("Every method (embed, each layer at each ratio, each exit) at each length, called in turn "
                         + "within each repeat, as edge-variator profile does on a host. Keep the phone still and cool.")
                }
                Section {
                    Button {
                        let chosen = lengths.filter(allowedLengths.contains).sorted()
                        Task { await model.profile(lengths: chosen, warmup: warmup, repeats: repeats) }
                    } label: {
                        Label("Profile with \(model.runtime.rawValue)", systemImage: "stopwatch")
                    }
                    .disabled(model.busy || model.bundle == nil || lengths.filter(allowedLengths.contains).isEmpty)
                    if let progress = model.profileProgress {
                        ProgressView(value: progress)
                    }
                }
                if !model.profileSummary.isEmpty {
                    Section("Every layer, median (longest length)") {
                        ForEach(model.profileSummary, id: \.ratio) { row in
                            LabeledContent("k = \(row.ratio)", value: String(format: "%.2f ms", row.ms))
                        }
                    }
                }
                if let file = model.profileFile {
                    Section {
                        ShareLink(item: file) { Label("Share \(file.lastPathComponent)", systemImage: "square.and.arrow.up") }
                    } footer: {
                        Text("Also in the Files app (On My iPhone > Edge Variator), in the bundle's profiles/"
                             + "\(model.runtime.program.rawValue)/ (or bundle-profiles/ for a bundle inside the app). On the host, "
                             + "copy it into the bundle's profiles/\(model.runtime.program.rawValue)/ and run edge-variator calibrate "
                             + "BUNDLE --profile \(file.lastPathComponent) --runtime \(model.runtime.program.rawValue) --budget ...; "
                             + "the .policy.json it writes beside it is the table this app then uses.")
                    }
                }
                if let message = model.message {
                    Section { Text(message).font(.footnote).foregroundStyle(.secondary) }
                }
            }
            .navigationTitle("Profile")
        }
    }
}

/// The bundles found (Documents and the app's own Bundle/ folder), the runtime, and an import.
struct BundlesView: View {
    @EnvironmentObject private var model: DemoModel
    @State private var importing = false

    var body: some View {
        NavigationStack {
            List {
                Section {
                    ForEach(model.bundleFolders, id: \.self) { folder in
                        Button {
                            Task { await model.open(folder) }
                        } label: {
                            HStack {
                                Text(folder.lastPathComponent)
                                Spacer()
                                if model.bundle?.folder == folder { Image(systemName: "checkmark") }
                            }
                        }
                    }
                } header: {
                    Text("Bundles")
                } footer: {
                    Text("Copy a bundle folder (manifest.json, model.pte, tokenizer/) into this app's folder with the "
                         + "Files app or Finder, or import one here.")
                }
                Section("Runtime") {
                    ForEach(Runtime.allCases) { runtime in
                        Button {
                            if let folder = model.bundle?.folder { Task { await model.open(folder, runtime: runtime) } }
                        } label: {
                            HStack {
                                Text(runtime.rawValue)
                                Spacer()
                                if model.runtime == runtime { Image(systemName: "checkmark") }
                            }
                        }
                        .disabled(runtime == .coreml && model.bundle?.manifest.files.coreml == nil)
                    }
                }
                Section {
                    Button("Import a bundle folder...") { importing = true }
                    Button("Look again") { model.scan() }
                }
                if let message = model.message {
                    Section { Text(message).font(.footnote).foregroundStyle(.secondary) }
                }
            }
            .navigationTitle("Bundles")
            .fileImporter(isPresented: $importing, allowedContentTypes: [.folder]) { result in
                if case .success(let folder) = result { Task { await model.importBundle(from: folder) } }
            }
        }
    }
}
