import Testing
import Tensors
import TokenCompression
@testable import Models

/// Vision-side methods end to end: fewer visual rows reach the projector and the decoder, text
/// is untouched, positions are contiguous, decoding continues after the shorter prompt.
@Suite struct CompressionVisionTests {
    static let budgeted: [(String, Int)] = [("fastervlm", 16), ("hired", 16), ("visionzip", 16), ("pooling", 16)]

    func check(_ method: String, budget: Budget, parameters: [String: String] = [:]) throws -> (CompressionRunReport, LlavaPrefillResult) {
        let model = try CompressionFixture.model()
        let (ids, pixels) = try CompressionFixture.inputs()
        let c = try ModelCompression.make(method: method, budget: budget, parameters: parameters)
        #expect(c.prefillHook == nil && c.visionHook != nil)
        let p = try model.prefill(inputIDs: ids, pixelValues: pixels, hook: c.prefillHook, visionHook: c.visionHook)
        let r = c.report()
        let kept = r.achievedVisualTokens
        #expect(r.visualTokensBefore == 64)
        #expect(p.visualTokensBefore == [64] && p.visualTokensAfter == [kept])
        #expect(r.keptIndices.count == kept && r.keptIndices.allSatisfy { (0..<64).contains($0) })
        // System and text tokens are all there, around the shorter image span.
        let n = 12 + kept
        #expect(p.expandedInputIDs == Array(ids[0..<4]) + Array(repeating: 98, count: kept) + Array(ids[68...]))
        #expect(p.imageSpans == [4..<(4 + kept)])
        #expect(p.cache.tokenCounts == [n, n, n, n])
        #expect(p.decoder.positions == Array(0..<n) && p.cache.nextPosition == n)
        var logits = p.logits
        for _ in 0..<2 { logits = try model.decodeStep(token: DecoderLM.argmax(logits), cache: p.cache) }
        #expect(p.cache.tokenCounts == [n + 2, n + 2, n + 2, n + 2] && p.cache.nextPosition == n + 2)
        #expect(logits.values.allSatisfy { $0.isFinite })
        return (r, p)
    }

    @Test(arguments: budgeted)
    func budgetedMethodKeepsTheBudget(_ method: String, _ expected: Int) throws {
        let (r, _) = try check(method, budget: .count(16))
        #expect(r.requestedVisualTokens == 16)
        #expect(r.achievedVisualTokens == expected, "\(method): \(r.notes)")
        #expect(r.positionPolicy == .notApplicable)
    }

    @Test func ratioBudget() throws {
        let (r, _) = try check("fastervlm", budget: .ratio(0.5))
        #expect(r.requestedVisualTokens == 32 && r.achievedVisualTokens == 32)
    }

    @Test(arguments: ["prumerge", "prumerge_plus"])
    func adaptivePruMergeRunsAndSaysSo(_ method: String) throws {
        let (r, _) = try check(method, budget: .count(16))
        #expect(r.achievedVisualTokens >= 2 && r.achievedVisualTokens < 64)
        #expect(r.notes.contains { $0.contains("adaptive") })
    }

    @Test func nonAdaptivePruMergeKeepsTheBudget() throws {
        let (r, _) = try check("prumerge", budget: .count(16), parameters: ["adaptive": "false"])
        #expect(r.achievedVisualTokens == 16, "\(r.notes)")
    }

    @Test(arguments: ["fastervlm", "hired", "visionzip", "pooling"])
    func budgetCoveringEveryVisualTokenIsAnExplicitNoOp(_ method: String) throws {
        let (r, p) = try check(method, budget: .count(64))
        #expect(r.achievedVisualTokens == 64 && p.visualTokensAfter == [64])
        #expect(r.notes.contains { $0.contains("no-op") })
    }

    @Test(arguments: ["fastervlm", "hired", "visionzip", "pooling"])
    func llavaNextTilesRun(_ method: String) throws {
        let model = try LlavaModel.load(folder: modelsFixture("llava-next-wide"))
        let ref = try ModelsReference("llava-next-wide")
        let pixels = try ref.tensor("pixel_values")
        let tiles = try (0..<pixels.shape[0]).map { try pixels.rows(($0 * 3 * 28)..<(($0 + 1) * 3 * 28)).reshaped([3, 28, 28]) }
        let size = try ref.ints("image_size")
        let c = try ModelCompression.make(method: method, budget: .ratio(0.5))
        let (tokens, p) = try model.generate(inputIDs: try ref.ints("input_ids"), images: [.anyRes(tiles: tiles, imageHeight: size[0], imageWidth: size[1])],
                                             maxNewTokens: 3, stopTokens: [], visionHook: c.visionHook)
        let r = c.report()
        #expect(tokens.count == 3)
        #expect(p.visualTokensAfter[0] < p.visualTokensBefore[0])
        #expect(r.achievedVisualTokens < r.visualTokensBefore)
        #expect(r.notes.contains { $0.contains(method == "hired" ? "budget split" : "per tile") }, "\(r.notes)")
    }
}

extension CompressionVisionTests {
    @Test func globalCom2IsAnExplicitNoOpOnLlava15() throws {
        let model = try CompressionFixture.model()
        let (ids, pixels) = try CompressionFixture.inputs()
        let c = try ModelCompression.make(method: "globalcom2", budget: .count(16))
        let p = try model.prefill(inputIDs: ids, pixelValues: pixels, visionHook: c.visionHook)
        let r = c.report()
        #expect(p.visualTokensAfter == [64] && r.achievedVisualTokens == 64)
        #expect(r.notes.contains { $0.contains("no-op") && $0.contains("LLaVA-1.5") })
    }

    @Test(arguments: ["llava-next-wide", "llava-next-tall"])
    func globalCom2OnNeXT(_ name: String) throws {
        let model = try LlavaModel.load(folder: modelsFixture(name))
        let ref = try ModelsReference(name)
        let pixels = try ref.tensor("pixel_values")
        let tiles = try (0..<pixels.shape[0]).map { try pixels.rows(($0 * 3 * 28)..<(($0 + 1) * 3 * 28)).reshaped([3, 28, 28]) }
        let size = try ref.ints("image_size")
        let c = try ModelCompression.make(method: "globalcom2", budget: .ratio(0.5))
        let (tokens, p) = try model.generate(inputIDs: try ref.ints("input_ids"), images: [.anyRes(tiles: tiles, imageHeight: size[0], imageWidth: size[1])],
                                             maxNewTokens: 3, stopTokens: [], visionHook: c.visionHook)
        let r = c.report()
        #expect(tokens.count == 3)
        #expect(p.visualTokensAfter[0] < p.visualTokensBefore[0])
        #expect(r.achievedVisualTokens < r.visualTokensBefore && r.achievedVisualTokens == r.keptIndices.count, "\(r.notes)")
        // The thumbnail keeps int(N·r) = 8 of 16 patches.
        #expect(r.keptIndices.filter { $0 < 16 }.count == 8)
    }
}
