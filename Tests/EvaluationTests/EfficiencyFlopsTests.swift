import Foundation
import Testing
@testable import Evaluation

/// The DESIGN.md per-layer formula term by term, on shapes small enough to count by hand.
@Suite struct EfficiencyFlopsTests {
    /// d = 8, 2 heads of 4, 1 KV head (d_kv = 4), m = 16 gated, n = 3:
    /// projections 2·(2·3·8·8 + 2·3·8·4) = 1152, attention 2·2·9·8 = 288, MLP 2·3·3·8·16 = 2304.
    static let efficiencyTiny = TransformerShape(layers: 1, hidden: 8, heads: 2, kvHeads: 1, headDim: 4, mlpWidth: 16, gatedMLP: true, vocab: 10)

    @Test func layerTermsByHand() {
        #expect(LayerFlops.prefill(Self.efficiencyTiny, tokens: 3, .design) == 1152 + 288 + 2304)
        #expect(LayerFlops.prefill(Self.efficiencyTiny, tokens: 3, .init(unit: .macs)) == (1152 + 288 + 2304) / 2)
        // Plain MLP: 2·2·n·d·m, and --ffn-matrices never changes a plain (ViT) MLP.
        var plain = Self.efficiencyTiny
        plain.gatedMLP = false
        #expect(LayerFlops.prefill(plain, tokens: 3, .design) == 1152 + 288 + 1536)
        #expect(LayerFlops.prefill(plain, tokens: 3, .init(ffnMatrices: 3)) == 1152 + 288 + 1536)
        #expect(LayerFlops.prefill(Self.efficiencyTiny, tokens: 3, .init(ffnMatrices: 2)) == 1152 + 288 + 1536)
    }

    /// Decode: one query over the KV length n + t + 1 of each layer, then the LM head per token.
    @Test func decodeGrowsTheKVLength() throws {
        let shape = ModelShape(name: "tiny", llm: Self.efficiencyTiny, vision: nil, defaultVisualTokens: 0)
        let r = try FlopsCalculator.report(FlopsRequest(shape: shape, visualTokens: 0, systemTokens: 2, textTokens: 1, decodeTokens: 2))
        // Step t attends over 3 + t + 1 keys: projections 2·(2·8·8 + 2·8·4) = 384, MLP 2·3·8·16 = 768.
        let step = { (keys: Double) in 384 + 2 * 2 * keys * 8 + 768 }
        #expect(r.stages.decode == step(4) + step(5))
        #expect(r.stages.lmHead == 2 * 3 * 8 * 10)
        #expect(r.stages.vision == 0 && r.stages.projector == 0)
    }

    /// CLIP-L/336 + 2-layer projector: 24 layers on 577 tokens, patch embedding of 576 patches.
    @Test func visionAndProjectorOfLLaVA() throws {
        let r = try EfficiencyPublishedTests.efficiencyReport("llava-1.5-7b", convention: .init(unit: .macs))
        let n = 577.0, d = 1024.0, m = 4096.0
        let layer = 4 * n * d * d + 2 * n * n * d + 2 * n * d * m
        let embed = 576.0 * (3 * 14 * 14) * d
        #expect(abs(r.stages.vision - (24 * layer + embed)) < 1)
        #expect(r.stages.projector == 576 * (1024 * 4096 + 4096 * 4096))
    }

    /// Vision-side pruning shrinks the projector and every LLM layer but not the encoder.
    @Test func visionSideMethodStages() throws {
        let r = try EfficiencyPublishedTests.efficiencyReport("llava-1.5-7b", method: "fastervlm", keep: 144)
        #expect(r.stages.vision == r.baseline.vision)
        #expect(r.stages.projector == r.baseline.projector / 4)
        #expect(r.request.plan.llmVisual == Array(repeating: 144, count: 32))
    }

    /// FiCoCo-V also makes the late encoder layers cheaper.
    @Test func ficocoShrinksTheEncoder() throws {
        let r = try EfficiencyPublishedTests.efficiencyReport("llava-1.5-7b", method: "ficoco_v")
        #expect(r.request.plan.llmVisual.first == 114)
        #expect(r.request.plan.visionTokensPerLayer?[12] == 577)
        #expect(r.request.plan.visionTokensPerLayer?[13] == 535)
        #expect(r.stages.vision < r.baseline.vision)
    }

    /// LLaVA-NeXT: 2880 visual tokens = 5 CLIP passes; Qwen2-VL: one pass over 4 patches per token.
    @Test func visionPasses() throws {
        let next = try EfficiencyPublishedTests.efficiencyReport("llava-next-7b")
        let one = try EfficiencyPublishedTests.efficiencyReport("llava-1.5-7b")
        #expect(abs(next.stages.vision - 5 * one.stages.vision) < 1)
        let qwen = try ShapePresets.named("qwen2-vl-7b")
        let r = try FlopsCalculator.report(FlopsRequest(shape: qwen, visualTokens: 256, convention: .init(unit: .macs)))
        let n = 1024.0, d = 1280.0
        let layer = 4 * n * d * d + 2 * n * n * d + 2 * n * d * 5120
        #expect(abs(r.stages.vision - (32 * layer + n * (2 * 14 * 14 * 3) * d)) < 1)
        #expect(r.stages.projector == 256 * (5120 * 5120 + 5120 * 3584))
    }

    @Test func jsonCarriesScheduleAndReductions() throws {
        let r = try EfficiencyPublishedTests.efficiencyReport("llava-1.5-7b", method: "dart")
        let text = try r.jsonString()
        #expect(text.contains("\"visualSchedule\""))
        #expect(text.contains("\"reduction\""))
        #expect(r.text.contains("576×2 + 132×30"))
    }

    @Test func rejectsBadRequests() throws {
        let shape = try ShapePresets.named("llava-1.5-7b")
        var bad = FlopsRequest(shape: shape, visualTokens: 576)
        bad.plan.llmVisual = [576]
        #expect(throws: FlopsError.self) { try FlopsCalculator.report(bad) }
        #expect(throws: FlopsError.self) { try FlopsCalculator.report(FlopsRequest(shape: shape, visualTokens: 576, textTokens: -1)) }
        #expect(throws: FlopsError.self) { try ShapePresets.named("gpt-5") }
    }
}
