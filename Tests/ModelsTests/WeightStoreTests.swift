import Testing
import Evaluation
import Tensors
import ModelIO
@testable import Models

@Suite struct WeightStoreTests {
    @Test func splitLinearMatchesTensorLinear() throws {
        let x = PrefillBenchmark.random([130, 96], scale: 1, seed: 11)
        let w = PrefillBenchmark.random([700, 96], scale: 0.1, seed: 12)
        let b = PrefillBenchmark.random([700], scale: 0.1, seed: 13)
        let store = WeightStore(tensors: ["p.weight": w, "p.bias": b])
        let linear = try LinearWeight(store: store, prefix: "p", out: 700, in: 96, bias: true)
        let ours = try linear(x, store: store)
        #expect(modelsMaxAbs(ours, try x.linear(weight: w, bias: b)) < 1e-5)
        #expect(throws: ModelError.self) { try LinearWeight(store: store, prefix: "p", out: 96, in: 700, bias: false) }
    }

    @Test func halfPrecisionStaysUnconvertedUnlessAsked() throws {
        let store = try WeightStore(folder: modelsFixture("llama-f16"))
        let name = "model.layers.0.mlp.up_proj.weight"
        #expect(try store.info(name).dtype == .F16)
        let t = try store.tensor(name)
        #expect(t.shape == [128, 64])
        #expect(store.residentBytes == 0)
        let rows = try store.rows("model.embed_tokens.weight", [3, 7])
        #expect(rows.shape == [2, 64])
        #expect(throws: ModelError.self) { try store.rows("model.embed_tokens.weight", [100]) }
    }
}
