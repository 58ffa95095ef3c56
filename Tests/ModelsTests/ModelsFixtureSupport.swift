import Foundation
import ModelIO
import Tensors
@testable import Models

/// Folder of one parity fixture written by tools/fixtures/make_model_fixtures.py.
func modelsFixture(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/models/\(name)").path
}

/// The reference tensors of a fixture (inputs and transformers' outputs).
struct ModelsReference {
    let file: SafetensorsFile
    init(_ name: String) throws { file = try SafetensorsFile(path: modelsFixture(name) + "/reference.safetensors") }
    func tensor(_ key: String) throws -> Tensor { try file.tensor(key) }
    func ints(_ key: String) throws -> [Int] { try file.integers(key).map { Int($0) } }
    func has(_ key: String) -> Bool { file.contains(key) }
}

/// Largest absolute difference; infinity on a shape mismatch.
func modelsMaxAbs(_ a: Tensor, _ b: Tensor) -> Float {
    guard a.count == b.count else { return .infinity }
    return zip(a.values, b.values).reduce(0) { max($0, abs($1.0 - $1.1)) }
}
