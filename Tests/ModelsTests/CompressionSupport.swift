import Foundation
import ModelIO
import Tensors
@testable import Models

/// The compressed-parity fixture (tools/fixtures/make_compressed_fixtures.py): a LLaVA-1.5 with
/// 64 visual tokens and 4 decoder layers; prompt = 4 system tokens, 64 image tokens, 8 text tokens.
enum CompressionFixture {
    static var folder: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/compressed/llava-prune").path
    }
    static let imageRange = 4..<68
    static let promptLength = 76

    static func model() throws -> LlavaModel { try LlavaModel.load(folder: folder) }

    static func inputs() throws -> (ids: [Int], pixels: Tensor) {
        let file = try SafetensorsFile(path: folder + "/inputs.safetensors")
        return (try file.integers("input_ids").map { Int($0) }, try file.tensor("pixel_values").reshaped([3, 56, 56]))
    }
}

/// Parameters a method cannot run without, for tests that run every in-model method (FitPrune: a
/// delete scheme; on the 4-layer fixtures a short one).
let requiredTestParameters: [String: [String: String]] = ["fitprune": ["scheme": "0,8,8"]]
