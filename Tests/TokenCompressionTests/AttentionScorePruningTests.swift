import Testing
@testable import TokenCompression
import Tensors
import TestSupport

@Suite struct AttentionScorePruningTests {
    static let layout = try! TokenLayout(imageStart: 2, imageCount: 30, totalCount: 40)

    @Test func keepsHighestHeadMeanAttention() throws {
        var g = TestRandom(1)
        let a = g.tensor(4, 40).map { $0 * 4 }.softmaxRows()
        let r = try AttentionScorePruning(.init(budget: .count(7))).select(lastRowAttention: a, layout: Self.layout)
        let mean = { (j: Int) in (0..<4).reduce(Float(0)) { $0 + a[$1, j] } / 4 }
        let keptVisual = r.kept.filter { Self.layout.imageRange.contains($0) }
        #expect(keptVisual.count == 7 && r.kept.count == 2 + 7 + 8)
        #expect(r.kept == Array(Set(r.kept)).sorted())
        let lowest = keptVisual.map(mean).min()!
        for j in Self.layout.imageRange where !keptVisual.contains(j) { #expect(mean(j) <= lowest) }
        // Same set as FastV with the same count.
        let fastv = try FastV(.init(keep: .count(7))).select(lastRowAttention: a, layout: Self.layout)
        #expect(fastv.compression.kept == r.kept)
    }

    @Test func noOpAndErrors() throws {
        var g = TestRandom(2)
        let a = g.tensor(2, 40).softmaxRows()
        let r = try AttentionScorePruning(.init(budget: .count(30))).select(lastRowAttention: a, layout: Self.layout)
        #expect(r.noOpReason != nil && r.kept == Array(0..<40))
        #expect(throws: CompressionError.self) { try AttentionScorePruning(.init(layer: 0)) }
        #expect(throws: CompressionError.self) {
            try AttentionScorePruning().select(lastRowAttention: g.tensor(2, 39), layout: Self.layout)
        }
    }
}
