import Foundation
import Testing
import Tensors
@testable import TokenCompression
import TestSupport

/// Random hidden states and text-row attention (rows sum to 1) for a sequence `layout`.
func sparseVLMInputs(_ layout: TokenLayout, heads: Int = 2, width: Int = 8, seed: UInt64) throws -> (hidden: Tensor, attention: Tensor) {
    var rng = TestRandom(seed)
    let hidden = rng.tensor([layout.totalCount, width])
    let text = layout.textRange.count, s = layout.totalCount
    var values: [Float] = []
    for _ in 0..<heads {
        for t in 0..<text {
            let query = layout.textRange.lowerBound + t
            var row = (0..<s).map { $0 <= query ? rng.uniform() + 0.01 : 0 }
            let sum = row.reduce(0, +)
            row = row.map { $0 / sum }
            values += row
        }
    }
    return (hidden, try Tensor(shape: [heads, text, s], values: values))
}

@Suite struct SparseVLMTests {
    @Test func officialSchedulesGiveTheLayerAveragedNames() throws {
        let expected: [Int: (Double, [Int])] = [192: (192.03, [309, 204, 113]), 128: (128.62, [312, 117, 39]), 64: (64.81, [82, 32, 18])]
        for (retained, (average, counts)) in expected {
            let (schedule, averaged) = try SparseVLM.tokenSchedule(parameters: SparseVLM.Parameters(retainedTokens: retained))
            #expect(abs(averaged - average) < 0.005, "\(retained): \(averaged)")
            let layers = schedule.tokensPerLayer
            #expect(layers.count == 32 && layers[0...2].allSatisfy { $0 == 576 })
            #expect(layers[3] == counts[0] && layers[7] == counts[1] && layers[16] == counts[2] && layers[31] == counts[2])
        }
    }

    @Test func stepKeepsPrefixTextAndTopVisualAndRenumbers() throws {
        let layout = try TokenLayout(imageStart: 3, imageCount: 30, totalCount: 41)
        let (hidden, attention) = try sparseVLMInputs(layout, seed: 1)
        let step = try SparseVLM.sparsify(hidden: hidden, attention: attention, layout: layout, raters: [0, 2, 5], target: 10)
        let kept = step.result.kept
        #expect(kept == kept.sorted() && Set(kept).count == kept.count)
        #expect(Set(0..<3).isSubset(of: Set(kept)) && Set(33..<41).isSubset(of: Set(kept)))
        // The kept visual tokens are the 10 best scores.
        let visual = kept.filter { layout.imageRange.contains($0) }.map { $0 - 3 }
        #expect(visual.count == 10)
        let worstKept = visual.map { step.scores[$0] }.min()!
        #expect((0..<30).filter { !visual.contains($0) }.allSatisfy { step.scores[$0] <= worstKept })
        // 20 deleted → int(0.3·20)+1 = 7 candidates → 1 cluster, placed after the kept visual tokens.
        #expect(step.recycled.count == 7 && step.mergedPositions == [13])
        #expect(step.result.merged.map(\.size).reduce(0, +) == 7)
        #expect(step.visualCount == 11 && step.result.achievedCount == 11)
        #expect(step.hidden.rows == 3 + 11 + 8 && step.positionIds == Array(0..<22))
        #expect(step.hidden.row(21) == hidden.row(40) && step.hidden.row(14) == hidden.row(33))
        #expect(step.result.positionPolicy == .renumber)
        // Candidates are deleted tokens in descending score order.
        let candidateScores = step.recycled.map { step.scores[$0 - 3] }
        #expect(candidateScores == candidateScores.sorted(by: >))
        #expect(step.recycled.allSatisfy { !kept.contains($0) })
    }

    @Test func keepCountIsCappedBelowTheVisualCount() throws {
        let layout = try TokenLayout(imageStart: 2, imageCount: 12, totalCount: 18)
        let (hidden, attention) = try sparseVLMInputs(layout, seed: 2)
        let step = try SparseVLM.sparsify(layer: 2, hidden: hidden, attention: attention, layout: layout, raters: [1, 3])
        #expect(step.result.requestedCount == 300)
        #expect(step.recycled.count == 1 && step.visualCount == 12 && step.hidden.rows == 18)
        let merged = step.clustering!.merged
        for k in 0..<8 { #expect(abs(merged[0, k] - hidden[step.recycled[0], k] / (1 + 1e-6)) < 1e-6) }
    }

    @Test func clusteringAssignsCentresToThemselvesAndAveragesMembers() throws {
        var rng = TestRandom(3)
        let features = rng.tensor([23, 6])
        let noise = (0..<23).map { _ in rng.uniform() }
        let c = try SparseVLM.clusterAndMerge(features, clusterCount: 3, noise: noise)
        #expect(Set(c.centers).count == 3)
        for (k, centre) in c.centers.enumerated() { #expect(c.assignment[centre] == k) }
        for k in 0..<3 {
            let members = (0..<23).filter { c.assignment[$0] == k }
            #expect(!members.isEmpty)
            for d in 0..<6 {
                let mean = members.map { features[$0, d] }.reduce(0, +) / (Float(members.count) + 1e-6)
                #expect(abs(c.merged[k, d] - mean) < 1e-5)
            }
        }
        let again = try SparseVLM.clusterAndMerge(features, clusterCount: 3, noise: noise)
        #expect(again.assignment == c.assignment && again.merged.values == c.merged.values)
        let single = try SparseVLM.clusterAndMerge(features, clusterCount: 1)
        #expect(single.assignment.allSatisfy { $0 == 0 })
    }

    @Test func ratersAreStrictlyAboveTheMeanAndRelative() throws {
        var rng = TestRandom(4)
        let layout = try TokenLayout(imageStart: 4, imageCount: 20, totalCount: 34)
        let raters = try SparseVLM.selectRaters(embeddings: rng.tensor([34, 8]), layout: layout)
        #expect(!raters.isEmpty && raters.count < 10)
        #expect(raters == raters.sorted() && raters.allSatisfy { (0..<10).contains($0) })
    }

    @Test func badInputsThrowAndEmptyImageIsANoOp() throws {
        #expect(throws: CompressionError.self) { try SparseVLM.Parameters(retainedTokens: 100).validate() }
        #expect(throws: CompressionError.self) { try SparseVLM.Parameters().target(layer: 3) }
        #expect(throws: CompressionError.self) { try SparseVLM.Parameters(recycleRatio: 2).validate() }
        let features = Tensor(shape: [4, 2], repeating: 1)
        #expect(throws: CompressionError.self) { try SparseVLM.clusterAndMerge(features, clusterCount: 5) }
        #expect(throws: CompressionError.self) { try SparseVLM.clusterAndMerge(features, clusterCount: 2, noise: [0]) }
        let layout = try TokenLayout(imageStart: 2, imageCount: 10, totalCount: 16)
        let (hidden, attention) = try sparseVLMInputs(layout, seed: 5)
        #expect(throws: CompressionError.self) {
            try SparseVLM.sparsify(hidden: hidden, attention: attention, layout: layout, raters: [4], target: 3)
        }
        #expect(throws: CompressionError.self) {
            try SparseVLM.sparsify(hidden: hidden, attention: attention, layout: layout, raters: [], target: 3)
        }
        let empty = try TokenLayout(imageStart: 2, imageCount: 0, totalCount: 6)
        let step = try SparseVLM.sparsify(hidden: Tensor(zeros: [6, 8]), attention: Tensor(zeros: [2, 4, 6]),
                                          layout: empty, raters: [0], target: 3)
        #expect(step.result.noOpReason != nil && step.hidden.rows == 6)
    }
}
