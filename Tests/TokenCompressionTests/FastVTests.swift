import Testing
@testable import TokenCompression
import Tensors
import TestSupport

@Suite struct FastVTests {
    static let layout = try! TokenLayout(imageStart: 4, imageCount: 40, totalCount: 52)

    @Test func ratioRoundsHalfToEven() throws {
        #expect(try FastV.Parameters(keep: .reductionRatio(0.75)).keptCount(imageCount: 50) == 12)  // 12.5 → 12
        #expect(try FastV.Parameters(keep: .reductionRatio(0.75)).keptCount(imageCount: 14) == 4)   // 3.5 → 4
        #expect(try FastV.Parameters().keptCount(imageCount: 576) == 288)
        #expect(try FastV().schedule(layers: 4, imageCount: 576).tokensPerLayer == [576, 576, 288, 288])
    }

    @Test func keepsTopScoresAndAllPromptTokens() throws {
        let fastv = try FastV(.init(keep: .count(10)))
        for seed in 1...5 as ClosedRange<UInt64> {
            var g = TestRandom(seed)
            let a = g.softmaxRows(3, 52, logitScale: 6)
            let r = try fastv.select(lastRowAttention: a, layout: Self.layout)
            let kept = r.compression.kept
            #expect(kept == Array(Set(kept)).sorted())
            #expect(kept.count == 4 + 10 + 8)
            #expect(Array(kept.prefix(4)) == Array(0..<4) && Array(kept.suffix(8)) == Array(44..<52))
            let keptVisual = Set(kept.filter { Self.layout.imageRange.contains($0) }.map { $0 - 4 })
            let lowestKept = keptVisual.map { r.scores[$0] }.min()!
            for j in 0..<40 where !keptVisual.contains(j) { #expect(r.scores[j] <= lowestKept) }
            // Scores are the head mean of the last row.
            #expect(abs(r.scores[7] - (a[0, 11] + a[1, 11] + a[2, 11]) / 3) < 1e-6)
            // Mask path: kept keys exactly, causal.
            #expect((0..<52).filter { r.keyMask[$0] } == kept)
            let allowed = r.allowedMatrix()
            for i in 0..<52 { for j in 0..<52 { #expect(allowed[i * 52 + j] == (j <= i && r.keyMask[j])) } }
        }
    }

    @Test func budgetCoveringImageIsExplicitNoOp() throws {
        var g = TestRandom(3)
        let a = g.softmaxRows(2, 52, logitScale: 6)
        for rule in [FastV.KeepRule.count(40), .count(100), .reductionRatio(0)] {
            let r = try FastV(.init(keep: rule)).select(lastRowAttention: a, layout: Self.layout)
            #expect(r.compression.noOpReason != nil)
            #expect(r.compression.kept == Array(0..<52) && r.keyMask.allSatisfy { $0 })
        }
    }

    @Test func badInputsThrow() throws {
        #expect(throws: CompressionError.self) { try FastV(.init(layer: 0)) }
        #expect(throws: CompressionError.self) { try FastV(.init(keep: .count(-1))) }
        #expect(throws: CompressionError.self) { try FastV(.init(keep: .reductionRatio(1.2))) }
        var g = TestRandom(4)
        #expect(throws: CompressionError.self) {
            try FastV().select(lastRowAttention: g.softmaxRows(2, 50, logitScale: 6), layout: Self.layout)
        }
    }
}
