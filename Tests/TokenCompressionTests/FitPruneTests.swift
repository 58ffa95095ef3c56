import Foundation
import Testing
import TestSupport
@testable import TokenCompression
import Tensors

/// `[heads, n, n]` attention from a value function (not necessarily a softmax: the rules only read it).
private func attention(heads: Int, n: Int, _ value: (Int, Int, Int) -> Float) -> Tensor {
    try! Tensor(shape: [heads, n, n], values: (0..<heads).flatMap { h in (0..<n).flatMap { i in (0..<n).map { j in value(h, i, j) } } })
}

/// Causal softmax of seeded random logits, `[heads, n, n]`.
private func randomAttention(heads: Int, n: Int, seed: UInt64) -> Tensor {
    var g = TestRandom(seed)
    var values: [Float] = []
    for _ in 0..<heads {
        for i in 0..<n {
            let logits = (0..<n).map { j in j <= i ? 3 * g.signed() : -Float.infinity }
            let top = logits.max()!
            let e = logits.map { $0 == -.infinity ? 0 : Float(exp(Double($0 - top))) }
            let total = e.reduce(0, +)
            values += e.map { $0 / total }
        }
    }
    return try! Tensor(shape: [heads, n, n], values: values)
}

/// The hand-checked layer of `pruneRanksByTheHeadMaxProduct`: 1 system token, 3 visual, 2 text.
/// Head 1 is head 0 with A[5, 3] raised to 0.5 (the max picks it) and A[2, 1] lowered (ignored).
private let handLayer = attention(heads: 2, n: 6) { h, i, j in
    let head0: [[Float]] = [
        [1, 0, 0, 0, 0, 0],
        [0, 0.6, 0, 0, 0, 0],
        [0, 0.3, 0.3, 0, 0, 0],
        [0, 0.3, 0.3, 0.3, 0, 0],
        [0, 0.1, 0.4, 0.2, 0, 0],
        [0, 0.3, 0.1, 0.2, 0, 0],
    ]
    if h == 1 && i == 5 && j == 3 { return 0.5 }
    if h == 1 && i == 2 && j == 1 { return 0.1 }
    return head0[i][j]
}

/// One head, no system tokens, 4 visual tokens (rows 0–3 identical) and one text row:
/// cross = [0.1, 0.2, 0.3, 0.4] (sum 1), self = [0.05, 0.35, 0.15, 0.45] (sum 1).
private let fitLayerInput = attention(heads: 1, n: 5) { _, i, j in
    guard j < 4 else { return 0 }
    return i == 4 ? [0.1, 0.2, 0.3, 0.4][j] : [0.05, 0.35, 0.15, 0.45][j]
}

@Suite struct FitPruneTests {
    // MARK: shipped schemes and parameters

    @Test func shippedTablesCoverTheCodesPercents() throws {
        #expect(FitPrune.shippedSchemes.keys.sorted() == [0, 10, 20, 30, 40, 50, 55, 60, 70, 80, 90])
        for (percent, scheme) in FitPrune.shippedSchemes {
            #expect(scheme.count == 32 && scheme.allSatisfy { $0 >= 0 }, "table \(percent)")
            #expect(scheme.reduce(0, +) <= 576, "table \(percent) removes more than the 576 visual tokens")
        }
        #expect(FitPrune.shippedSchemes[0]!.allSatisfy { $0 == 0 })
        #expect(try FitPrune.shippedScheme(reductionPercent: 90).prefix(3) == [262, 153, 80])
        #expect(FitPrune.Parameters().deleteScheme == FitPrune.shippedSchemes[60]!)
        #expect(throws: CompressionError.self) { try FitPrune.shippedScheme(reductionPercent: 65) }
        #expect(throws: CompressionError.self) { try FitPrune(.init(deleteScheme: [1, -2])) }
        #expect(throws: CompressionError.self) { try FitPrune(.init(deleteScheme: [1], systemLength: -1)) }
    }

    @Test func scheduleFollowsTheTableAndStopsAtZero() throws {
        let p = try FitPrune.Parameters(reductionPercent: 90)
        #expect(Array(p.schedule(layers: 32, initial: 576).tokensPerLayer.prefix(8)) == [576, 314, 161, 81, 62, 49, 48, 46])
        #expect(p.schedule(layers: 4, initial: 40).tokensPerLayer == [40, 0, 0, 0])
        #expect(p.deleteCount(layer: 40) == 0)
    }

    // MARK: inference

    @Test func pruneRanksByTheHeadMaxProduct() throws {
        let r = try FitPrune.prune(attention: handLayer, positionIds: [10, 11, 12, 13, 14, 15], imageCount: 3,
                                   deleteCount: 1, systemLength: 1)
        // cross = plain text-row sums of the head max: [0.1+0.3, 0.4+0.1, 0.2+0.5].
        for (a, b) in zip(r.cross, [0.4, 0.5, 0.7] as [Float]) { #expect(abs(a - b) < 1e-6) }
        // self = image-row sums / 3: [(0.6+0.3+0.3)/3, 0.6/3, 0.3/3].
        for (a, b) in zip(r.selfAttention, [0.4, 0.2, 0.1] as [Float]) { #expect(abs(a - b) < 1e-6) }
        for (a, b) in zip(r.scores, [0.16, 0.1, 0.07] as [Float]) { #expect(abs(a - b) < 1e-6) }
        // The product's smallest is visual token 2 (row 3), not cross's smallest (token 0).
        #expect(r.deleted == [3] && r.compression.kept == [0, 1, 2, 4, 5])
        #expect(r.positionIds == [10, 11, 12, 14, 15] && r.imageCountAfter == 2)
        #expect(r.compression.positionPolicy == .keepOriginal && r.compression.noOpReason == nil)

        let two = try FitPrune.prune(attention: handLayer, positionIds: Array(0..<6), imageCount: 3, deleteCount: 2, systemLength: 1)
        #expect(two.deleted == [2, 3] && two.positionIds == [0, 1, 4, 5] && two.compression.achievedCount == 1)
    }

    @Test func countBeyondTheSpanRemovesAllThenLaterLayersAreNoOps() throws {
        let fp = try FitPrune(.init(deleteScheme: [262, 153], systemLength: 1))
        let first = try fp.prune(layer: 0, attention: handLayer, positionIds: Array(0..<6), imageCount: 3)
        #expect(first.deleted == [1, 2, 3] && first.imageCountAfter == 0 && first.positionIds == [0, 4, 5])
        let next = attention(heads: 2, n: 3) { _, i, j in j <= i ? 1 / Float(i + 1) : 0 }
        let second = try fp.prune(layer: 1, attention: next, positionIds: first.positionIds, imageCount: 0)
        #expect(second.deleted.isEmpty && second.scores.isEmpty && second.compression.kept == [0, 1, 2])
        #expect(second.positionIds == [0, 4, 5] && second.compression.noOpReason != nil)
        // A layer whose count is 0 is an explicit no-op too, with no score.
        let zero = try FitPrune.prune(attention: handLayer, positionIds: Array(0..<6), imageCount: 3, deleteCount: 0, systemLength: 1)
        #expect(zero.compression.kept == Array(0..<6) && zero.scores.isEmpty && zero.compression.noOpReason != nil)
    }

    @Test func prunedAndKeptPartitionTheSequenceWithGapsKept() throws {
        for seed in 1...6 as ClosedRange<UInt64> {
            let sys = Int(seed % 3) + 1, left = 12 + Int(seed), text = 4, n = sys + left + text
            let a = randomAttention(heads: 3, n: n, seed: seed)
            let positions = (0..<n).map { 2 * $0 + 1 }  // already gapped
            for count in [1, 5, left, left + 7] {
                let r = try FitPrune.prune(attention: a, positionIds: positions, imageCount: left, deleteCount: count, systemLength: sys)
                let kept = r.compression.kept
                #expect(Set(kept).union(r.deleted) == Set(0..<n) && Set(kept).isDisjoint(with: r.deleted))
                #expect(kept == kept.sorted() && r.deleted == r.deleted.sorted())
                #expect(r.deleted.count == min(count, left) && r.imageCountAfter == left - r.deleted.count)
                #expect(r.deleted.allSatisfy { (sys..<(sys + left)).contains($0) })
                #expect(r.positionIds == kept.map { positions[$0] })
                let keptScores = kept.filter { $0 >= sys && $0 < sys + left }.map { r.scores[$0 - sys] }
                let worstDeleted = r.deleted.map { r.scores[$0 - sys] }.max() ?? -.infinity
                #expect(keptScores.allSatisfy { $0 >= worstDeleted })
            }
        }
    }

    @Test func badShapesAndCountsThrow() throws {
        let a = randomAttention(heads: 2, n: 10, seed: 3)
        #expect(throws: CompressionError.self) { try FitPrune.prune(attention: a, positionIds: Array(0..<9), imageCount: 4, deleteCount: 1, systemLength: 2) }
        #expect(throws: CompressionError.self) { try FitPrune.prune(attention: a, positionIds: Array(0..<10), imageCount: 9, deleteCount: 1, systemLength: 2) }
        #expect(throws: CompressionError.self) { try FitPrune.prune(attention: a, positionIds: Array(0..<10), imageCount: 4, deleteCount: -1, systemLength: 2) }
        #expect(throws: CompressionError.self) { try FitPrune.prune(attention: Tensor(shape: [10, 10], repeating: 0.1), positionIds: Array(0..<10), imageCount: 4, deleteCount: 1, systemLength: 2) }
        #expect(throws: CompressionError.self) { try FitPrune.prune(attention: Tensor(shape: [2, 1, 10], repeating: 0.1), positionIds: [9], imageCount: 4, deleteCount: 1, systemLength: 2) }
        #expect(throws: CompressionError.self) { try FitPrune().prune(layer: -1, attention: a, positionIds: Array(0..<10), imageCount: 4) }
    }

    // MARK: fit decision

    @Test func fitLayerKeepsTheLargestBottomPrefixAndRemovesTheIntersection() throws {
        // α = 0.5, W = 1: bound 0.5. Cross ascending 0.1, 0.2, 0.3, 0.4: removing two leaves 0.7,
        // three would leave 0.4 < 0.5 → 2 ({0, 1}). Self ascending 0.05 (0), 0.15 (2), 0.35, 0.45:
        // 2 ({0, 2}). Only token 0 is in both.
        let d = try FitPrune.fitLayer(attention: fitLayerInput, positionIds: [0, 3, 4, 7, 9], imageCount: 4, systemLength: 0,
                                      alpha: 0.5, weightSumCross: 1, weightSumSelf: 1)
        #expect(d.crossCount == 2 && d.selfCount == 2 && !d.crossCountCarriedOver && !d.selfCountCarriedOver)
        #expect(d.deleted == [0] && d.kept == [1, 2, 3, 4] && d.positionIds == [3, 4, 7, 9] && d.imageCountAfter == 3)
        for (a, b) in zip(d.cross, [0.1, 0.2, 0.3, 0.4] as [Float]) { #expect(abs(a - b) < 1e-6) }
        for (a, b) in zip(d.selfAttention, [0.05, 0.35, 0.15, 0.45] as [Float]) { #expect(abs(a - b) < 1e-6) }

        // α = 0.02 (bound 0.98): one removal already crosses → max(1 − 1, 0) = 0.
        let small = try FitPrune.fitLayer(attention: fitLayerInput, positionIds: Array(0..<5), imageCount: 4, systemLength: 0,
                                          alpha: 0.02, weightSumCross: 1, weightSumSelf: 1)
        #expect(small.crossCount == 0 && small.selfCount == 0 && small.deleted.isEmpty)
        // W above the current mass (earlier pruning): the full sum is already below the bound → 0.
        let below = try FitPrune.fitLayer(attention: fitLayerInput, positionIds: Array(0..<5), imageCount: 4, systemLength: 0,
                                          alpha: 0.5, weightSumCross: 2.4, weightSumSelf: 1)
        #expect(below.crossCount == 0 && below.deleted.isEmpty)
        // The text count divides cross: two text rows halve it.
        let twoText = attention(heads: 1, n: 6) { _, i, j in j < 4 ? (i >= 4 ? [0.1, 0.2, 0.3, 0.4][j] : 0.25) : 0 }
        let halved = try FitPrune.fitLayer(attention: twoText, positionIds: Array(0..<6), imageCount: 4, systemLength: 0,
                                           alpha: 0.5, weightSumCross: 1, weightSumSelf: 1)
        for (a, b) in zip(halved.cross, [0.1, 0.2, 0.3, 0.4] as [Float]) { #expect(abs(a - b) < 1e-6) }
    }

    @Test func loopWithoutCrossingReusesThePreviousCountOrThrows() throws {
        // α = 0.8 (bound 0.2): removing all but the largest still leaves 0.4 (cross) / 0.45 (self).
        #expect(throws: CompressionError.self) {
            try FitPrune.fitLayer(attention: fitLayerInput, positionIds: Array(0..<5), imageCount: 4, systemLength: 0,
                                  alpha: 0.8, weightSumCross: 1, weightSumSelf: 1)
        }
        let d = try FitPrune.fitLayer(attention: fitLayerInput, positionIds: Array(0..<5), imageCount: 4, systemLength: 0,
                                      alpha: 0.8, weightSumCross: 1, weightSumSelf: 1, previousCrossCount: 3, previousSelfCount: 9)
        #expect(d.crossCountCarriedOver && d.selfCountCarriedOver && d.crossCount == 3 && d.selfCount == 9)
        // Bottom-3 by cross {0, 1, 2} ∩ all 4 by self (a carried count beyond the span takes it all).
        #expect(d.deleted == [0, 1, 2] && d.imageCountAfter == 1)
    }

    @Test func largerAlphaRemovesASupersetWhenNothingIsCarried() throws {
        for seed in 1...5 as ClosedRange<UInt64> {
            let sys = 3, left = 40, n = sys + left + 6
            let a = randomAttention(heads: 2, n: n, seed: 100 + seed)
            let w = try FitPrune.weightSums(attention: a, imageCount: left, systemLength: sys)
            var previous: FitPrune.FitDecision?
            for alpha in stride(from: 0.0, through: 0.6, by: 0.05) {
                let d = try FitPrune.fitLayer(attention: a, positionIds: Array(0..<n), imageCount: left, systemLength: sys, alpha: alpha,
                                              weightSumCross: w.cross, weightSumSelf: w.selfAttention)
                #expect(!d.crossCountCarriedOver && !d.selfCountCarriedOver)
                #expect(d.deleted.count <= min(d.crossCount, d.selfCount))
                if let previous {
                    #expect(d.crossCount >= previous.crossCount && d.selfCount >= previous.selfCount)
                    #expect(Set(previous.deleted).isSubset(of: d.deleted), "seed \(seed) alpha \(alpha)")
                }
                previous = d
            }
            #expect(previous!.deleted.count > 0)
        }
    }

    @Test func fitLayerRefusesBadInput() throws {
        let ok = Array(0..<5)
        #expect(throws: CompressionError.self) { try FitPrune.fitLayer(attention: fitLayerInput, positionIds: ok, imageCount: 4, systemLength: 0, alpha: 1.5, weightSumCross: 1, weightSumSelf: 1) }
        #expect(throws: CompressionError.self) { try FitPrune.fitLayer(attention: fitLayerInput, positionIds: ok, imageCount: 4, systemLength: 0, alpha: .nan, weightSumCross: 1, weightSumSelf: 1) }
        #expect(throws: CompressionError.self) { try FitPrune.fitLayer(attention: fitLayerInput, positionIds: ok, imageCount: 4, systemLength: 0, alpha: 0.5, weightSumCross: .infinity, weightSumSelf: 1) }
        // No text row: the code divides by zero.
        #expect(throws: CompressionError.self) { try FitPrune.fitLayer(attention: fitLayerInput, positionIds: ok, imageCount: 4, systemLength: 1, alpha: 0.5, weightSumCross: 1, weightSumSelf: 1) }
        #expect(throws: CompressionError.self) { try FitPrune.fitLayer(attention: fitLayerInput, positionIds: ok, imageCount: 4, systemLength: 0, alpha: 0.5, weightSumCross: 1, weightSumSelf: 1, previousCrossCount: -1) }
        #expect(throws: CompressionError.self) { try FitPrune.weightSums(attention: fitLayerInput, imageCount: 5, systemLength: 0) }
    }

    @Test func weightSumsDivideByTextRowsAndImageCount() throws {
        let w = try FitPrune.weightSums(attention: handLayer, imageCount: 3, systemLength: 1)
        // Head-max text block sum 1.6 over 2 text rows; image block 2.1 over 3 tokens.
        #expect(abs(w.cross - 0.8) < 1e-6 && abs(w.selfAttention - 0.7) < 1e-6)
    }

    // MARK: search

    @Test func flopsUseTheScriptsLlama7BConstants() throws {
        let f = FitPrune.FLOPsModel.llama7B
        #expect(try f.origin() == 3_817_152_184_320)
        #expect(try f.outputPart(576) == 87_577_067_520 && f.attentionPart(576) == 31_708_938_240)
        #expect(try f.rest(576, afterLayer: 31) == f.outputPart(576))
        #expect(try f.rest(576, afterLayer: 0) + f.attentionPart(576) == f.origin())
        #expect(throws: CompressionError.self) { try FitPrune.FLOPsModel(hidden: 1 << 40, ffn: 1 << 40).origin() }
    }

    @Test func searchBisectsAlphaAndPrintsTheLastStep() throws {
        let model = SyntheticCalibration(samples: 2, layers: 4, system: 2, image: 24, texts: [3, 5])
        let flops = FitPrune.FLOPsModel(hidden: 64, ffn: 128, layers: 4, imageTokens: 24)
        let r = try FitPrune.fit(model: model, parameters: .init(reductionRatio: 0.3, systemLength: 2, imageTokens: 24, flops: flops))
        #expect(r.steps.count == 7 && r.weightSumCross.count == 2 && r.weightSumCross[0].count == 4)
        var lo = 0.0, hi = 1.0
        for step in r.steps {
            #expect(step.alpha == (lo + hi) / 2)
            #expect(step.reachedBudget == (step.stopLayer < 4))
            #expect(step.scheme.count == 4 && step.scheme[step.stopLayer...].allSatisfy { $0 == 0 })
            if step.reachedBudget { hi = step.alpha } else { lo = step.alpha }
        }
        #expect(r.alphaInterval == (lo, hi) && hi - lo < 0.01)
        #expect(r.scheme == r.steps.last!.scheme)
        #expect(r.smallestAlphaMeetingBudget?.alpha == hi || r.smallestAlphaMeetingBudget == nil)
        #expect(r.steps.contains { $0.reachedBudget } && r.steps.contains { !$0.reachedBudget })
        #expect(model.passes == 7 && model.finishedRowsAreConsistent)
    }

    @Test func ratioZeroStopsBeforeTheFirstLayer() throws {
        let model = SyntheticCalibration(samples: 1, layers: 3, system: 1, image: 10, texts: [2])
        let r = try FitPrune.fit(model: model, parameters: .init(reductionRatio: 0, systemLength: 1, imageTokens: 10,
                                                                 flops: .init(hidden: 8, ffn: 16, layers: 3, imageTokens: 10)))
        #expect(r.steps.allSatisfy { $0.reachedBudget && $0.stopLayer == 0 && $0.scheme == [0, 0, 0] })
        #expect(r.steps.map(\.alpha) == [0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125])
    }

    @Test func searchRefusesBadSettings() throws {
        let model = SyntheticCalibration(samples: 1, layers: 3, system: 1, image: 10, texts: [2])
        let flops = FitPrune.FLOPsModel(hidden: 8, ffn: 16, layers: 3, imageTokens: 10)
        #expect(throws: CompressionError.self) { try FitPrune.fit(model: model, parameters: .init(reductionRatio: 1.5, systemLength: 1, imageTokens: 10, flops: flops)) }
        #expect(throws: CompressionError.self) { try FitPrune.fit(model: model, parameters: .init(systemLength: 1, imageTokens: 10, flops: flops, stopWidth: 0)) }
        #expect(throws: CompressionError.self) { try FitPrune.fit(model: model, parameters: .init(systemLength: 1, imageTokens: 12, flops: flops)) }
        #expect(throws: CompressionError.self) {
            try FitPrune.fit(model: model, parameters: .init(systemLength: 1, imageTokens: 10, flops: .init(hidden: 8, ffn: 16, layers: 2, imageTokens: 10)))
        }
    }
}

/// A calibration "model" whose attention is a fixed function of the tokens' position ids (so
/// pruning changes what later layers see), holding each sample's current row count.
private final class SyntheticCalibration: FitPruneCalibrationModel {
    let samples: Int, layers: Int, lengths: [Int]
    var rows: [Int]
    var pendingRows: [Int?]
    var passes = 0
    var finishedRowsAreConsistent = true

    init(samples: Int, layers: Int, system: Int, image: Int, texts: [Int]) {
        self.samples = samples
        self.layers = layers
        lengths = texts.map { system + image + $0 }
        rows = lengths
        pendingRows = Array(repeating: nil, count: samples)
    }

    var sampleCount: Int { samples }
    var layerCount: Int { layers }
    func sequenceLength(sample: Int) -> Int { lengths[sample] }

    func probabilities(_ positions: [Int], layer: Int, sample: Int) -> Tensor {
        let n = positions.count
        var values: [Float] = []
        for h in 0..<2 {
            for i in 0..<n {
                let w = (0..<n).map { j -> Float in
                    j <= i ? 1 + Float((positions[j] * (7 + layer + h) + sample * 3) % 11) : 0
                }
                let total = w.reduce(0, +)
                values += w.map { $0 / total }
            }
        }
        return try! Tensor(shape: [2, n, n], values: values)
    }

    func unprunedAttention(sample: Int, visit: (Int, Tensor) throws -> Void) throws {
        for l in 0..<layers { try visit(l, probabilities(Array(0..<lengths[sample]), layer: l, sample: sample)) }
    }

    func resetPass() throws {
        passes += 1
        rows = lengths
    }

    func attention(sample: Int, layer: Int, positionIds: [Int]) throws -> Tensor {
        if positionIds.count != rows[sample] { finishedRowsAreConsistent = false }
        pendingRows[sample] = rows[sample]
        return probabilities(positionIds, layer: layer, sample: sample)
    }

    func finishLayer(sample: Int, layer: Int, keeping kept: [Int]) throws {
        guard let n = pendingRows[sample], kept.allSatisfy({ $0 < n }) else { finishedRowsAreConsistent = false; return }
        rows[sample] = kept.count
        pendingRows[sample] = nil
    }
}
