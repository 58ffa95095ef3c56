import Testing
import Evaluation
import Tensors
import ModelIO
@testable import Models

/// Linear layers over F16 / BF16 checkpoints read the mapping through `HalfMatmul` (no Float32 copy) and
/// agree with the converted-weight product; whole decoders agree with their `keepConverted` (sgemm) twin.
@Suite struct HalfPrecisionLinearTests {
    @Test(arguments: [("llama-f16", SafetensorsDType.F16), ("qwen2-bf16", .BF16)])
    func linearMatchesConvertedWeights(_ fixture: String, _ dtype: SafetensorsDType) throws {
        let store = try WeightStore(folder: modelsFixture(fixture))
        let name = "model.layers.0.mlp.down_proj.weight"
        #expect(try store.info(name).dtype == dtype)
        let shape = try store.info(name).shape
        let linear = try LinearWeight(store: store, prefix: "model.layers.0.mlp.down_proj", out: shape[0], in: shape[1], bias: false)
        let reference = try store.tensor(name)  // converted once, not cached
        for rows in [1, 3, 8, 9, 40] {
            let x = PrefillBenchmark.random([rows, shape[1]], scale: 1, seed: UInt64(rows))
            let d = modelsMaxAbs(try linear(x, store: store), try x.linear(weight: reference))
            #expect(d < 1e-5, "\(fixture), \(rows) rows: \(d)")
        }
        #expect(store.residentBytes == 0)
        let used = try store.withHalfPrecision(name) { _, format in format }
        #expect(used == (dtype == .F16 ? .f16 : .bf16))
    }

    @Test(arguments: ["llama-f16", "qwen2-bf16"])
    func decoderMatchesItsConvertedTwin(_ fixture: String) throws {
        let direct = try DecoderLM.load(folder: modelsFixture(fixture))
        let converted = try DecoderLM.load(folder: modelsFixture(fixture), keepConverted: true)
        let ids = [1, 5, 9, 13, 2, 7, 11, 3, 4, 8, 6, 12]  // 12 rows: the tiled path
        let a = try direct.prefill(inputIDs: ids), b = try converted.prefill(inputIDs: ids)
        #expect(modelsMaxAbs(a.logits, b.logits) < 1e-4)
        // Decoding (one row per step) runs the direct kernel; greedy tokens agree.
        #expect(try direct.generate(after: a, maxNewTokens: 4, stopTokens: []) == (try converted.generate(after: b, maxNewTokens: 4, stopTokens: [])))
        #expect(direct.store.residentBytes < converted.store.residentBytes)
    }
}
