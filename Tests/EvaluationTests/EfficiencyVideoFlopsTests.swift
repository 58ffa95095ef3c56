import Foundation
import Testing
@testable import Evaluation

/// `tokc flops --preset llava-onevision-7b --frames N`: a video's token count, tower and
/// projector per frame, and the video methods' plans.
@Suite struct EfficiencyVideoFlopsTests {
    static func request(frames: Int, method: String? = nil, keep: Int? = nil) throws -> FlopsRequest {
        let shape = try ShapePresets.named("llava-onevision-7b")
        let v = try VideoFlops.visualTokens(shape: shape, frames: frames)
        let plan = try method.map {
            try MethodSchedules.plan(method: $0, keep: keep, context: .init(visual: v.visual, llmLayers: shape.llm.layers, visionLayers: 26,
                                                                            encoderTokensPerPass: 729, video: (frames, v.tokensPerFrame)))
        }
        var r = FlopsRequest(shape: shape, visualTokens: v.visual, plan: plan)
        r.videoFrames = frames
        return r
    }

    @Test func thirtyTwoFramesOfTheSevenB() throws {
        let shape = try ShapePresets.named("llava-onevision-7b")
        #expect(shape.videoTokensPerFrame == 196)  // 27×27 SigLIP patches pooled to 14×14
        let r = try Self.request(frames: 32)
        #expect(r.visualTokens == 32 * 196 + 1)
        let video = try FlopsCalculator.report(r), image = try FlopsCalculator.report(FlopsRequest(shape: shape, visualTokens: 729))
        // One tower pass and 729 projector rows per frame.
        #expect(abs(video.stages.vision - 32 * image.stages.vision) < 1e-3 * video.stages.vision)
        #expect(abs(video.stages.projector - 32 * image.stages.projector) < 1e-6 * video.stages.projector)
        #expect(video.text.contains("32 frames × 196 pooled + 1 newline"))
    }

    @Test func videoMethodPlans() throws {
        let dycoke = try Self.request(frames: 32, method: "dycoke")
        // The spec's count: 9 whole frames and 23 pruned to 58 = 3098, plus the newline.
        #expect(dycoke.plan.llmVisual == Array(repeating: 3099, count: 28))
        let vidcom2 = try Self.request(frames: 32, method: "vidcom2")
        #expect(vidcom2.plan.llmVisual.allSatisfy { $0 == 1568 + 1 })
        let low = try Self.request(frames: 32, method: "dycoke", keep: 2500)
        #expect(low.plan.llmVisual[0] <= 2501 && low.plan.llmVisual[0] > 2400)
        let fastv = try Self.request(frames: 32, method: "fastv", keep: 1568)
        #expect(fastv.plan.llmVisual[1] == 6273 && fastv.plan.llmVisual[2] == 1568)
        // FastVID's default ρ = 10 %: int(196·0.1) = 19 per frame, 608 of 6272 (the paper's 90.3 % pruned).
        let fastvid = try Self.request(frames: 32, method: "fastvid")
        #expect(fastvid.plan.llmVisual[0] == 608 + 1)
        // PruneVid without --keep: no static position, 32 × int(196·0.5) = 3136 merged rows through layer 10,
        // then int(3136·0.4) = 1254; with --keep the merged count is given.
        let prunevid = try Self.request(frames: 32, method: "prunevid")
        #expect(prunevid.plan.llmVisual == Array(repeating: 3137, count: 11) + Array(repeating: 1255, count: 17))
        let given = try Self.request(frames: 32, method: "prunevid", keep: 1000)
        #expect(given.plan.llmVisual[10] == 1001 && given.plan.llmVisual[11] == 401)
        // FrameFusion: p = 1 − (28·0.3 − 1)/27 at layer 0, so the frame rows summed over the 28 layers are cost·28·V
        // (up to the rounding of the kept count, at most ½ per layer after the first).
        let framefusion = try Self.request(frames: 32, method: "framefusion")
        #expect(framefusion.plan.llmVisual[0] == 6273 && framefusion.plan.llmVisual[1] == 1720 && framefusion.plan.llmVisual.count == 28)
        #expect(abs(Double(framefusion.plan.llmVisual.reduce(0) { $0 + $1 - 1 }) - 0.3 * 28 * 6272) <= 13.5)
        let halfCost = try Self.request(frames: 32, method: "framefusion", keep: 3136)
        #expect(abs(Double(halfCost.plan.llmVisual.reduce(0) { $0 + $1 - 1 }) - 0.5 * 28 * 6272) <= 13.5)
        // HoliTom's outer stage: ρ = 10 % → round(627.2) = 627, every layer.
        let holitom = try Self.request(frames: 32, method: "holitom")
        #expect(holitom.plan.llmVisual == Array(repeating: 628, count: 28))
        #expect(try Self.request(frames: 32, method: "holitom", keep: 1568).plan.llmVisual[0] == 1569)
        let report = try FlopsCalculator.report(dycoke)
        #expect(report.stages.prefill < 0.6 * report.baseline.prefill && report.stages.vision == report.baseline.vision)
    }

    @Test func badVideoRequests() throws {
        #expect(throws: FlopsError.self) { _ = try VideoFlops.visualTokens(shape: try ShapePresets.named("llava-1.5-7b"), frames: 8) }
        #expect(throws: FlopsError.self) { _ = try VideoFlops.visualTokens(shape: try ShapePresets.named("llava-onevision-7b"), frames: 0) }
        #expect(throws: FlopsError.self) { try VideoFlops.checkMethod("visionzip") }
        try VideoFlops.checkMethod("pdrop")
        #expect(throws: FlopsError.self) { _ = try Self.request(frames: 0 + 1, method: "dycoke") }  // TTM needs > 4 frames
        #expect(throws: FlopsError.self) {
            _ = try MethodSchedules.plan(method: "vidcom2", keep: nil, context: .init(visual: 729, llmLayers: 28))
        }
    }

    @Test func onevisionConfigGivesPooledTokensPerFrame() throws {
        let config = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/compressed-video/onevision/config.json").path
        let parsed = try ShapeConfigParser.parse(fileAt: config)
        #expect(parsed.shape.videoTokensPerFrame == 9)  // 5×5 patches pooled to 3×3
    }
}
