import Testing
@testable import TokenCompression
import Tensors
import TestSupport

@Suite struct NormPruningTests {
    static let layout = try! TokenLayout(imageStart: 3, imageCount: 25, totalCount: 33)

    func norms(_ x: Tensor, l1: Bool) -> [Float] {
        Self.layout.imageRange.map { i in
            l1 ? x.row(i).reduce(0) { $0 + abs($1) } : x.row(i).reduce(0) { $0 + $1 * $1 }.squareRoot()
        }
    }

    @Test(arguments: NormPruning.Source.allCases)
    func keepsLargestOrSmallestNorms(source: NormPruning.Source) throws {
        var g = TestRandom(source == .keys ? 5 : 7)
        let x = g.tensor(33, 12)
        for l1 in [true, false] {
            for largest in [true, false] {
                let method = try NormPruning(source, .init(budget: .count(6), l1: l1, keepLargest: largest))
                let r = try method.select(x, layout: Self.layout)
                let n = norms(x, l1: l1)
                let kept = Set(r.kept.filter { Self.layout.imageRange.contains($0) }.map { $0 - 3 })
                #expect(kept.count == 6 && r.kept.count == 3 + 6 + 5)
                #expect(r.kept == Array(Set(r.kept)).sorted())
                #expect(Array(r.kept.prefix(3)) == [0, 1, 2] && Array(r.kept.suffix(5)) == Array(28..<33))
                for j in 0..<25 where !kept.contains(j) {
                    for i in kept { #expect(largest ? n[j] <= n[i] : n[j] >= n[i]) }
                }
                let s = try method.scores(x, layout: Self.layout)
                #expect(zip(s, n).allSatisfy { abs(Float($0) - $1) < 1e-4 })
            }
        }
    }

    @Test(arguments: NormPruning.Source.allCases)
    func noOpAndErrors(source: NormPruning.Source) throws {
        var g = TestRandom(6)
        let x = g.tensor(33, 8)
        let r = try NormPruning(source, .init(budget: .ratio(1))).select(x, layout: Self.layout)
        #expect(r.noOpReason != nil && r.kept == Array(0..<33))
        #expect(throws: CompressionError.self) { try NormPruning(source, .init(layer: 0)) }
        #expect(throws: CompressionError.self) { try NormPruning(source, .init(budget: .ratio(2))) }
        #expect(throws: CompressionError.self) { try NormPruning(source).select(g.tensor(30, 8), layout: Self.layout) }
    }
}
