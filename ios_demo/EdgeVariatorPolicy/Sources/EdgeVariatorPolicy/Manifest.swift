import Foundation

/// A bundle's manifest.json (edge_variator/runtime/manifest.schema.json) cannot be used.
public enum ManifestError: Error, Equatable, CustomStringConvertible, LocalizedError {
    case unreadable(path: String, reason: String)
    case invalid(String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason): return "cannot read the manifest \(path): \(reason)"
        case .invalid(let problem): return "manifest.json: \(problem); export the bundle again"
        }
    }

    public var errorDescription: String? { description }
}

/// A bundle folder whose files are not the ones exported (bundle.py: check_files).
public enum BundleError: Error, Equatable, CustomStringConvertible, LocalizedError {
    case notABundle(folder: String)
    case missing(path: String, folder: String)
    case altered(path: String, folder: String)
    case unreadable(path: String, folder: String, reason: String)

    public var description: String {
        switch self {
        case .notABundle(let folder): return "\(folder) is not a bundle: no manifest.json"
        case .missing(let path, let folder):
            return "\(path) is missing from the bundle \(folder); export the bundle again (or copy the whole folder)"
        case .altered(let path, let folder):
            return "\(path) is not the file that was exported (sha256 differs) in the bundle \(folder): truncated or altered; "
                + "export the bundle again"
        case .unreadable(let path, let folder, let reason): return "\(path) of the bundle \(folder) cannot be read: \(reason)"
        }
    }

    public var errorDescription: String? { description }
}

func isSha256(_ text: String) -> Bool {
    text.utf8.count == 64 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
}

/// A dimension of a method's input or output: a size, or "seq" for the dynamic length.
public enum Dimension: Equatable, Codable, Sendable {
    case size(Int)
    case symbol(String)

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let size = try? container.decode(Int.self) { self = .size(size) } else { self = .symbol(try container.decode(String.self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .size(let size): try container.encode(size)
        case .symbol(let name): try container.encode(name)
        }
    }
}

public struct TensorSpec: Equatable, Codable, Sendable {
    public let name: String
    public let dtype: String  // int64 or float32
    public let shape: [Dimension]
}

public struct MethodSignature: Equatable, Codable, Sendable {
    public let inputs: [TensorSpec]
    public let outputs: [TensorSpec]
}

/// Which of a bundle's programs runs: model.pte through ExecuTorch, or model.mlpackage through
/// Core ML. What a latency profile's and a calibrated policy's "runtime" say.
public enum ProgramRuntime: String, CaseIterable, Codable, Sendable {
    case executorch, coreml
}

/// What a phone app reads from a bundle (docs/BUNDLE.md, schema 2): the methods of model.pte (and
/// functions of model.mlpackage), the ratios and exits, the policy table written at export, the
/// checksum of every file, and what the bundle was exported from.
public struct Manifest: Decodable {
    public static let schemaVersion = 2

    public struct Backbone: Decodable, Equatable {
        public let id: String
        public let sha256: String
    }

    public struct Model: Decodable, Equatable {
        public let layers: Int
        public let hidden: Int
        public let heads: Int?
        public let intermediate: Int?
        public let embeddingRank: Int?
        public let vocabSize: Int
        public let maxLength: Int
        public let minLength: Int
        public let padMultiple: Int
        public let padTokenId: Int?
        public let labels: [String]
        /// model.tokenizer as written: "wordpiece", "bpe" or "unigram"; absent in older bundles.
        public let tokenizer: String?

        /// The tokenizer the bundle runs (WordPiece when the manifest predates the field).
        public var tokenizerKind: TokenizerKind { tokenizer.flatMap(TokenizerKind.init(rawValue:)) ?? .wordpiece }

        enum CodingKeys: String, CodingKey {
            case layers, hidden, heads, intermediate, labels, tokenizer
            case embeddingRank = "embedding_rank", vocabSize = "vocab_size", maxLength = "max_length"
            case minLength = "min_length", padMultiple = "pad_multiple", padTokenId = "pad_token_id"
        }
    }

    public struct Exits: Decodable, Equatable {
        public let afterLayers: [Int]  // 0-based layers after which an exit can answer
        public let criterion: Criterion
        public let thresholds: [String: Double]

        enum CodingKeys: String, CodingKey {
            case afterLayers = "after_layers", criterion, thresholds
        }
    }

    public struct File: Decodable, Equatable {
        public let path: String
        /// model.pte: the file's sha256; model.mlpackage: the package's digest (folderDigest).
        public let sha256: String
        public let bytes: Int
        public let quantize: String?
        public let functions: [String]?
        public let lengths: [Int]?  // coreml: the enumerated input lengths of every function
        public let computeUnits: String?  // coreml: the MLComputeUnits the package was made for

        enum CodingKeys: String, CodingKey {
            case path, sha256, bytes, quantize, functions, lengths, computeUnits = "compute_units"
        }
    }

    public struct Files: Decodable, Equatable {
        public let executorch: File
        public let coreml: File?  // absent: the bundle has no Core ML program
        public let tokenizer: [String]
    }

    /// What the bundle was exported from; `exportKey` (the sha256 of the rest as canonical JSON)
    /// keys the export cache. The rest is read where present, for display.
    public struct Inputs: Decodable, Equatable {
        public let exportKey: String
        public let checkpointSha256: String?
        public let pluginsSha256: [String: String]?
        public let criterion: String?
        public let thresholds: [String: Double]?
        public let policySha256: String?
        public let maxLength: Int?
        public let ratios: [Int]?
        public let formats: [String]?
        public let quantize: String?
        public let coremlCompress: String?
        public let calibrationSha256: String?
        public let libraryVersion: String?

        enum CodingKeys: String, CodingKey {
            case exportKey = "export_key", checkpointSha256 = "checkpoint_sha256", pluginsSha256 = "plugins_sha256"
            case criterion, thresholds, policySha256 = "policy_sha256", maxLength = "max_length", ratios, formats
            case quantize, coremlCompress = "coreml_compress", calibrationSha256 = "calibration_sha256"
            case libraryVersion = "library_version"
        }
    }

    public let schemaVersion: Int
    public let createdBy: String?
    public let libraryVersion: String
    public let backbone: Backbone
    public let model: Model
    public let methods: [String: MethodSignature]
    public let ratios: [String: [String]]  // "k" -> the layer methods to call, in order
    public let exits: Exits
    public let files: Files
    /// The policy table as written; never null (the app has no table of its own).
    public let policy: JSONValue
    /// `policy`, checked against the bundle's ratios and thresholds when the manifest was read.
    public let policyTable: PolicyTable
    /// Relative path (with "/") -> sha256 of every file of the bundle but manifest.json and profiles/.
    public let checksums: [String: String]
    public let inputs: Inputs

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", createdBy = "created_by", libraryVersion = "library_version"
        case backbone, model, methods, ratios, exits, files, policy, checksums, inputs
    }

    /// The ratios the bundle has, ascending.
    public var ratioValues: [Int] { ratios.keys.compactMap { Int($0) }.sorted() }

    /// The layer methods to call at ratio k, in order (`manifest["ratios"][String(k)]`).
    public func layerMethods(ratio: Int) throws -> [String] {
        guard let methods = ratios[String(ratio)] else {
            throw ManifestError.invalid("no layer methods for ratio \(ratio); the bundle has \(ratioValues)")
        }
        return methods
    }

    /// Every method name in call order: embed, the layers (by ratio), then the exits.
    public var methodNames: [String] { methods.keys.sorted(by: Manifest.callOrder) }

    static func callOrder(_ a: String, _ b: String) -> Bool {
        func key(_ name: String) -> (Int, Int, Int) {
            if name == "embed" { return (0, 0, 0) }
            let parts = name.split(separator: "_")
            if name.hasPrefix("layer_"), parts.count == 3 {
                return (1, Int(parts[1]) ?? 0, Int(parts[2].dropFirst()) ?? 0)
            }
            if name.hasPrefix("exit_"), parts.count == 2 { return (2, Int(parts[1]) ?? 0, 0) }
            return (3, 0, 0)
        }
        let (ka, kb) = (key(a), key(b))
        return ka != kb ? ka < kb : a < b
    }

    /// The program a runtime runs: files.executorch or files.coreml (nil when the bundle has none).
    public func program(_ runtime: ProgramRuntime) -> File? {
        switch runtime {
        case .executorch: return files.executorch
        case .coreml: return files.coreml
        }
    }

    /// The digest of the folder `path` (a Core ML package) made from the checksums of the files
    /// under it, as folder_digest makes it from the files: what files.coreml.sha256 must be.
    public func packageDigest(_ path: String) -> String {
        let prefix = path.hasSuffix("/") ? path : path + "/"
        return digestLines(checksums.filter { $0.key.hasPrefix(prefix) }
            .map { (path: String($0.key.dropFirst(prefix.count)), sha256: $0.value) })
    }

    /// manifest.json alone, checked (schema 2, the policy table against the ratios and thresholds);
    /// the files beside it are not looked at (Manifest.load(bundle:) checks them too).
    public static func load(_ url: URL) throws -> Manifest {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ManifestError.unreadable(path: url.path, reason: error.localizedDescription)
        }
        return try Manifest(data: data, path: url.path)
    }

    /// A bundle folder as load_manifest reads it: its manifest.json checked, then every file the
    /// checksums list present with its exported sha256 (BundleError names the first, in path
    /// order, that is not). Hashes every file: model.pte is tens of MB.
    public static func load(bundle folder: URL) throws -> Manifest {
        let path = folder.appendingPathComponent("manifest.json")
        guard FileManager.default.fileExists(atPath: path.path) else { throw BundleError.notABundle(folder: folder.path) }
        let manifest = try Manifest.load(path)
        try manifest.checkFiles(in: folder)
        return manifest
    }

    /// Every file in `checksums` is in `folder` with that sha256 (check_files), in path order.
    public func checkFiles(in folder: URL) throws {
        for (path, expected) in checksums.sorted(by: { codePointOrder($0.key, $1.key) }) {
            let url = folder.appendingPathComponent(path)
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder), !isFolder.boolValue else {
                throw BundleError.missing(path: path, folder: folder.path)
            }
            let found: String
            do {
                found = try SHA256.hex(file: url)
            } catch {
                throw BundleError.unreadable(path: path, folder: folder.path, reason: error.localizedDescription)
            }
            if found != expected { throw BundleError.altered(path: path, folder: folder.path) }
        }
    }

    public init(data: Data, path: String = "manifest.json") throws {
        do {
            self = try JSONDecoder().decode(Manifest.self, from: data)
        } catch let error as DecodingError {
            throw ManifestError.unreadable(path: path, reason: Manifest.explain(error))
        }
        try validate()
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        // The version first: an older manifest lacks what schema 2 requires, and is told so.
        let version = try? container.decode(Int.self, forKey: .schemaVersion)
        guard let version, version == Manifest.schemaVersion else {
            throw ManifestError.invalid("schema_version \(version.map(String.init) ?? "missing") is not \(Manifest.schemaVersion): "
                                        + "the bundle was written by an older edge-variator")
        }
        schemaVersion = version
        createdBy = try container.decodeIfPresent(String.self, forKey: .createdBy)
        libraryVersion = try container.decode(String.self, forKey: .libraryVersion)
        backbone = try container.decode(Backbone.self, forKey: .backbone)
        model = try container.decode(Model.self, forKey: .model)
        methods = try container.decode([String: MethodSignature].self, forKey: .methods)
        ratios = try container.decode([String: [String]].self, forKey: .ratios)
        exits = try container.decode(Exits.self, forKey: .exits)
        files = try container.decode(Files.self, forKey: .files)
        guard let checksums = try container.decodeIfPresent([String: String].self, forKey: .checksums) else {
            throw ManifestError.invalid("checksums is missing (the sha256 of every file of the bundle)")
        }
        self.checksums = checksums
        inputs = try container.decode(Inputs.self, forKey: .inputs)
        guard let policy = try container.decodeIfPresent(JSONValue.self, forKey: .policy), !policy.isNull else {
            throw ManifestError.invalid("no policy table (policy is missing or null), and the app has none of its own to fall back on")
        }
        self.policy = policy
        do {
            policyTable = try checkPolicy(policy, ratios: ratios.keys.compactMap { Int($0) }.sorted(), thresholds: exits.thresholds)
        } catch let error as PolicyError {
            throw ManifestError.invalid("policy: \(error)")
        }
    }

    /// The checks a runner relies on (what the schema and bundle.validate say, for this app's needs).
    public func validate() throws {
        if schemaVersion != Manifest.schemaVersion {
            throw ManifestError.invalid("schema_version \(schemaVersion) is not \(Manifest.schemaVersion)")
        }
        if libraryVersion.isEmpty { throw ManifestError.invalid("library_version is empty") }
        if !isSha256(inputs.exportKey) { throw ManifestError.invalid("inputs.export_key is not a sha256: \(inputs.exportKey)") }
        if model.labels.count < 2 { throw ManifestError.invalid("model.labels needs at least 2 labels") }
        if model.maxLength < model.minLength || model.maxLength % model.padMultiple != 0 {
            throw ManifestError.invalid("model.max_length \(model.maxLength) is not a multiple of \(model.padMultiple) from \(model.minLength)")
        }
        if let tokenizer = model.tokenizer, TokenizerKind(rawValue: tokenizer) == nil {
            throw ManifestError.invalid("model.tokenizer \"\(tokenizer)\" is not one of \(TokenizerKind.allCases.map(\.rawValue))")
        }
        if ratios["1"] == nil { throw ManifestError.invalid("ratios lacks \"1\"") }
        for (k, names) in ratios {
            guard let ratio = Int(k), [1, 2, 4, 8].contains(ratio) else { throw ManifestError.invalid("ratio '\(k)' is not 1, 2, 4 or 8") }
            if names.count != model.layers {
                throw ManifestError.invalid("ratio \(k) lists \(names.count) layer methods for \(model.layers) layers")
            }
            let missing = names.filter { methods[$0] == nil }
            if !missing.isEmpty { throw ManifestError.invalid("ratio \(k) lists methods the manifest does not describe: \(missing.prefix(3))") }
        }
        if methods["embed"] == nil { throw ManifestError.invalid("no embed method") }
        let after = exits.afterLayers
        if after.isEmpty || after.contains(where: { $0 < 0 || $0 >= model.layers }) {
            throw ManifestError.invalid("exits.after_layers \(after) must be layers 0...\(model.layers - 1)")
        }
        if !after.contains(model.layers - 1) {
            throw ManifestError.invalid("no exit after the last layer (\(model.layers - 1)): a run could end without an answer")
        }
        let missingExits = after.filter { methods["exit_\($0)"] == nil }
        if !missingExits.isEmpty { throw ManifestError.invalid("exits after layers \(missingExits) have no exit_ method") }
        if let bad = exits.thresholds.first(where: { !($0.value >= 0) }) {
            throw ManifestError.invalid("exit threshold \(bad.key) = \(bad.value) is not a number >= 0")
        }
        try validateChecksums()
    }

    /// checksums name files inside the bundle by sha256, model.pte among them with
    /// files.executorch's, and files.coreml.sha256 is the digest of the package files listed.
    private func validateChecksums() throws {
        if checksums.count < 2 { throw ManifestError.invalid("checksums lists \(checksums.count) file(s); a bundle has its program and tokenizer") }
        for (path, sha256) in checksums {
            let parts = path.split(separator: "/", omittingEmptySubsequences: false)
            if path.hasPrefix("/") || parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) {
                throw ManifestError.invalid("checksums names \"\(path)\", not a relative path inside the bundle")
            }
            if !isSha256(sha256) { throw ManifestError.invalid("checksums of \(path) is not a sha256: \(sha256)") }
        }
        let pte = files.executorch
        if checksums[pte.path] != pte.sha256 {
            throw ManifestError.invalid("checksums do not list \(pte.path) with files.executorch's sha256")
        }
        if let package = files.coreml, packageDigest(package.path) != package.sha256 {
            throw ManifestError.invalid("files.coreml.sha256 is not the digest of the \(package.path) files the checksums list")
        }
    }

    static func explain(_ error: DecodingError) -> String {
        func at(_ context: DecodingError.Context) -> String {
            let path = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: "/")
            return path.isEmpty ? "(top level)" : path
        }
        switch error {
        case .keyNotFound(let key, let context): return "\(at(context)): missing \(key.stringValue)"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            return "\(at(context)): \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}
