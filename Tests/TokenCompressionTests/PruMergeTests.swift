import Testing
@testable import TokenCompression
import Tensors
import Foundation
import TestSupport

/// Inputs with a few strongly attended tokens so that IQR outliers exist.
func pruMergeInputs(n: Int, c: Int, seed: UInt64, spikes: [Int] = [3, 17, 40]) -> (q: [Float], k: Tensor, f: Tensor) {
    var rng = TestRandom(seed)
    let q = (0..<c).map { _ in rng.normal() }
    var k = rng.tensor([n + 1, c], .normal)
    for s in spikes where s < n { for d in 0..<c { k[s + 1, d] = q[d] * 2 } }
    return (q, k, rng.tensor([n, c], .normal))
}

@Suite struct PruMergeTests {
    @Test func outliersAreKeptInAttentionOrderWithSummaryToken() throws {
        let x = pruMergeInputs(n: 64, c: 16, seed: 1)
        let r = try PruMerge().compress(clsQuery: x.q, keys: x.k, features: x.f)
        #expect(r.outlierCount >= 3)
        #expect(r.kept.count == r.outlierCount)
        #expect(Set(r.kept).count == r.kept.count)
        for i in 1..<max(1, r.kept.count) { #expect(r.clsAttention[r.kept[i - 1]] >= r.clsAttention[r.kept[i]]) }
        for j in r.kept { #expect(Double(r.clsAttention[j]) > r.upperFence) }
        #expect(r.features.shape == [r.kept.count + 1, 16])
        #expect(r.compression.kept == r.kept.sorted())
        #expect(r.compression.achievedCount == r.count)
    }

    @Test func attentionIsAProbabilityWithClsColumnDropped() throws {
        let x = pruMergeInputs(n: 48, c: 8, seed: 2)
        let r = try PruMerge().compress(clsQuery: x.q, keys: x.k, features: x.f)
        let total = r.clsAttention.reduce(0, +)
        #expect(total > 0 && total < 1)
    }

    @Test func summaryTokenIsAttentionWeightedSumOfTheRest() throws {
        let x = pruMergeInputs(n: 40, c: 4, seed: 3)
        let r = try PruMerge().compress(clsQuery: x.q, keys: x.k, features: x.f)
        let rest = Set(0..<40).subtracting(r.kept)
        for d in 0..<4 {
            let want = rest.reduce(Float(0)) { $0 + r.clsAttention[$1] * x.f[$1, d] }
            #expect(abs(r.features[r.kept.count, d] - want) < 1e-4)
        }
        #expect(r.compression.merged.last?.sources.count == rest.count)
    }

    @Test func fixedRatioKeepsIntNTimesRatio() throws {
        let x = pruMergeInputs(n: 64, c: 8, seed: 4)
        let r = try PruMerge(.init(adaptive: false, reductionRatio: 0.125)).compress(clsQuery: x.q, keys: x.k, features: x.f)
        #expect(r.kept.count == 8)
    }

    @Test func plusAddsSpatialSamplesAfterOutliers() throws {
        let x = pruMergeInputs(n: 64, c: 8, seed: 5)
        let base = try PruMerge().compress(clsQuery: x.q, keys: x.k, features: x.f)
        let r = try PruMergePlus().compress(clsQuery: x.q, keys: x.k, features: x.f)
        #expect(Array(r.kept.prefix(r.topCount)) == base.kept)
        let samples = Array(r.kept.dropFirst(r.topCount))
        #expect(samples == samples.sorted())
        #expect(!samples.contains(63))
        #expect(Set(r.kept).count == r.kept.count)
    }

    @Test func plusWithoutOutliersRefuses() throws {
        var rng = TestRandom(6)
        let q = [Float](repeating: 0, count: 8)   // uniform attention: no outlier
        let k = rng.tensor([41, 8], .normal), f = rng.tensor([40, 8], .normal)
        let plain = try PruMerge().compress(clsQuery: q, keys: k, features: f)
        #expect(plain.kept.isEmpty && plain.count == 1)
        #expect(throws: CompressionError.self) { try PruMergePlus().compress(clsQuery: q, keys: k, features: f) }
    }

    @Test func badInputsThrow() throws {
        let x = pruMergeInputs(n: 20, c: 4, seed: 7)
        #expect(throws: CompressionError.self) { try PruMerge().compress(clsQuery: x.q, keys: x.k, features: x.f) } // 19 < 32 neighbours
        #expect(throws: CompressionError.self) { try PruMerge(.init(knnK: 0)) }
        #expect(throws: CompressionError.self) { try PruMerge(.init(reductionRatio: 1.5)) }
        let y = pruMergeInputs(n: 40, c: 4, seed: 8)
        #expect(throws: CompressionError.self) { try PruMerge().compress(clsQuery: [1, 2], keys: y.k, features: y.f) }
    }

    @Test func deterministic() throws {
        let x = pruMergeInputs(n: 50, c: 8, seed: 9)
        let a = try PruMergePlus().compress(clsQuery: x.q, keys: x.k, features: x.f)
        let b = try PruMergePlus().compress(clsQuery: x.q, keys: x.k, features: x.f)
        #expect(a.kept == b.kept && a.features.values == b.features.values)
    }
}
