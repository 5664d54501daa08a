// Linux stand-in for ExecuTorch 1.4.1's Swift API, so that run_swift_tests.sh can type-check the
// app's non-UI sources: the signatures the app calls, as declared in pytorch/executorch
// extension/apple/ExecuTorch/Exported (ExecuTorch+Module.swift, +Tensor.swift, +Value.swift and
// ExecuTorchModule.h). Overloads are kept so that an ambiguous call fails here too. Not in the app.
import Foundation

public protocol Scalar {}
extension Float: Scalar {}
extension Int64: Scalar {}
extension Int32: Scalar {}

public protocol ValueConvertible { func asValue() -> Value }
public protocol ValueConstructible { static func from(_ value: Value) throws -> Self }
public protocol ValueSequenceConstructible { static func from(_ values: [Value]) throws -> Self }

public final class Value: ValueConvertible, ValueConstructible {
    init() {}
    public func asValue() -> Value { self }
    public static func from(_ value: Value) throws -> Self { fatalError("stand-in") }
    public func tensor<T: Scalar>() -> Tensor<T>? { nil }
}

extension Array: ValueSequenceConstructible where Element: ValueConstructible {
    public static func from(_ values: [Value]) throws -> Self { fatalError("stand-in") }
}

public final class Tensor<T: Scalar>: ValueConvertible, ValueConstructible, ValueSequenceConstructible {
    init() {}
    public convenience init(_ scalars: inout [T], shape: [Int] = [], strides: [Int] = [], dimensionOrder: [Int] = []) { self.init() }
    public convenience init(_ scalars: [T], shape: [Int] = [], strides: [Int] = [], dimensionOrder: [Int] = []) { self.init() }
    public func copy() -> Tensor<T> { self }
    public func asValue() -> Value { Value() }
    public static func from(_ value: Value) throws -> Self { fatalError("stand-in") }
    public static func from(_ values: [Value]) throws -> Self { fatalError("stand-in") }
}

public extension Tensor {
    func scalars() -> [T] { [] }
}

public final class Module {
    public init(filePath: String) {}
    public func load() throws {}
    public func load(_ method: String) throws {}
    public func isLoaded() -> Bool { false }
    public func isLoaded(_ method: String) -> Bool { false }
    public func execute(_ method: String, _ inputs: [ValueConvertible]) throws -> [Value] { [] }
    public func execute(_ method: String, _ inputs: ValueConvertible...) throws -> [Value] { [] }
    public func execute<Output: ValueSequenceConstructible>(_ method: String, _ inputs: [ValueConvertible]) throws -> Output { fatalError("stand-in") }
    public func execute<Output: ValueSequenceConstructible>(_ method: String, _ inputs: ValueConvertible...) throws -> Output { fatalError("stand-in") }
    public func execute<Output: ValueSequenceConstructible>(_ method: String, _ input: ValueConvertible) throws -> Output { fatalError("stand-in") }
}
