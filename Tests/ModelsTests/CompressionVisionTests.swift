import Testing
import Evaluation
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
        let c = try MethodCatalog.compression(method: method, budget: budget, parameters: parameters)
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
        #expect(p.decoder.positions == Array(0..<n) && p.cache.nextPosition == n && !p.cache.decodePositionsPerLayer)
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
        let c = try MethodCatalog.compression(method: method, budget: .ratio(0.5))
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
        let c = try MethodCatalog.compression(method: "globalcom2", budget: .count(16))
        let p = try model.prefill(inputIDs: ids, pixelValues: pixels, visionHook: c.visionHook)
        let r = c.report()
        #expect(p.visualTokensAfter == [64] && r.achievedVisualTokens == 64)
        #expect(r.notes.contains { $0.contains("no-op") && $0.contains("LLaVA-1.5") })
        // Nothing is recorded for a single tile, so the no-op costs no attention capture.
        let hook = try #require(c.visionHook)
        #expect(hook.captureRequest(tileCount: 1).attention.isEmpty && !hook.captureRequest(tileCount: 3).attention.isEmpty)
    }

    @Test(arguments: ["llava-next-wide", "llava-next-tall"])
    func globalCom2OnNeXT(_ name: String) throws {
        let model = try LlavaModel.load(folder: modelsFixture(name))
        let ref = try ModelsReference(name)
        let pixels = try ref.tensor("pixel_values")
        let tiles = try (0..<pixels.shape[0]).map { try pixels.rows(($0 * 3 * 28)..<(($0 + 1) * 3 * 28)).reshaped([3, 28, 28]) }
        let size = try ref.ints("image_size")
        let c = try MethodCatalog.compression(method: "globalcom2", budget: .ratio(0.5))
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

extension CompressionVisionTests {
    /// FiCoCo-V merges inside the tower: the fixture's 3-layer tower reads layer 1's output, so
    /// layer 1 (its second half up to the feature layer) merges r = 64 − 40 = 24 tokens; the
    /// 'default' strategy then drops row 0 (a patch, by the code's ordering) and the [CLS] row
    /// reaches the projector with 39 patches.
    @Test func fiCoCoVMergesInsideTheTower() throws {
        let model = try CompressionFixture.model()
        let (ids, pixels) = try CompressionFixture.inputs()
        let c = try MethodCatalog.compression(method: "ficoco_v", budget: .count(40))
        let p = try model.prefill(inputIDs: ids, pixelValues: pixels, hook: c.prefillHook, visionHook: c.visionHook)
        let r = c.report()
        #expect(r.visualTokensBefore == 64 && r.requestedVisualTokens == 40 && r.achievedVisualTokens == 40, "\(r.notes)")
        #expect(p.visualTokensAfter == [40] && p.cache.tokenCounts == [52, 52, 52, 52])
        #expect(r.notes.contains { $0.contains("r = 24 merged per layer in tower layers 1…1") })
        #expect(r.notes.contains { $0.contains("[CLS] row reaches the projector") })
        #expect(r.keptIndices.count == 39 && Set(r.keptIndices).count == 39 && r.keptIndices.allSatisfy { (0..<64).contains($0) })
        #expect(r.scoringSeconds > 0)
        // The merge done by hand at the tower's layer-1 step gives the features the LLM received.
        let tower = model.vision
        var state = FiCoCoV.State(size: 64)
        let method = try FiCoCoV(.init(r: 24, penaltyCount: 16, stateSize: 64))
        let out = try tower.forward(pixels, hiddenStates: [2], afterAttention: { layer, hidden, q, k in
            guard layer == 1 else { return nil }
            let heads = tower.config.heads, d = tower.config.headDim
            let logits = try FiCoCoV.headMeanLogits(queries: try q.splittingHeads(heads).scaled(by: 1 / Float(d).squareRoot()),
                                                    keys: try k.splittingHeads(heads))
            return try method.layer(hidden: hidden, logits: logits, state: &state).output
        })
        let features = try out.hiddenStates[2]!.rows(1..<41)
        let projected = try model.projector2(try model.projector1(features, store: model.store).activated(model.config.projectorAct), store: model.store)
        let again = try MethodCatalog.compression(method: "ficoco_v", budget: .count(40))
        let spliced = try model.embedPrompt(inputIDs: ids, images: [.single(pixels)], visionHook: again.visionHook).embeddings.rows(4..<44)
        #expect(modelsMaxAbs(projected, spliced) < 1e-5)
        let t = try model.decodeStep(token: DecoderLM.argmax(p.logits), cache: p.cache)
        #expect(t.values.allSatisfy { $0.isFinite })
    }

    /// A budget needing 2r > T is capped at ⌊T/2⌋ (the code's remapping limit) and says so.
    @Test func fiCoCoVCapsRAtHalfTheTokens() throws {
        let model = try CompressionFixture.model()
        let (ids, pixels) = try CompressionFixture.inputs()
        let c = try MethodCatalog.compression(method: "ficoco_v", budget: .count(16))
        _ = try model.prefill(inputIDs: ids, pixelValues: pixels, hook: c.prefillHook, visionHook: c.visionHook)
        let r = c.report()
        #expect(r.requestedVisualTokens == 16 && r.achievedVisualTokens == 32, "\(r.notes)")
        #expect(r.notes.contains { $0.contains("r capped at 32") })
    }

    @Test func fiCoCoVRefusesAnyResAndBadParameters() throws {
        #expect(throws: ModelCompressionError.self) { try MethodCatalog.compression(method: "ficoco_v", budget: .count(16), parameters: ["r": "-1"]) }
        #expect(throws: (any Error).self) { try MethodCatalog.compression(method: "ficoco_v", budget: .count(16), parameters: ["quantile": "2"]) }
        let model = try LlavaModel.load(folder: modelsFixture("llava-next-wide"))
        let ref = try ModelsReference("llava-next-wide")
        let pixels = try ref.tensor("pixel_values")
        let tiles = try (0..<pixels.shape[0]).map { try pixels.rows(($0 * 3 * 28)..<(($0 + 1) * 3 * 28)).reshaped([3, 28, 28]) }
        let size = try ref.ints("image_size")
        let c = try MethodCatalog.compression(method: "ficoco_v", budget: .count(8))
        #expect(throws: ModelCompressionError.self) {
            _ = try model.generate(inputIDs: try ref.ints("input_ids"), images: [.anyRes(tiles: tiles, imageHeight: size[0], imageWidth: size[1])],
                                   maxNewTokens: 1, stopTokens: [], hook: nil, visionHook: c.visionHook)
        }
    }
}
