import Foundation
import Testing
import Tensors
import ModelIO
@testable import Models

/// What `WeightQuantizer` converts: only the language model of a VLM checkpoint, and the F32 copy
/// (`.float32`) holds exactly the stored values.
@Suite struct WeightQuantizerScopeTests {
    static func temp(_ tag: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("tokc-wq-\(tag)-\(UUID().uuidString)").path
    }

    @Test func llavaKeepsItsVisionTowerAndProjectorAsStored() throws {
        let source = modelsFixture("llava")
        let out = Self.temp("llava-int8")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let summary = try WeightQuantizer.quantize(folder: source, format: .int8, to: out)
        let before = WeightStore(checkpoint: try Checkpoint(path: source))
        let after = WeightStore(checkpoint: try Checkpoint(path: out))
        let projections = before.names.filter { $0.hasSuffix("_proj.weight") }
        let vision = projections.filter { $0.contains("vision_tower") }
        #expect(!vision.isEmpty, "the fixture has tower projections to leave alone")
        #expect(Set(summary.quantized) == Set(before.names.filter { n in
            (n.hasSuffix("_proj.weight") || n.hasSuffix("lm_head.weight")) && !n.contains("vision_tower") && !n.contains("multi_modal_projector")
        }))
        #expect(!summary.quantized.isEmpty)
        for n in vision {
            #expect(try after.info(n).quantization == nil)
            #expect(modelsMaxAbs(try after.tensor(n), try before.tensor(n)) == 0)
        }
        for n in summary.quantized { #expect(try after.info(n).quantization == .int8) }
        _ = try LlavaModel.load(folder: out)  // loads as any checkpoint
    }

    @Test func float32CopyHoldsTheStoredValues() throws {
        let source = modelsFixture("llama-f16")
        let out = Self.temp("f32")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let summary = try WeightQuantizer.convert(folder: source, target: .float32, to: out)
        #expect(summary.quantized.isEmpty)
        let before = WeightStore(checkpoint: try Checkpoint(path: source))
        let after = WeightStore(checkpoint: try Checkpoint(path: out))
        #expect(after.names == before.names)
        var widened = 0
        for n in before.names where try before.info(n).dtype.isFloatingPoint {
            #expect(try after.info(n).dtype == .F32)
            #expect(modelsMaxAbs(try after.tensor(n), try before.tensor(n)) == 0, "\(n)")
            if try before.info(n).dtype != .F32 { widened += 1 }
        }
        #expect(widened > 0, "the fixture stores F16 weights")
        #expect(summary.bytesAfter > summary.bytesBefore)
        #expect(FileManager.default.fileExists(atPath: out + "/config.json"))
    }

    /// Every tensor of a converted file starts at a multiple of its element size in the mapping (the
    /// kernels read F32 scales and F16 weights in place; unaligned scales would be copied per call).
    @Test(arguments: QuantizedFormat.allCases)
    func convertedTensorsAreAligned(_ format: QuantizedFormat) throws {
        let out = Self.temp("align-\(format.rawValue)")
        defer { try? FileManager.default.removeItem(atPath: out) }
        _ = try WeightQuantizer.quantize(folder: modelsFixture("llama-f16"), format: format, to: out)
        let file = try SafetensorsFile(path: out + "/model.safetensors")
        var sizes = Set<Int>()
        for n in file.names {
            let size = try file.info(n).dtype.size
            sizes.insert(size)
            #expect(Int(bitPattern: try file.rawBytes(n).baseAddress) % size == 0, "\(n)")
        }
        #expect(sizes.isSuperset(of: [1, 2, 4]), "the file mixes 1-, 2- and 4-byte tensors")
    }
}
