import Foundation
import Testing
import Tensors
@testable import TokenCompression
import TestSupport

@Suite struct DyCokeTests {
    @Test func ttmFrameLayoutForEightAndNineFrames() throws {
        var rng = TestRandom(1)
        let n = 20
        let p = DyCoke.Parameters(tokensPerFrame: n, mergingRatio: 0.7)
        let m = p.keptPerPrunedFrame
        #expect(m == 6)
        let r8 = try DyCoke.temporalMerge(tokens: rng.tensor(8 * n, 5), parameters: p)
        #expect(r8.frameTokenCounts == [n, m, m, m, n, m, n, m])
        #expect(r8.x.rows == r8.order.count)
        let r9 = try DyCoke.temporalMerge(tokens: rng.tensor(9 * n, 5), parameters: p)
        #expect(r9.frameTokenCounts == [n, m, m, m, n, m, m, m, 0])  // odd F: the last frame is dropped
        #expect(r9.result.kept == r9.result.kept.sorted())
        #expect(r9.stage2Similarity.count == 2)
    }

    @Test func prunedFramesKeepTheLeastSimilarPositionsInAscendingOrder() throws {
        var rng = TestRandom(2)
        let n = 12
        let p = DyCoke.Parameters(tokensPerFrame: n, mergingRatio: 0.5)
        let r = try DyCoke.temporalMerge(tokens: rng.tensor(6 * n, 4), parameters: p)
        // Frame 1 is pruned against frame 0 (stage 1).
        let frame1 = r.order.filter { $0 / n == 1 }.map { $0 % n }
        let s = r.stage1Similarity[0]
        #expect(frame1.count == 6)
        #expect(zip(frame1, frame1.dropFirst()).allSatisfy { s[$0] <= s[$1] })
        let dropped = Set(0..<n).subtracting(frame1)
        #expect(dropped.allSatisfy { d in s[d] >= s[frame1.last!] })
    }

    @Test func float64TruncationOfCounts() {
        #expect(DyCoke.Parameters(tokensPerFrame: 50, mergingRatio: 0.9).keptPerPrunedFrame == 4)
        #expect(DyCoke.Parameters(pruneRatio: 0.8).keptImageEntries(imageLength: 30) == 5)
        #expect(DyCoke.Parameters(pruneRatio: 0.7).keptImageEntries(imageLength: 60) == 18)
    }

    @Test func ttmRefusesFourFramesOrFewer() throws {
        var rng = TestRandom(3)
        #expect(throws: CompressionError.unsupportedSetting("DyCoke TTM needs more than 4 frames (got 4); the reference code crashes (torch.stack of an empty list) for F ≤ 4")) {
            try DyCoke.temporalMerge(tokens: rng.tensor(4 * 10, 3), parameters: .init(tokensPerFrame: 10))
        }
        #expect(throws: CompressionError.self) { try DyCoke.temporalMerge(tokens: rng.tensor(53, 3), parameters: .init(tokensPerFrame: 10)) }
        #expect(throws: CompressionError.self) { try DyCoke.temporalMerge(tokens: rng.tensor(60, 3), parameters: .init(tokensPerFrame: 10, mergingRatio: 1.5)) }
    }

    @Test func stableAttentionRunsWithTheFullCache() throws {
        var rng = TestRandom(4)
        let start = 3, length = 20, prompt = 30
        var pruner = try DyCoke.KVPruner(imageStart: start, imageLength: length, parameters: .init(pruneLayer: 2, pruneRatio: 0.7))
        let a0 = rng.softmaxRows(1, prompt + 1, logitScale: 4).values
        let s0 = try pruner.step(attention: a0, cacheLength: prompt + 1)
        #expect(s0.reselected && s0.similarity == 0)
        let image = s0.attendedPositions(layer: 2).filter { $0 >= start && $0 < start + length }
        #expect(image.count == 6)
        // Text and system positions always stay; layers < L see everything.
        #expect(Set(0..<start).isSubset(of: s0.attendedPositions(layer: 5)))
        #expect(Set((start + length)..<(prompt + 1)).isSubset(of: s0.attendedPositions(layer: 5)))
        #expect(s0.attendedPositions(layer: 1).count == prompt + 1)
        // The same attention again: similarity 1, no re-selection, FULL cache (not the previous selection).
        var a1 = a0; a1.append(0)
        let s1 = try pruner.step(attention: a1, cacheLength: prompt + 2)
        #expect(!s1.reselected && s1.selectedPositions == nil)
        #expect(s1.attendedCount == prompt + 2)
        // A different image pattern triggers a new selection.
        let s2 = try pruner.step(attention: rng.softmaxRows(1, prompt + 3, logitScale: 4).values, cacheLength: prompt + 3)
        #expect(s2.similarity < 0.9 && s2.reselected)
        pruner.reset()
        #expect(pruner.previousImageAttention == nil)
    }

    @Test func kvPrunerRejectsBadSpans() throws {
        #expect(throws: CompressionError.self) { try DyCoke.KVPruner(imageStart: 0, imageLength: 0) }
        var pruner = try DyCoke.KVPruner(imageStart: 10, imageLength: 20)
        #expect(throws: CompressionError.self) { try pruner.step(attention: [Float](repeating: 0.1, count: 25), cacheLength: 25) }
    }
}
