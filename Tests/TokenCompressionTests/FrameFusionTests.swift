import Testing
@testable import TokenCompression
import Tensors
import TestSupport

/// 2 text tokens, `frames` frames of `slots` tokens (each frame = base + small noise), 3 text tokens.
private func frameFusionVideo(seed: UInt64, frames: Int = 6, slots: Int = 10, width: Int = 8, noise: Float = 0.2) -> (Tensor, [Int]) {
    var g = TestRandom(seed)
    let base = g.tensor([slots, width])
    var rows = [[Float]]()
    for _ in 0..<2 { rows.append((0..<width).map { _ in g.signed() }) }
    for _ in 0..<frames { for s in 0..<slots { rows.append(base.row(s).map { $0 + noise * g.signed() }) } }
    for _ in 0..<3 { rows.append((0..<width).map { _ in g.signed() }) }
    let types = [-1, -1] + (0..<frames).flatMap { _ in Array(0..<slots) } + [-1, -1, -1]
    return (try! Tensor(rows: rows), types)
}

@Suite struct FrameFusionTests {
    @Test func budgetRecursionMatchesTheClosedForm() throws {
        #expect(abs(try FrameFusion.neededSparsity([], cost: 0.3) - 0.7) < 1e-12)
        // One recorded sparsity s: remaining = 8.4 − (1 − s), p = 1 − remaining / (27 (1 − s)).
        let s = 0.25
        #expect(abs(try FrameFusion.neededSparsity([s], cost: 0.3) - (1 - (8.4 - (1 - s)) / (27 * (1 - s)))) < 1e-12)
        #expect(throws: CompressionError.self) { try FrameFusion.neededSparsity(Array(repeating: 0, count: 20), cost: 0.3) }
    }

    @Test func mergingKeepsTextAndOriginalPositions() throws {
        for seed in UInt64(1)...4 {
            let (x, types) = frameFusionVideo(seed: seed)
            var state = try FrameFusion.State(patchType: types, patchCount: 10)
            let r = try FrameFusion.call(hiddenStates: x, state: &state)
            let kept = r.compression.kept
            #expect(kept == Array(Set(kept)).sorted())
            #expect([0, 1, 62, 63, 64].allSatisfy(kept.contains), "text is never merged")
            #expect(state.positions == kept)
            #expect(state.patchType.count == kept.count)
            #expect(r.hiddenStates.rows == kept.count)
            let sources = r.compression.merged.reduce(0) { $0 + $1.size - 1 }
            #expect(sources == x.rows - kept.count, "every removed token is a member of exactly one merged token")
        }
    }

    @Test func dissimilarFramesStopMergingWithoutRemovingTokens() throws {
        let (x, types) = frameFusionVideo(seed: 3, noise: 20)
        var state = try FrameFusion.State(patchType: types, patchCount: 10)
        let r = try FrameFusion.call(hiddenStates: x, state: &state, parameters: FrameFusion.Parameters(similarityLowerBound: 0.99))
        #expect(r.compression.kept.count == x.rows)
        #expect(state.finishMerging && !state.finishPruning)
        #expect(state.sparsityList == [0])
    }

    @Test func pruningNeedsTheAttentionRowAndRoundsHalfToEven() throws {
        let (x, types) = frameFusionVideo(seed: 8)
        var state = try FrameFusion.State(patchType: types, patchCount: 10)
        state.finishMerging = true
        #expect(throws: CompressionError.self) { _ = try FrameFusion.call(hiddenStates: x, state: &state) }
        var g = TestRandom(4)
        let attention = g.tensor([2, x.rows]).map { abs($0) }
        let r = try FrameFusion.call(hiddenStates: x, attentionLastRow: attention, state: &state)
        // 60 video tokens · (1 − 0.7) = 18 kept, plus 5 text tokens.
        #expect(r.compression.kept.count == 23)
        #expect(state.finishPruning)
        var decode = state
        decode.positions = [0]
        let one = try FrameFusion.call(hiddenStates: try x.gatherRows([0]), state: &decode)
        #expect(one.compression.noOpReason != nil)
    }
}

