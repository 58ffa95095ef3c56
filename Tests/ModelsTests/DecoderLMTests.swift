import Testing
import Tensors
@testable import Models

@Suite struct DecoderLMTests {
    @Test(arguments: ["llama", "llama-f16", "qwen2-bf16"])
    func logitsAndGreedyMatchTransformers(_ name: String) throws {
        let lm = try DecoderLM.load(folder: modelsFixture(name))
        let ref = try ModelsReference(name)
        let ids = try ref.ints("input_ids")
        let result = try lm.prefill(inputIDs: ids)
        let d = modelsMaxAbs(result.logits, try ref.tensor("logits"))
        #expect(d < 1e-4, "\(name): logits differ by \(d)")
        let tokens = try lm.generate(after: result, maxNewTokens: 5, stopTokens: [])
        #expect(tokens == (try ref.ints("greedy")))
    }

    @Test func gappedPositionIDs() throws {
        let lm = try DecoderLM.load(folder: modelsFixture("llama"))
        let ref = try ModelsReference("llama")
        let result = try lm.prefill(inputIDs: try ref.ints("input_ids"), positions: try ref.ints("position_ids"))
        #expect(modelsMaxAbs(result.logits, try ref.tensor("logits_positions")) < 1e-4)
        #expect(result.cache.nextPosition == 23)
    }

    @Test func keepConvertedGivesSameLogits() throws {
        let folder = modelsFixture("llama-f16")
        let a = try DecoderLM.load(folder: folder)
        let b = try DecoderLM.load(folder: folder, keepConverted: true)
        let ids = [1, 5, 9, 13]
        // The mapped half weights go through HalfMatmul, the cached Float32 copies through sgemm: summation order differs.
        #expect(modelsMaxAbs(try a.prefill(inputIDs: ids).logits, try b.prefill(inputIDs: ids).logits) < 1e-4)
        #expect(a.store.residentBytes < b.store.residentBytes)
    }

    @Test func rejectsBadInput() throws {
        let lm = try DecoderLM.load(folder: modelsFixture("llama"))
        #expect(throws: ModelError.self) { try lm.prefill(inputIDs: [1, 1000]) }
        #expect(throws: ModelError.self) { try lm.prefill(inputIDs: Array(repeating: 1, count: 300)) }
        #expect(throws: ModelError.self) { try DecoderLM.load(folder: modelsFixture("clip-vision")) }
    }
}
