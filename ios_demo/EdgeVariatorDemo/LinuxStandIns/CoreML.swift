// Linux stand-in for the Core ML API the app calls (iOS 18 signatures), for the type-check in
// run_swift_tests.sh only. Not in the app.
import Foundation

public enum MLComputeUnits { case cpuOnly, cpuAndGPU, all, cpuAndNeuralEngine }
public enum MLMultiArrayDataType { case int32, float32, float16, double }

public final class MLModelConfiguration {
    public init() {}
    public var computeUnits: MLComputeUnits = .all
    public var functionName: String?
}

public final class MLMultiArrayConstraint { public var dataType: MLMultiArrayDataType = .float32 }
public final class MLFeatureDescription { public var multiArrayConstraint: MLMultiArrayConstraint? }

public final class MLModelDescription {
    public var inputDescriptionsByName: [String: MLFeatureDescription] = [:]
    public var outputDescriptionsByName: [String: MLFeatureDescription] = [:]
}

public protocol MLFeatureProvider { func featureValue(for featureName: String) -> MLFeatureValue? }

public final class MLDictionaryFeatureProvider: MLFeatureProvider {
    public init(dictionary: [String: Any]) throws {}
    public func featureValue(for featureName: String) -> MLFeatureValue? { nil }
}

public final class MLFeatureValue {
    public init(multiArray: MLMultiArray) {}
    public var multiArrayValue: MLMultiArray? { nil }
}

public final class MLMultiArray {
    public init(shape: [NSNumber], dataType: MLMultiArrayDataType) throws {}
    public var count: Int { 0 }
    public subscript(index: Int) -> NSNumber { get { 0 } set {} }
    public func withUnsafeMutableBufferPointer<S, R>(ofType type: S.Type, _ body: (UnsafeMutableBufferPointer<S>, [Int]) throws -> R) rethrows -> R {
        fatalError("stand-in")
    }
}

public final class MLModel {
    public init(contentsOf url: URL, configuration: MLModelConfiguration) throws {}
    public var modelDescription: MLModelDescription { MLModelDescription() }
    public func prediction(from input: MLFeatureProvider) throws -> MLFeatureProvider { fatalError("stand-in") }
    public class func compileModel(at url: URL) async throws -> URL { url }
}
