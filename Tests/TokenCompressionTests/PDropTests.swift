import Testing
@testable import TokenCompression
import Tensors
import TestSupport

private extension TestRandom {
    /// Random query/key projections of one layer (unit RMSNorm weight).
    mutating func weights(width: Int = 16, heads: Int = 2) -> PDrop.LayerWeights {
        PDrop.LayerWeights(inputNormWeight: Tensor(shape: [width], repeating: 1), rmsNormEps: 1e-5,
                           qProj: tensor([width, width]), kProj: tensor([width, width]), heads: heads,
                           rope: try! RotaryEmbedding(headDim: width / heads, theta: 10000))
    }
}

@Suite struct PDropTests {
    static let layout = try! PDrop.Layout(imageStart: 3, promptLength: 10, originalImageCount: 64)

    @Test func countsUseFloatProductOfOriginalCount() throws {
        let p = PDrop.Parameters(layerList: [4, 12, 20], ratios: [0.57, 0.29, 0.07])
        #expect((0...3).map { p.visualCount(original: 100, beforeStage: $0) } == [100, 56, 28, 7])  // 100·0.57 = 56.99…, 100·0.29 = 28.99…
        let d = PDrop.Parameters()
        let schedule = d.schedule(layers: 32, original: 576).tokensPerLayer
        #expect(schedule == [576] * 8 + [288] * 8 + [144] * 8 + [72] * 8)
        #expect(schedule.reduce(0, +) / 32 == 270)
    }

    @Test func scoresAreProbabilitiesOverAllKeys() throws {
        var g = TestRandom(1)
        let q = g.tensor([2, 8]), k = g.tensor([2, 20, 8])
        let all = try PDrop.lastQueryScores(query: q, keys: k, imageRange: 0..<20)
        #expect(abs(all.reduce(0, +) - 1) < 1e-5)
        let part = try PDrop.lastQueryScores(query: q, keys: k, imageRange: 5..<9)
        #expect(part == Array(all[5..<9]))
        let zeros = try PDrop.lastQueryScores(query: Tensor(zeros: [2, 8]), keys: k, imageRange: 0..<20)
        #expect(zeros.allSatisfy { abs($0 - 0.05) < 1e-6 })
    }

    @Test func stageKeepsTopScoresAndRenumbers() throws {
        let pdrop = try PDrop()
        for seed in 1...4 as ClosedRange<UInt64> {
            var g = TestRandom(seed)
            let hidden = g.tensor([74, 16])
            let r = try pdrop.stage(0, hidden: hidden, positionIds: Array(0..<74), layout: Self.layout, weights: g.weights())
            let kept = r.compression.kept
            #expect(r.newImageCount == 32 && r.keptImage.count == 32 && r.queryIndex == 73)
            #expect(kept == Array(Set(kept)).sorted() && kept.count == 42)
            #expect(Array(kept.prefix(3)) == [0, 1, 2] && Array(kept.suffix(7)) == Array(67..<74))
            #expect(r.positionIds == Array(0..<42) && r.compression.positionPolicy == .renumber)
            #expect(r.hidden.row(5) == hidden.row(kept[5]))
            let lowest = r.keptImage.map { r.scores[$0] }.min()!
            for j in 0..<64 where !r.keptImage.contains(j) { #expect(r.scores[j] <= lowest) }
        }
    }

    @Test func chainShrinksByOriginalShares() throws {
        let pdrop = try PDrop()
        var g = TestRandom(7)
        var hidden = g.tensor([74, 16]), positions = Array(0..<74)
        var counts: [Int] = []
        for b in 0..<3 {
            let r = try pdrop.stage(b, hidden: hidden, positionIds: positions, layout: Self.layout, weights: g.weights())
            counts.append(r.newImageCount)
            hidden = r.hidden
            positions = r.positionIds
        }
        #expect(counts == [32, 16, 8] && hidden.rows == 18)
        // Stage 1 expects the stage-0 output length, not the original one.
        #expect(throws: CompressionError.self) {
            try pdrop.stage(1, hidden: g.tensor([74, 16]), positionIds: Array(0..<74), layout: Self.layout, weights: g.weights())
        }
    }

    @Test func fullRatioIsExplicitNoOp() throws {
        var g = TestRandom(2)
        let r = try PDrop(.init(layerList: [2], ratios: [1.0]))
            .stage(0, hidden: g.tensor([74, 16]), positionIds: Array(0..<74), layout: Self.layout, weights: g.weights())
        #expect(r.compression.noOpReason != nil && r.compression.kept == Array(0..<74))
    }

    @Test func badParametersThrow() {
        #expect(throws: CompressionError.self) { try PDrop(.init(layerList: [8, 16], ratios: [0.5])) }
        #expect(throws: CompressionError.self) { try PDrop(.init(layerList: [16, 8], ratios: [0.5, 0.25])) }
        #expect(throws: CompressionError.self) { try PDrop(.init(layerList: [8, 16], ratios: [0.25, 0.5])) }
        #expect(throws: CompressionError.self) { try PDrop(.init(layerList: [8], ratios: [1.5])) }
        #expect(throws: CompressionError.self) { try PDrop.Layout(imageStart: 5, promptLength: 5, originalImageCount: 10) }
    }
}

private func * (lhs: [Int], rhs: Int) -> [Int] { Array(Array(repeating: lhs, count: rhs).joined()) }
