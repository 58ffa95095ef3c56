import Testing
import Evaluation
import Tensors
import TokenCompression
@testable import Models

/// Multi-stage LLM-side methods (PDrop, SparseVLM): several cuts, renumbered positions.
@Suite struct CompressionStagedTests {
    func run(_ method: String, budget: Budget, parameters: [String: String] = [:]) throws -> (CompressionRunReport, LlavaPrefillResult, LlavaModel) {
        let model = try CompressionFixture.model()
        let (ids, pixels) = try CompressionFixture.inputs()
        let c = try MethodCatalog.compression(method: method, budget: budget, parameters: parameters)
        let p = try model.prefill(inputIDs: ids, pixelValues: pixels, hook: c.prefillHook, visionHook: c.visionHook)
        return (c.report(), p, model)
    }

    func checkCommon(_ r: CompressionRunReport, _ p: LlavaPrefillResult, _ model: LlavaModel) throws {
        // The cache of every layer holds exactly the rows that went through it — except MustDrop's
        // pruning layers (all four here: layers 0…2 and the final one), cut to the final set.
        let final = p.decoder.keptOriginalIndices.count
        let mustDrop = r.notes.contains { $0.hasPrefix("mustdrop:") }
        #expect(p.cache.tokenCounts == (mustDrop ? Array(repeating: final, count: 4) : p.decoder.tokensPerLayer))
        // Inserted merged rows (SparseVLM's recycling) are not prompt tokens; the report leaves them out.
        #expect(r.keptIndices == p.decoder.keptOriginalIndices.filter { $0 != PrefillState.insertedRow })
        let keptSet = Set(r.keptIndices)
        #expect((0..<4).allSatisfy(keptSet.contains) && (68..<76).allSatisfy(keptSet.contains))
        #expect(r.positionPolicy == .renumber)
        let rows = p.decoder.keptOriginalIndices.count
        #expect(p.decoder.positions == Array(0..<rows))
        #expect(p.cache.nextPosition == rows)
        // Once they pruned, renumbering methods decode each layer's new token at that layer's cached length.
        #expect(p.cache.decodePositionsPerLayer == (Set(p.decoder.tokensPerLayer).count > 1))
        let before = p.cache.tokenCounts
        var logits = p.logits
        for _ in 0..<2 { logits = try model.decodeStep(token: DecoderLM.argmax(logits), cache: p.cache) }
        #expect(p.cache.tokenCounts == before.map { $0 + 2 } && p.cache.nextPosition == rows + 2)
        #expect(logits.values.allSatisfy { $0.isFinite })
    }

    @Test func pdropStagesShrinkTheCache() throws {
        let (r, p, model) = try run("pdrop", budget: .count(32))
        try checkCommon(r, p, model)
        let visual = p.decoder.tokensPerLayer.map { $0 - 12 }
        #expect(visual[0] == 64 && zip(visual, visual.dropFirst()).allSatisfy { $0 > $1 }, "\(visual)")
        // λ = 32/64: 64 → 32 → 16 → 8.
        #expect(visual == [64, 32, 16, 8], "\(visual)")
        #expect(r.achievedVisualTokens == 32)
        #expect(r.notes.contains { $0.contains("stage layers [1, 2, 3]") })
    }

    @Test func pdropFixedLambda() throws {
        let (r, p, model) = try run("pdrop", budget: .count(32), parameters: ["lambda": "0.5", "layers": "2"])
        try checkCommon(r, p, model)
        #expect(p.decoder.tokensPerLayer == [76, 76, 44, 44])
    }

    @Test func pdropNoOp() throws {
        let (r, p, _) = try run("pdrop", budget: .count(64))
        #expect(p.decoder.tokensPerLayer == [76, 76, 76, 76])
        #expect(r.notes.contains { $0.contains("no-op") })
    }
}

extension CompressionStagedTests {
    @Test func sparseVLMPrunesAtEachSparseLayer() throws {
        let (r, p, model) = try run("sparsevlm", budget: .count(16))
        try checkCommon(r, p, model)
        let visual = p.decoder.tokensPerLayer.map { $0 - 12 }
        // Sparse layers [0, 1, 2] on 4 layers: three cuts, each keeping min(target, visual − 1) and
        // adding the clusters of the best 30 % (+1) of the deleted tokens.
        let schedule = SparseVLMHook.scaledSchedule(target: 16, imageTokens: 64).schedule
        var expected = [64]
        for target in schedule {
            let v = expected.last!
            let k = SparseVLM.keepCount(target: target, visualCount: v)
            expected.append(k + SparseVLM.clusterCount(candidates: SparseVLM.recycleCount(deleted: v - k, ratio: 0.3)))
        }
        #expect(visual == expected, "\(visual) \(r.notes)")
        // Merged rows are not prompt positions: the report's kept indices name real tokens only.
        #expect(r.keptIndices.allSatisfy { $0 >= 0 })
        #expect(p.decoder.keptOriginalIndices.contains(PrefillState.insertedRow))
        print("sparsevlm report:", r.achievedVisualTokens, r.notes)
    }
}

extension CompressionStagedTests {
    @Test func mustDropFiltersWithItsKeySet() throws {
        let (r, p, model) = try run("mustdrop", budget: .count(16), parameters: ["global": "0.02", "individual": "0.05"])
        try checkCommon(r, p, model)
        let visual = p.decoder.tokensPerLayer.map { $0 - 12 }
        #expect(visual[0] == 64 && visual.last! < 64, "\(visual) \(r.notes)")
        // The key set (top 8 % = 6 patches by [CLS] attention) is never dropped.
        #expect(r.notes.contains { $0.contains("key set of 6 patches") })
        #expect(r.keptIndices.filter { CompressionFixture.imageRange.contains($0) }.count >= 6)
    }

    @Test func mustDropBudgetPicksReadmeThresholds() throws {
        let (r, p, model) = try run("mustdrop", budget: .count(16))
        try checkCommon(r, p, model)
        #expect(r.notes.contains { $0.contains("≈128-token setting") })
    }
}

extension CompressionStagedTests {
    /// LLM-side methods on a LLaVA-NeXT prompt (2-layer decoder, so the cut is moved to layer 1):
    /// the image span (thumbnail, grid rows, image_newline rows) is what they prune.
    @Test(arguments: [("fastv", ["layer": "1"]), ("k-norm", ["layer": "1"]), ("dart", ["layer": "1", "pivot_text": "2"]),
                      ("pdrop", ["layers": "1"]), ("sparsevlm", [:]), ("mustdrop", ["global": "0.05", "individual": "0.1"])])
    func llmSideMethodsOnLlavaNext(_ method: String, _ parameters: [String: String]) throws {
        let model = try LlavaModel.load(folder: modelsFixture("llava-next-wide"))
        let ref = try ModelsReference("llava-next-wide")
        let pixels = try ref.tensor("pixel_values")
        let tiles = try (0..<pixels.shape[0]).map { try pixels.rows(($0 * 3 * 28)..<(($0 + 1) * 3 * 28)).reshaped([3, 28, 28]) }
        let size = try ref.ints("image_size")
        let ids = try ref.ints("input_ids")
        let c = try MethodCatalog.compression(method: method, budget: .count(12), parameters: parameters)
        let (tokens, p) = try model.generate(inputIDs: ids, images: [.anyRes(tiles: tiles, imageHeight: size[0], imageWidth: size[1])],
                                             maxNewTokens: 3, stopTokens: [], hook: c.prefillHook, visionHook: c.visionHook)
        let r = c.report()
        #expect(tokens.count == 3)
        #expect(r.visualTokensBefore == 34)
        // Layer 1 ran on fewer rows (MustDrop then cuts layer 0's cache to the final set as well).
        #expect(p.decoder.tokensPerLayer[1] < p.decoder.tokensPerLayer[0], "\(method): \(p.decoder.tokensPerLayer) \(r.notes)")
        #expect(method == "mustdrop" ? p.cache.tokenCounts[0] == p.cache.tokenCounts[1] : p.cache.tokenCounts[1] < p.cache.tokenCounts[0])
        let keptSet = Set(r.keptIndices)
        #expect((0..<3).allSatisfy(keptSet.contains) && (37..<40).allSatisfy(keptSet.contains))
    }
}

extension CompressionStagedTests {
    /// The window merge runs inside the tower after layer 0: with 2×2 windows on the fixture's 8×8
    /// grid and a threshold every window passes, the 64 patches become 16 merged rows, and the
    /// features the LLM receives equal the tower run by hand with `MustDrop.windowMerge` after layer 0.
    @Test func mustDropWindowMergeInsideTheTower() throws {
        let parameters = ["window": "2", "merge_threshold": "-1", "global": "0", "individual": "0"]
        let (r, p, model) = try run("mustdrop", budget: .count(16), parameters: parameters)
        // The prompt the decoder saw: 4 system rows, 16 merged image rows, 8 text rows.
        #expect(p.imageSpans == [4..<20] && p.cache.tokenCounts == p.decoder.tokensPerLayer)
        #expect(p.decoder.positions == Array(0..<28) && r.positionPolicy == .renumber)
        let t = try model.decodeStep(token: DecoderLM.argmax(p.logits), cache: p.cache)
        #expect(t.values.allSatisfy { $0.isFinite } && p.cache.nextPosition == 29)
        #expect(r.visualTokensBefore == 64 && p.visualTokensAfter == [16])
        #expect(p.decoder.tokensPerLayer.map { $0 - 12 } == [16, 16, 16, 16], "\(r.notes)")
        #expect(r.notes.contains { $0.contains("16 of 16 2×2 windows merged (64 → 16 patch rows)") })
        // Each merged window stands at its last (bottom-right) patch.
        let corners = Set((0..<4).flatMap { gy in (0..<4).map { gx in (2 * gy + 1) * 8 + 2 * gx + 1 } })
        let rowPatches = try #require(r.visualRowPatches)
        #expect(rowPatches.count == 16 && rowPatches.allSatisfy { $0.count == 4 })
        #expect(Set(rowPatches.flatMap { $0 }) == Set(0..<64) && Set(rowPatches.map { $0.max()! }) == corners)
        #expect(r.scoringSeconds > 0)

        let (ids, pixels) = try CompressionFixture.inputs()
        let method = MustDrop.Parameters(windowHeight: 2, windowWidth: 2, similarityThreshold: -1)
        let out = try model.vision.forward(pixels, hiddenStates: [2], afterLayer: { layer, hidden, _, _ in
            layer == 0 ? try MustDrop.windowMerge(hidden, parameters: method).tokens : nil
        })
        let features = try out.hiddenStates[2]!.rows(1..<17)
        let projected = try model.projector2(try model.projector1(features, store: model.store).activated(model.config.projectorAct), store: model.store)
        let again = try MethodCatalog.compression(method: "mustdrop", budget: .count(16), parameters: parameters)
        let spliced = try model.embedPrompt(inputIDs: ids, images: [.single(pixels)], visionHook: again.visionHook).embeddings.rows(4..<20)
        #expect(modelsMaxAbs(projected, spliced) < 1e-5)
    }

    @Test func mustDropWindowMergeSaysWhyItDidNotRun() throws {
        // 3×3 windows do not tile the fixture's 8×8 grid.
        let (r, p, _) = try run("mustdrop", budget: .count(16), parameters: ["global": "0.02", "individual": "0.05"])
        #expect(p.visualTokensAfter == [64] && r.visualRowPatches == nil)
        #expect(r.notes.contains { $0.contains("8×8 patch grid does not split into 3×3 windows") })
        // A budget asking for every token merges nothing either.
        let (full, q, _) = try run("mustdrop", budget: .count(64), parameters: ["window": "2", "merge_threshold": "-1"])
        #expect(q.visualTokensAfter == [64] && full.notes.contains { $0.contains("no-op") })
        #expect(throws: ModelCompressionError.self) { try MethodCatalog.compression(method: "mustdrop", budget: .count(16), parameters: ["window": "1"]) }
        #expect(throws: CompressionError.self) { try MethodCatalog.compression(method: "mustdrop", budget: .count(16), parameters: ["window": "x"]) }
    }
}
