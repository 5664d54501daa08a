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

/// What a phone app reads from a bundle: the methods of model.pte (and functions of
/// model.mlpackage), the ratios and exits, the policy table and a latency profile if any.
public struct Manifest: Decodable {
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
        public let sha256: String
        public let bytes: Int
        public let quantize: String?
        public let functions: [String]?
    }

    public struct Files: Decodable, Equatable {
        public let executorch: File
        public let coreml: File?
        public let tokenizer: [String]
    }

    public let schemaVersion: Int
    public let createdBy: String?
    public let backbone: Backbone
    public let model: Model
    public let methods: [String: MethodSignature]
    public let ratios: [String: [String]]  // "k" -> the layer methods to call, in order
    public let exits: Exits
    public let files: Files
    public let policy: JSONValue?  // nil (null): the default policy for the bundle's ratios
    public let latencyProfile: JSONValue?

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", createdBy = "created_by", backbone, model, methods, ratios
        case exits, files, policy, latencyProfile = "latency_profile"
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

    public static func load(_ url: URL) throws -> Manifest {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ManifestError.unreadable(path: url.path, reason: error.localizedDescription)
        }
        return try Manifest(data: data, path: url.path)
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
        schemaVersion = try container.decode(Int.self, forKey: .schemaVersion)
        createdBy = try container.decodeIfPresent(String.self, forKey: .createdBy)
        backbone = try container.decode(Backbone.self, forKey: .backbone)
        model = try container.decode(Model.self, forKey: .model)
        methods = try container.decode([String: MethodSignature].self, forKey: .methods)
        ratios = try container.decode([String: [String]].self, forKey: .ratios)
        exits = try container.decode(Exits.self, forKey: .exits)
        files = try container.decode(Files.self, forKey: .files)
        let policy = try container.decodeIfPresent(JSONValue.self, forKey: .policy)
        self.policy = policy == .null ? nil : policy
        let profile = try container.decodeIfPresent(JSONValue.self, forKey: .latencyProfile)
        latencyProfile = profile == .null ? nil : profile
    }

    /// The checks a runner relies on (what the schema and bundle.validate say, for this app's needs).
    public func validate() throws {
        if schemaVersion != 1 { throw ManifestError.invalid("schema_version \(schemaVersion) is not 1: a newer exporter wrote it") }
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
