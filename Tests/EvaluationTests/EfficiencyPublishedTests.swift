import Foundation
import Testing
@testable import Evaluation

/// Published and spec-computed reference numbers (methods/lvlm.md §12) that the calculator must
/// reproduce under the convention each source uses.
@Suite struct EfficiencyPublishedTests {
    static func efficiencyReport(_ preset: String, method: String? = nil, keep: Int? = nil, system: Int = 35, text: Int = 30,
                                 convention: FlopsConvention = .design, decode: Int = 0) throws -> FlopsReport {
        let shape = try ShapePresets.named(preset)
        let v = shape.vision!
        let context = MethodSchedules.Context(visual: shape.defaultVisualTokens, llmLayers: shape.llm.layers,
                                              visionLayers: v.encoder.layers, tokensPerPass: v.tokensPerPass,
                                              encoderTokensPerPass: v.patchesPerPass + (v.hasCLS ? 1 : 0))
        let plan = try MethodSchedules.plan(method: method ?? "none", keep: keep, context: context)
        return try FlopsCalculator.report(FlopsRequest(shape: shape, visualTokens: shape.defaultVisualTokens, systemTokens: system,
                                                       textTokens: text, decodeTokens: decode, plan: plan, convention: convention))
    }

    /// §12.1: LLaVA-1.5-7B, n0 = 641 → 3.33 T (FastV formula, 2ndm) / 4.26 T (SparseVLM's 3ndm).
    @Test func llava7BFullPrefillAt641() throws {
        let two = try Self.efficiencyReport("llava-1.5-7b", convention: .fastVPaper)
        let three = try Self.efficiencyReport("llava-1.5-7b", convention: .sparseVLMCode)
        #expect(abs(two.stages.prefill / 1e12 - 3.334) < 0.001)
        #expect(abs(three.stages.prefill / 1e12 - 4.259) < 0.001)
        #expect(String(format: "%.2f", two.stages.prefill / 1e12) == "3.33")
        #expect(String(format: "%.2f", three.stages.prefill / 1e12) == "4.26")
    }

    /// §12.1: with n0 = 671 (60 system + text tokens): 3.50 T / 4.46 T and FastV 41.0 %.
    @Test func llava7BFullPrefillAt671() throws {
        let two = try Self.efficiencyReport("llava-1.5-7b", text: 60, convention: .fastVPaper)
        let three = try Self.efficiencyReport("llava-1.5-7b", text: 60, convention: .sparseVLMCode)
        #expect(String(format: "%.2f", two.stages.prefill / 1e12) == "3.50")
        #expect(String(format: "%.2f", three.stages.prefill / 1e12) == "4.46")
        let fastv = try Self.efficiencyReport("llava-1.5-7b", method: "fastv", text: 60, convention: .fastVPaper)
        #expect(String(format: "%.1f", 100 * FlopsReport.reduction(fastv.stages.prefill, of: fastv.baseline.prefill)) == "41.0")
    }

    /// §12.1: FastV K=2, R=50 % at n0 = 641 → 42.9 % prefill reduction (2ndm).
    @Test func fastVReductionAt641() throws {
        let r = try Self.efficiencyReport("llava-1.5-7b", method: "fastv", convention: .fastVPaper)
        #expect(r.request.plan.llmVisual == Array(repeating: 576, count: 2) + Array(repeating: 288, count: 30))
        #expect(String(format: "%.1f", 100 * FlopsReport.reduction(r.stages.prefill, of: r.baseline.prefill)) == "42.9")
    }

    /// FastV README "≈45 % theoretical FLOPs reduction" (K=2, R=50 %): reproduced with system +
    /// image tokens only (n = 611): 7B 44.9 %, 13B 45.4 %; n = 576 gives 47.6 %.
    @Test func fastVReadme45Percent() throws {
        let r7 = try Self.efficiencyReport("llava-1.5-7b", method: "fastv", text: 0, convention: .fastVPaper)
        let r13 = try Self.efficiencyReport("llava-1.5-13b", method: "fastv", text: 0, convention: .fastVPaper)
        let bare = try Self.efficiencyReport("llava-1.5-7b", method: "fastv", system: 0, text: 0, convention: .fastVPaper)
        func pct(_ r: FlopsReport) -> String { String(format: "%.1f", 100 * FlopsReport.reduction(r.stages.prefill, of: r.baseline.prefill)) }
        #expect(pct(r7) == "44.9")
        #expect(pct(r13) == "45.4")
        #expect(pct(bare) == "47.6")
    }

    /// §12.3: LLaVA-1.5-7B fp16 holds 2·32·4096·2 B = 0.5 MiB per token; 13B 0.78125 MiB;
    /// Qwen2-7B (GQA, 4 KV heads of 128) 2·28·512·2 = 57 344 B.
    @Test func kvCachePerToken() throws {
        #expect(try Self.efficiencyReport("llava-1.5-7b").kvBytesPerToken == 524_288)
        #expect(try Self.efficiencyReport("llava-1.5-13b").kvBytesPerToken == 819_200)
        #expect(try Self.efficiencyReport("qwen2-vl-7b").kvBytesPerToken == 57_344)
        let full = try Self.efficiencyReport("llava-1.5-7b")
        #expect(full.kvBytesPrefill == 641 * 524_288)
    }

    /// KV cache follows the layer schedule: FastV keeps 641 tokens in layers 0–1 and 353 after.
    @Test func kvCacheFollowsSchedule() throws {
        let r = try Self.efficiencyReport("llava-1.5-7b", method: "fastv", decode: 10)
        let perLayerToken = 2.0 * 4096 * 2
        #expect(r.kvBytesPrefill == perLayerToken * Double(2 * 641 + 30 * 353))
        #expect(r.kvBytesFinal == r.kvBytesPrefill + perLayerToken * 32 * 10)
    }

    /// SparseVLM's counter: MACs, 3ndm, each layer at its INPUT length, LLM prefill only. With the
    /// 192 schedule (576×3 + 309×4 + 204×9 + 113×16) and 65 non-image tokens: 1.78 T vs 4.26 T.
    @Test func sparseVLMCounterConvention() throws {
        let r = try Self.efficiencyReport("llava-1.5-7b", method: "sparsevlm", keep: 192, convention: .sparseVLMCode)
        let (d, m) = (4096.0, 11008.0)
        let expected = r.request.llmTokensPerLayer.reduce(0.0) { acc, n in
            let x = Double(n)
            return acc + 4 * x * d * d + 2 * x * x * d + 3 * x * d * m
        }
        #expect(abs(r.stages.prefill - expected) / expected < 1e-12)
        #expect(String(format: "%.2f", r.stages.prefill / 1e12) == "1.78")
    }
}
