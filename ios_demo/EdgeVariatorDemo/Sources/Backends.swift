import CoreML
import EdgeVariatorPolicy
import ExecuTorch
import Foundation

enum DemoError: Error, LocalizedError {
    case missingFile(String)
    case badOutput(String)
    case noCoreML
    case noBundle

    var errorDescription: String? {
        switch self {
        case .missingFile(let path): return "the bundle lacks \(path); copy the whole bundle folder"
        case .badOutput(let method): return "\(method) did not return one float tensor: is this bundle's model.pte the one its manifest names?"
        case .noCoreML: return "this bundle has no model.mlpackage: export it with --format executorch,coreml"
        case .noBundle: return "no bundle: put one in the app's Documents folder (Files app), or in the app's Bundle/ folder"
        }
    }
}

func standardNormal(count: Int) -> [Float] {
    (0..<count).map { _ in
        // Box-Muller; 1 - random keeps the log finite.
        let u = 1 - Float.random(in: 0..<1)
        let v = Float.random(in: 0..<1)
        return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
    }
}

// MARK: - ExecuTorch (model.pte, XNNPACK)

/// model.pte through ExecuTorch's Swift API (XNNPACK): a method per call, loaded on first use.
final class ExecuTorchBackend: MethodBackend {
    private let module: Module
    let runtime = ProgramRuntime.executorch  // its profiles carry files.executorch.sha256
    let runtimeVersion = "ExecuTorch 1.4.1 (XNNPACK), Swift API, iOS"

    init(bundle: URL, manifest: Manifest) throws {
        let path = bundle.appendingPathComponent(manifest.files.executorch.path).path
        guard FileManager.default.fileExists(atPath: path) else { throw DemoError.missingFile(manifest.files.executorch.path) }
        module = Module(filePath: path)
        try module.load()
    }

    func load(_ methods: [String]) throws {
        for method in methods where !module.isLoaded(method) {
            try module.load(method)
        }
    }

    func mask(_ values: [Int]) throws -> Tensor<Int64> {
        Tensor<Int64>(values.map(Int64.init), shape: [1, values.count])
    }

    func embed(_ ids: [Int]) throws -> Tensor<Float> {
        let values: [Value] = try module.execute("embed", [Tensor<Int64>(ids.map(Int64.init), shape: [1, ids.count])])
        return try output(values, of: "embed")
    }

    func layer(_ method: String, _ hidden: Tensor<Float>, _ mask: Tensor<Int64>) throws -> Tensor<Float> {
        let values: [Value] = try module.execute(method, [hidden, mask])
        return try output(values, of: method)
    }

    func exitLogits(_ method: String, _ hidden: Tensor<Float>, _ mask: Tensor<Int64>) throws -> [Double] {
        let values: [Value] = try module.execute(method, [hidden, mask])
        return try output(values, of: method).scalars().map(Double.init)
    }

    func randomHidden(length: Int, width: Int) throws -> Tensor<Float> {
        Tensor<Float>(standardNormal(count: length * width), shape: [1, length, width])
    }

    private func output(_ values: [Value], of method: String) throws -> Tensor<Float> {
        guard let tensor: Tensor<Float> = values.first?.tensor() else { throw DemoError.badOutput(method) }
        return tensor.copy()  // the output lives in the method's own memory, which its next call reuses
    }
}

// MARK: - Core ML (model.mlpackage: one function per method, iOS 18)

@available(iOS 18.0, *)
final class CoreMLBackend: MethodBackend {
    /// Which input of a function is which: names come from the exported pieces' arguments
    /// (input_ids; hidden or hidden_states; attention_mask), so they are found by role.
    private struct Function {
        let model: MLModel
        let ids: String?
        let hidden: String?
        let mask: String?
        let output: String
    }

    private let compiled: URL
    private let computeUnits: MLComputeUnits
    private var functions: [String: Function] = [:]
    let runtime = ProgramRuntime.coreml  // its profiles carry files.coreml.sha256, the package digest
    let runtimeVersion: String

    /// The bundle's model.mlpackage (files.coreml; without it the bundle has no Core ML program),
    /// whose files LoadedBundle has checked against the manifest's checksums.
    init(bundle: URL, manifest: Manifest, computeUnits: MLComputeUnits = .all) async throws {
        guard let file = manifest.files.coreml else { throw DemoError.noCoreML }
        let package = bundle.appendingPathComponent(file.path)
        guard FileManager.default.fileExists(atPath: package.path) else { throw DemoError.missingFile(file.path) }
        compiled = try await CoreMLBackend.compile(package, digest: file.sha256)
        self.computeUnits = computeUnits
        let units = computeUnits == .all ? "all compute units" : computeUnits == .cpuOnly ? "CPU only" : "CPU and GPU/NE"
        runtimeVersion = "Core ML (iOS 18 multifunction, fp16, \(units))"
    }

    /// Compile the package once (minutes on a phone for a large model) and keep it in Caches, keyed
    /// by the package's digest (files.coreml.sha256: the sha256 of every file of the package, which
    /// the manifest's checksums agree with), so that another export compiles again.
    static func compile(_ package: URL, digest: String) async throws -> URL {
        let caches = FileManager.default.urls(for: .cachesDirectory, in: .userDomainMask)[0]
        let target = caches.appendingPathComponent("model-\(digest).mlmodelc")
        if FileManager.default.fileExists(atPath: target.path) { return target }
        let temporary = try await MLModel.compileModel(at: package)
        try? FileManager.default.removeItem(at: target)
        try FileManager.default.moveItem(at: temporary, to: target)
        return target
    }

    private func function(_ name: String) throws -> Function {
        if let function = functions[name] { return function }
        let configuration = MLModelConfiguration()
        configuration.computeUnits = computeUnits
        configuration.functionName = name
        let model = try MLModel(contentsOf: compiled, configuration: configuration)
        var ids: String?, hidden: String?, mask: String?
        for (input, description) in model.modelDescription.inputDescriptionsByName {
            if input.contains("mask") {
                mask = input
            } else if description.multiArrayConstraint?.dataType == .int32 {
                ids = input  // Core ML takes int64 inputs as int32
            } else {
                hidden = input
            }
        }
        guard let output = model.modelDescription.outputDescriptionsByName.keys.first else { throw DemoError.badOutput(name) }
        let function = Function(model: model, ids: ids, hidden: hidden, mask: mask, output: output)
        functions[name] = function
        return function
    }

    func load(_ methods: [String]) throws {
        for method in methods { _ = try function(method) }
    }

    func mask(_ values: [Int]) throws -> MLMultiArray { try integers(values) }

    func embed(_ ids: [Int]) throws -> MLMultiArray {
        let function = try function("embed")
        return try predict(function, name: "embed", [function.ids ?? "input_ids": integers(ids)])
    }

    func layer(_ method: String, _ hidden: MLMultiArray, _ mask: MLMultiArray) throws -> MLMultiArray {
        let function = try function(method)
        return try predict(function, name: method, [function.hidden ?? "hidden": hidden, function.mask ?? "attention_mask": mask])
    }

    func exitLogits(_ method: String, _ hidden: MLMultiArray, _ mask: MLMultiArray) throws -> [Double] {
        let logits = try layer(method, hidden, mask)
        return (0..<logits.count).map { logits[$0].doubleValue }
    }

    func randomHidden(length: Int, width: Int) throws -> MLMultiArray {
        let array = try MLMultiArray(shape: [1, NSNumber(value: length), NSNumber(value: width)], dataType: .float32)
        let values = standardNormal(count: length * width)
        array.withUnsafeMutableBufferPointer(ofType: Float.self) { pointer, _ in
            for index in values.indices { pointer[index] = values[index] }
        }
        return array
    }

    private func integers(_ values: [Int]) throws -> MLMultiArray {
        let array = try MLMultiArray(shape: [1, NSNumber(value: values.count)], dataType: .int32)
        array.withUnsafeMutableBufferPointer(ofType: Int32.self) { pointer, _ in
            for index in values.indices { pointer[index] = Int32(values[index]) }
        }
        return array
    }

    private func predict(_ function: Function, name: String, _ inputs: [String: MLMultiArray]) throws -> MLMultiArray {
        let provider = try MLDictionaryFeatureProvider(dictionary: inputs.mapValues { MLFeatureValue(multiArray: $0) })
        let result = try function.model.prediction(from: provider)
        guard let array = result.featureValue(for: function.output)?.multiArrayValue else { throw DemoError.badOutput(name) }
        return array
    }
}
