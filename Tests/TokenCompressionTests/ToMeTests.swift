import Foundation
import Testing
import Tensors
@testable import TokenCompression
import TestSupport

@Suite struct ToMeTests {
    @Test func sizesSumToInputCountAndSourcesPartitionThePatches() throws {
        var rng = TestRandom(7)
        for (t, r, cls, dist) in [(17, 5, true, false), (24, 8, false, false), (31, 40, true, true), (9, 3, true, false)] {
            let x = rng.tensor(t, 6, .normal), metric = rng.tensor(t, 4, .normal)
            var sizes: [Float]? = nil
            var sources: [[Int]]? = nil
            var current = x
            var n = t
            // Two chained blocks: sizes and sources are carried.
            for _ in 0..<2 {
                let step = try ToMe.step(x: current, metric: n == t ? metric : rng.tensor(n, 4, .normal), sizes: sizes, sources: sources,
                                         parameters: .init(r: r, classToken: cls, distillToken: dist))
                #expect(step.sizes.reduce(0, +) == Float(t))
                let flat = step.sources.flatMap { $0 }
                #expect(flat.count == t)
                #expect(Set(flat) == Set(0..<t))
                #expect(zip(step.sizes, step.sources).allSatisfy { Int($0) == $1.count })
                current = step.x; sizes = step.sizes; sources = step.sources; n = step.x.rows
            }
        }
    }

    /// r = 0, or an r that clamps to 0, is the code's do-nothing merge: identity over all T tokens.
    @Test func zeroEffectiveRIsTheIdentityOverAllTokens() throws {
        var rng = TestRandom(5)
        for (t, r, cls) in [(9, 0, true), (10, 0, false), (2, 4, true), (1, 3, false)] {
            let x = rng.tensor(t, 3, .normal), metric = rng.tensor(t, 4, .normal)
            let sizes = (0..<t).map { Float($0 + 1) }
            let sources = (0..<t).map { [$0] }
            let step = try ToMe.step(x: x, metric: metric, sizes: sizes, sources: sources, parameters: .init(r: r, classToken: cls))
            #expect(step.matching.effectiveR == 0)
            #expect(step.matching.order == Array(0..<t))
            #expect(step.matching.mergedSources.isEmpty)
            #expect(step.x.values == x.values && step.sizes == sizes && step.sources == sources)
            #expect(step.result.kept == Array(0..<t) && step.result.merged.isEmpty && step.result.noOpReason != nil)
        }
    }

    @Test func effectiveRIsClampedAndClassAndDistillTokensStayFirst() throws {
        var rng = TestRandom(11)
        let t = 21
        let step = try ToMe.step(x: rng.tensor(t, 5, .normal), metric: rng.tensor(t, 4, .normal), parameters: .init(r: 100, classToken: true, distillToken: true))
        #expect(step.matching.effectiveR == (t - 2) / 2)
        #expect(step.x.rows == t - (t - 2) / 2)
        #expect(Array(step.matching.order.prefix(2)) == [0, 1])
        #expect(!step.matching.mergedSources.contains(0))
        #expect(!step.matching.mergedDestinations.contains(1))
        #expect(step.matching.mergedSources.allSatisfy { $0 % 2 == 0 })
        #expect(step.matching.mergedDestinations.allSatisfy { $0 % 2 == 1 })
    }

    @Test func mergedRowIsTheSizeWeightedMean() throws {
        var rng = TestRandom(3)
        let t = 10
        let x = rng.tensor(t, 3, .normal), metric = rng.tensor(t, 4, .normal)
        let sizes: [Float] = (0..<t).map { Float($0 % 3 + 1) }
        let step = try ToMe.step(x: x, metric: metric, sizes: sizes, parameters: .init(r: 2, classToken: false))
        for token in step.result.merged {
            let w = token.sources.map { sizes[$0] }.reduce(0, +)
            for k in 0..<3 {
                let expected = token.sources.map { x[$0, k] * sizes[$0] }.reduce(0, +) / w
                #expect(abs(step.x[token.outputIndex, k] - expected) < 1e-5)
            }
        }
        #expect(step.result.kept == step.result.kept.sorted())
        #expect(step.result.achievedCount == t - 2)
    }

    @Test func noOpIsExplicit() throws {
        var rng = TestRandom(5)
        let x = rng.tensor(3, 2, .normal)
        let step = try ToMe.step(x: x, metric: rng.tensor(3, 2, .normal), parameters: .init(r: 4, classToken: true, distillToken: true))
        #expect(step.result.noOpReason != nil)
        #expect(step.x.values == x.values)
        let zero = try ToMe.step(x: x, metric: rng.tensor(3, 2, .normal), parameters: .init(r: 0))
        #expect(zero.result.noOpReason != nil)
    }

    @Test func badInputsThrow() throws {
        var rng = TestRandom(9)
        #expect(throws: CompressionError.self) { try ToMe.step(x: rng.tensor(6, 2, .normal), metric: rng.tensor(5, 2, .normal)) }
        #expect(throws: CompressionError.self) { try ToMe.step(x: rng.tensor(6, 2, .normal), metric: rng.tensor(6, 2, .normal), parameters: .init(r: -1)) }
        #expect(throws: CompressionError.self) { try ToMe.step(x: rng.tensor(6, 2, .normal), metric: Tensor(zeros: [6, 2]), parameters: .init(r: 2)) }
        #expect(throws: CompressionError.self) { try ToMe.step(x: rng.tensor(6, 2, .normal), metric: rng.tensor(6, 2, .normal), sizes: [1, 1, 0, 1, 1, 1]) }
    }

    @Test func proportionalAttentionBiasActsLikeDuplicatedKeys() throws {
        // Softmax over [l0 + log 3, l1] equals softmax over [l0, l0, l0, l1] summed over the copies.
        let bias = try ToMe.proportionalAttentionBias(sizes: [3, 1])
        let logits: [Float] = [0.4, -0.2]
        let biased = zip(logits, bias).map { exp($0 + $1) }
        let p0 = biased[0] / biased.reduce(0, +)
        let dup = 3 * exp(logits[0]) / (3 * exp(logits[0]) + exp(logits[1]))
        #expect(abs(p0 - dup) < 1e-6)
    }

    @Test func schedulesFollowParseR() throws {
        #expect(try ToMe.schedule(layers: 12, r: 16, inflect: -1) == [32, 29, 26, 23, 20, 17, 14, 11, 8, 5, 2, 0])
        #expect(try ToMe.schedule(layers: 4, r: 13) == [13, 13, 13, 13])
        #expect(try ToMe.schedule(layers: 4, list: [5, 3]) == [5, 3, 0, 0])
        let counts = ToMe.tokenCounts(initialTokens: 197, rs: [Int](repeating: 16, count: 12))
        #expect(counts.last == 11)
        #expect(counts[11] == 21)
    }

    @Test func deterministicForAFixedSeed() throws {
        var a = TestRandom(42), b = TestRandom(42)
        let s1 = try ToMe.step(x: a.tensor(15, 3, .normal), metric: a.tensor(15, 4, .normal), parameters: .init(r: 4))
        let s2 = try ToMe.step(x: b.tensor(15, 3, .normal), metric: b.tensor(15, 4, .normal), parameters: .init(r: 4))
        #expect(s1.matching == s2.matching)
        #expect(s1.x.values == s2.x.values)
    }
}
