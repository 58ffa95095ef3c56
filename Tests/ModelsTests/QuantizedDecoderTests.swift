import Foundation
import Testing
import Tensors
import ModelIO
@testable import Models

/// `tokc quantize` output: the file loads, its linear layers run on the quantized kernels, and the
/// decoder's logits stay within a stated distance of the unquantized model's.
@Suite struct QuantizedDecoderTests {
    static func quantizedCopy(_ fixture: String, _ format: QuantizedFormat) throws -> (folder: String, summary: WeightQuantizer.Summary) {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("tokc-quant-\(fixture)-\(format.rawValue)-\(UUID().uuidString)").path
        return (out, try WeightQuantizer.quantize(folder: modelsFixture(fixture), format: format, to: out))
    }

    /// Exactness: the quantized model computes what the same decoder computes with the dequantized
    /// weights in Float32 (sgemm), to summation-order rounding.
    @Test(arguments: QuantizedFormat.allCases)
    func quantizedModelEqualsItsDequantizedTwin(_ format: QuantizedFormat) throws {
        let (folder, summary) = try Self.quantizedCopy("llama-f16", format)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect(summary.quantized.count == 2 * 7 + 1 && summary.keptUnquantized.isEmpty)
        #expect(summary.bytesAfter < summary.bytesBefore)
        #expect(FileManager.default.fileExists(atPath: folder + "/config.json"))
        let quantized = try DecoderLM.load(folder: folder)
        let name = "model.layers.0.mlp.up_proj.weight"
        #expect(try quantized.store.info(name).quantization == format)
        #expect(try quantized.store.info(name).shape == [128, 64])
        var tensors: [String: Tensor] = [:]
        for n in quantized.store.names {
            let logical = n.hasSuffix(WeightStore.quantizedDataSuffix) ? String(n.dropLast(WeightStore.quantizedDataSuffix.count)) : n
            if n.hasSuffix(WeightStore.quantizedScalesSuffix) { continue }
            let info = try quantized.store.info(logical)
            if info.quantization == nil && !info.dtype.isFloatingPoint { continue }  // the fixture's reference ids
            tensors[logical] = try quantized.store.tensor(logical)  // dequantized for quantized matrices
        }
        let twin = try DecoderLM(config: quantized.config, store: WeightStore(tensors: tensors))
        for ids in [[1, 5, 9], Array(1...12)] {  // 3 rows: the direct kernels; 12: dequantized tiles
            let a = try quantized.prefill(inputIDs: ids), b = try twin.prefill(inputIDs: ids)
            #expect(modelsMaxAbs(a.logits, b.logits) < 1e-4, "\(format), \(ids.count) tokens")
            #expect(modelsMaxAbs(try quantized.decodeStep(token: 3, cache: a.cache), try twin.decodeStep(token: 3, cache: b.cache)) < 1e-4)
        }
    }

    /// Approximation: the largest logit change relative to the largest |logit| of this tiny random model
    /// (width 64: a random model has no margin to lose). Measured: int8 0.033, int4 0.70; the
    /// bounds leave room, and int4's error must exceed int8's.
    @Test func quantizationErrorIsBoundedAndOrdered() throws {
        let reference = try DecoderLM.load(folder: modelsFixture("llama-f16"))
        var errors: [QuantizedFormat: Float] = [:]
        for format in QuantizedFormat.allCases {
            let (folder, _) = try Self.quantizedCopy("llama-f16", format)
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let quantized = try DecoderLM.load(folder: folder)
            let ids = Array(1...12)
            let a = try reference.prefill(inputIDs: ids), b = try quantized.prefill(inputIDs: ids)
            let range = a.logits.values.map(abs).max()!
            errors[format] = modelsMaxAbs(a.logits, b.logits) / range
        }
        #expect(errors[.int8]! > 0 && errors[.int8]! < 0.05, "int8 relative error \(errors[.int8]!)")
        #expect(errors[.int4]! < 1, "int4 relative error \(errors[.int4]!)")
        #expect(errors[.int4]! > errors[.int8]!)
    }

    @Test func refusesToQuantizeTwice() throws {
        let (folder, _) = try Self.quantizedCopy("llama-f16", .int8)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect(throws: ModelError.self) { try WeightQuantizer.quantize(folder: folder, format: .int4, to: folder + "-again") }
    }
}
