import Testing
import TokenCompression
import Tensors
@testable import Models

/// Keeps fixed rows before one layer and records what it saw.
final class ModelsFixedPruneHook: PrefillHook {
    let layer: Int
    let rows: [Int]
    let policy: PositionPolicy
    let recordLayer: Int?
    var seenStates: [Int: (rows: Int, keys: [Int]?, attention: [Int]?, imageRows: [Int])] = [:]
    var summary: PrefillSummary?

    init(layer: Int, rows: [Int], policy: PositionPolicy = .keepOriginal, recordLayer: Int? = nil) {
        self.layer = layer
        self.rows = rows
        self.policy = policy
        self.recordLayer = recordLayer
    }

    func attentionRecord(layer: Int) -> AttentionRecord {
        layer == recordLayer ? .probabilities(rows: nil) : .none
    }

    func beforeLayer(_ layer: Int, state: PrefillState) throws -> PruneDecision? {
        seenStates[layer] = (state.hidden.rows, state.previousKeys?.shape, state.previousAttention?.values.shape, state.imageRows)
        if layer == self.layer {
            let (q, k) = try state.queriesAndKeys(rows: [0, 1])
            #expect(q.shape == [2, state.headCount * state.headDim])
            #expect(k.shape == [2, state.kvHeadCount * state.headDim])
            return PruneDecision(keptRows: rows, positions: policy)
        }
        return nil
    }

    func afterPrefill(_ summary: PrefillSummary) throws { self.summary = summary }
}

@Suite struct PrefillHookTests {
    /// Pruning before layer 0 with original positions equals transformers on the kept tokens at
    /// those (gapped) positions: the fixture's `logits_positions`.
    @Test func pruneAtLayerZeroMatchesTransformersWithGappedPositions() throws {
        let lm = try DecoderLM.load(folder: modelsFixture("llama"))
        let ref = try ModelsReference("llama")
        let ids = try ref.ints("input_ids"), positions = try ref.ints("position_ids")
        var prompt = Array(repeating: 50, count: positions.last! + 1)
        for (i, p) in positions.enumerated() { prompt[p] = ids[i] }
        let hook = ModelsFixedPruneHook(layer: 0, rows: positions)
        let result = try lm.prefill(inputIDs: prompt, hook: hook)
        #expect(modelsMaxAbs(result.logits, try ref.tensor("logits_positions")) < 1e-4)
        #expect(result.keptOriginalIndices == positions)
        #expect(result.cache.nextPosition == positions.last! + 1)
        #expect(result.tokensPerLayer == [12, 12])
    }

    /// Pruning before layer 1: layer 0 saw every row, layer 1 only the kept ones, as transformers
    /// computes it with the same rows and positions (original or renumbered).
    @Test(arguments: [(PositionPolicy.keepOriginal, "logits_pruned_l1"), (.renumber, "logits_pruned_l1_renumbered")])
    func pruneAtLayerOneMatchesTransformers(_ policy: PositionPolicy, _ key: String) throws {
        let lm = try DecoderLM.load(folder: modelsFixture("llama"))
        let ref = try ModelsReference("llama")
        let rows = try ref.ints("pruned_rows")
        let result = try lm.prefill(inputIDs: try ref.ints("input_ids"), hook: ModelsFixedPruneHook(layer: 1, rows: rows, policy: policy))
        let d = modelsMaxAbs(result.logits, try ref.tensor(key))
        #expect(d < 1e-4, "\(key): \(d)")
        #expect(result.cache.tokenCounts == [12, rows.count])
        #expect(result.cache.nextPosition == (policy == .renumber ? rows.count : rows.last! + 1))
    }

    /// Decoding on the pruned cache (layer 0 full, layer 1 kept rows) continues at position 12,
    /// as transformers computes it with the same rows.
    @Test func decodingAfterPruningMatchesTransformers() throws {
        let lm = try DecoderLM.load(folder: modelsFixture("llama"))
        let ref = try ModelsReference("llama")
        let result = try lm.prefill(inputIDs: try ref.ints("input_ids"), hook: ModelsFixedPruneHook(layer: 1, rows: try ref.ints("pruned_rows")))
        let greedy = try ref.ints("greedy_pruned_l1")
        let step = try lm.decodeStep(token: greedy[0], cache: result.cache)
        let d = modelsMaxAbs(step, try ref.tensor("logits_pruned_l1_step1"))
        #expect(d < 1e-4, "step logits differ by \(d)")
        let again = try lm.prefill(inputIDs: try ref.ints("input_ids"), hook: ModelsFixedPruneHook(layer: 1, rows: try ref.ints("pruned_rows")))
        #expect(try lm.generate(after: again, maxNewTokens: 3, stopTokens: []) == greedy)
    }

    @Test func pruneAtLayerOneShrinksFollowingCachesOnly() throws {
        let lm = try DecoderLM.load(folder: modelsFixture("llama"))
        let ids = [1, 15, 27, 33, 8, 91, 44, 60, 12, 5]
        let full = try lm.prefill(inputIDs: ids)
        let hook = ModelsFixedPruneHook(layer: 1, rows: [0, 1, 5, 8, 9], recordLayer: 0)
        let pruned = try lm.prefill(embeddings: try lm.embed(ids), imageSpans: [2..<8], hook: hook)
        #expect(pruned.cache.tokenCounts == [10, 5])
        #expect(pruned.cache.byteCount < full.cache.byteCount)
        #expect(pruned.cache.byteCount == (10 + 5) * 2 * lm.config.kvHeads * lm.config.headDim * 4)
        #expect(pruned.cache.nextPosition == 10)
        #expect(pruned.positions == [0, 1, 5, 8, 9])
        #expect(hook.seenStates[0]!.keys == nil)
        #expect(hook.seenStates[1]!.keys == [10, lm.config.kvHeads * lm.config.headDim])
        #expect(hook.seenStates[1]!.attention == [lm.config.heads, 10, 10])
        #expect(hook.seenStates[1]!.imageRows == [2, 3, 4, 5, 6, 7])
        #expect(hook.summary?.tokensPerLayer == [10, 5])
        #expect(hook.summary?.pruneEvents.first?.kept == 5)
        // Decoding continues at position 10 and grows every layer's cache by one.
        _ = try lm.decodeStep(token: 3, cache: pruned.cache)
        #expect(pruned.cache.tokenCounts == [11, 6])
        #expect(pruned.cache.nextPosition == 11)
    }

    @Test func renumberedPositions() throws {
        let lm = try DecoderLM.load(folder: modelsFixture("llama"))
        let ids = [1, 15, 27, 33, 8, 91]
        let hook = ModelsFixedPruneHook(layer: 1, rows: [0, 3, 5], policy: .renumber)
        let r = try lm.prefill(inputIDs: ids, hook: hook)
        #expect(r.positions == [0, 1, 2])
        #expect(r.cache.nextPosition == 3)
    }

    @Test func rejectsBadDecision() throws {
        let lm = try DecoderLM.load(folder: modelsFixture("llama"))
        #expect(throws: ModelError.self) { try lm.prefill(inputIDs: [1, 2, 3], hook: ModelsFixedPruneHook(layer: 1, rows: [2, 1])) }
        #expect(throws: ModelError.self) { try lm.prefill(inputIDs: [1, 2, 3], hook: ModelsFixedPruneHook(layer: 1, rows: [0, 3])) }
    }
}

/// Inserts given rows (with a kept subset) before one layer.
final class ModelsInsertHook: PrefillHook {
    let layer: Int
    let decision: PruneDecision
    var imageRowsAfter: [Int]?

    init(layer: Int, decision: PruneDecision) {
        self.layer = layer
        self.decision = decision
    }

    func beforeLayer(_ layer: Int, state: PrefillState) throws -> PruneDecision? {
        if layer == self.layer + 1 { imageRowsAfter = state.imageRows }
        return layer == self.layer ? decision : nil
    }
}

extension PrefillHookTests {
    /// Rows inserted before layer 0 act exactly like those rows in the input: the prefill equals
    /// a plain prefill of the spliced embeddings at positions 0..<n.
    @Test func insertedRowsBeforeLayerZeroEqualSplicedInput() throws {
        let lm = try DecoderLM.load(folder: modelsFixture("llama"))
        let prompt = [1, 5, 9, 13, 17, 21, 25]
        let embeddings = try lm.embed(prompt)
        let extra = try lm.embed([40, 41])
        let hook = ModelsInsertHook(layer: 0, decision: PruneDecision(keptRows: [0, 1, 3, 4, 5, 6], positions: .renumber,
                                                                      inserted: extra, insertedAt: 2))
        let pruned = try lm.prefill(embeddings: embeddings, imageSpans: [1..<5], hook: hook)
        let spliced = try Tensor.concatenateRows([try embeddings.gatherRows([0, 1]), extra, try embeddings.gatherRows([3, 4, 5, 6])])
        let plain = try lm.prefill(embeddings: spliced)
        #expect(modelsMaxAbs(pruned.logits, plain.logits) < 1e-6)
        #expect(pruned.keptOriginalIndices == [0, 1, -1, -1, 3, 4, 5, 6])
        #expect(pruned.positions == Array(0..<8))
        #expect(hook.imageRowsAfter == [1, 2, 3, 4, 5])  // inserted rows count as image rows
        #expect(pruned.cache.tokenCounts == [8, 8])
    }

    @Test func insertedRowsNeedRenumberedPositionsAndTheHiddenWidth() throws {
        let lm = try DecoderLM.load(folder: modelsFixture("llama"))
        let embeddings = try lm.embed([1, 5, 9, 13])
        let extra = try lm.embed([40])
        for decision in [PruneDecision(keptRows: [0, 1], positions: .keepOriginal, inserted: extra, insertedAt: 1),
                         PruneDecision(keptRows: [0, 1], positions: .renumber, inserted: extra, insertedAt: 3),
                         PruneDecision(keptRows: [0, 1], positions: .renumber, inserted: Tensor(zeros: [1, 3]), insertedAt: 1)] {
            #expect(throws: ModelError.self) { try lm.prefill(embeddings: embeddings, hook: ModelsInsertHook(layer: 1, decision: decision)) }
        }
    }
}
