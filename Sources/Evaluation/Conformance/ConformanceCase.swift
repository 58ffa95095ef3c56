import Foundation
import ModelIO
import Tensors

/// One conformance case folder: `case.json`, `inputs.safetensors`, `expected.safetensors`.
public struct ConformanceCase: @unchecked Sendable {
    public let directory: String
    public let method: String
    public let params: CaseParameters
    public let inputs: CaseInputs
    public let compare: [String: JSONValue]
    public let notes: String

    /// Case name as `<method>/<folder>`.
    public var name: String {
        let url = URL(fileURLWithPath: directory)
        return url.deletingLastPathComponent().lastPathComponent + "/" + url.lastPathComponent
    }

    public init(directory: String) throws {
        self.directory = directory
        let casePath = directory + "/case.json"
        let json: JSONValue
        do { json = try JSONValue.parse(try Data(contentsOf: URL(fileURLWithPath: casePath))) } catch {
            throw ConformanceError("\(casePath): \(error)")
        }
        guard let method = json["method"]?.stringValue else { throw ConformanceError("\(casePath): missing 'method'") }
        self.method = method
        params = CaseParameters(values: json["params"]?.objectValue ?? [:], caseName: casePath)
        compare = json["compare"]?.objectValue ?? [:]
        notes = json["notes"]?.stringValue ?? ""
        inputs = CaseInputs(file: try SafetensorsFile(path: directory + "/inputs.safetensors"))
    }

    public func expected() throws -> SafetensorsFile { try SafetensorsFile(path: directory + "/expected.safetensors") }
}

/// An error in running a case: a missing parameter, a malformed file, an unknown method.
public struct ConformanceError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Typed access to a case's `params`, with errors naming the parameter.
public struct CaseParameters: Sendable {
    public let values: [String: JSONValue]
    let caseName: String

    public func has(_ key: String) -> Bool { values[key].map { !$0.isNull } ?? false }

    public func raw(_ key: String) throws -> JSONValue {
        guard let v = values[key] else { throw ConformanceError("parameter '\(key)' missing") }
        return v
    }

    public func int(_ key: String) throws -> Int {
        guard let v = try raw(key).intValue else { throw ConformanceError("parameter '\(key)' is not an integer: \(try raw(key))") }
        return v
    }
    public func int(_ key: String, default d: Int) throws -> Int { has(key) ? try int(key) : d }
    public func optionalInt(_ key: String) throws -> Int? { has(key) ? try int(key) : nil }

    public func double(_ key: String) throws -> Double {
        guard let v = try raw(key).doubleValue else { throw ConformanceError("parameter '\(key)' is not a number: \(try raw(key))") }
        return v
    }
    public func double(_ key: String, default d: Double) throws -> Double { has(key) ? try double(key) : d }
    public func optionalDouble(_ key: String) throws -> Double? { has(key) ? try double(key) : nil }

    public func bool(_ key: String) throws -> Bool {
        guard let v = try raw(key).boolValue else { throw ConformanceError("parameter '\(key)' is not a boolean: \(try raw(key))") }
        return v
    }
    public func bool(_ key: String, default d: Bool) throws -> Bool { has(key) ? try bool(key) : d }

    public func string(_ key: String) throws -> String {
        guard let v = try raw(key).stringValue else { throw ConformanceError("parameter '\(key)' is not a string: \(try raw(key))") }
        return v
    }
    public func string(_ key: String, default d: String) throws -> String { has(key) ? try string(key) : d }

    public func ints(_ key: String) throws -> [Int] {
        guard let a = try raw(key).arrayValue else { throw ConformanceError("parameter '\(key)' is not a list") }
        let v = a.compactMap(\.intValue)
        guard v.count == a.count else { throw ConformanceError("parameter '\(key)' is not a list of integers") }
        return v
    }

    public func doubles(_ key: String) throws -> [Double] {
        guard let a = try raw(key).arrayValue else { throw ConformanceError("parameter '\(key)' is not a list") }
        let v = a.compactMap(\.doubleValue)
        guard v.count == a.count else { throw ConformanceError("parameter '\(key)' is not a list of numbers") }
        return v
    }
}

/// Typed access to a case's input tensors.
public struct CaseInputs: @unchecked Sendable {
    public let file: SafetensorsFile

    public func has(_ name: String) -> Bool { file.contains(name) }
    /// A floating tensor as Float32.
    public func floats(_ name: String) throws -> Tensor { try file.tensor(name) }
    /// An integer/flag tensor as Int.
    public func ints(_ name: String) throws -> [Int] { try file.integers(name).map { Int($0) } }
    public func shape(_ name: String) throws -> [Int] { try file.info(name).shape }
    /// Float64 view of a float tensor (for methods whose reference computes in float64).
    public func doubles(_ name: String) throws -> [Double] { try file.tensor(name).values.map(Double.init) }
}

/// One output of a method under test.
public enum CaseValue: Sendable {
    case floats(Tensor)
    /// Integers (indices, counts, flags) with their shape.
    case ints([Int], shape: [Int])

    public static func ints(_ values: [Int]) -> CaseValue { .ints(values, shape: [values.count]) }
    public static func int(_ value: Int) -> CaseValue { .ints([value], shape: [1]) }
    public static func bools(_ values: [Bool], shape: [Int]? = nil) -> CaseValue {
        .ints(values.map { $0 ? 1 : 0 }, shape: shape ?? [values.count])
    }
    public static func floats(_ values: [Float], shape: [Int]? = nil) throws -> CaseValue {
        .floats(try Tensor(shape: shape ?? [values.count], values: values))
    }
    public static func doubles(_ values: [Double], shape: [Int]? = nil) throws -> CaseValue {
        .floats(try Tensor(shape: shape ?? [values.count], values: values.map { Float($0) }))
    }

    var shape: [Int] {
        switch self {
        case .floats(let t): return t.shape
        case .ints(_, let s): return s
        }
    }
}

/// Runs one method on a case's inputs. One conformer per method; it translates the case's
/// parameters into the method's typed parameters and its results into named outputs.
public protocol MethodConformer {
    /// Method name as in `case.json` (`"dart"`, `"tome"`, …).
    static var method: String { get }
    static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue]
}
