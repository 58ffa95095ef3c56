import Foundation
import Testing
import Tensors
import TestSupport

/// The shared test generator: its draws are SplitMix64's, so the seeds the tests use keep their values.
@Suite struct TestRandomTests {
    @Test func drawsAreSplitMix64Transformed() {
        var g = TestRandom(3), s = SplitMix64(seed: 3)
        #expect(g.next() == s.next())
        #expect(g.uniform() == Float(s.next() >> 40) / Float(1 << 24))
        #expect(g.signed() == Float(s.next() >> 40) / Float(1 << 24) * 2 - 1)
        let u = max(Float(s.next() >> 40) / Float(1 << 24), 1e-7), v = Float(s.next() >> 40) / Float(1 << 24)
        #expect(g.normal() == (-2 * Foundation.log(u)).squareRoot() * Foundation.cos(2 * Float.pi * v))
        #expect(g.int(4...9) == 4 + Int(s.next() % 6))
    }

    @Test func rangesShapesAndRows() {
        var g = TestRandom(5)
        let unit = g.tensor([40, 25], .unit).values, signed = g.tensor(40, 25).values
        #expect(unit.allSatisfy { $0 >= 0 && $0 < 1 } && unit.contains { $0 > 0.5 })
        #expect(signed.allSatisfy { $0 >= -1 && $0 < 1 } && signed.contains { $0 < 0 })
        let normal = g.tensor([4000], .normal).values
        let mean = normal.reduce(0, +) / 4000, variance = normal.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 4000
        #expect(abs(mean) < 0.1 && abs(variance - 1) < 0.1)
        #expect((0..<200).map { _ in g.int(-2...2) }.allSatisfy { (-2...2).contains($0) })
        let rows = g.softmaxRows(3, 7, logitScale: 4)
        #expect(rows.shape == [3, 7])
        for r in 0..<3 { #expect(abs(rows.row(r).reduce(0, +) - 1) < 1e-6) }
    }

    @Test func aSeedIsReproducible() {
        var a = TestRandom(9), b = TestRandom(9), c = TestRandom(10)
        #expect(a.tensor(6, 5).values == b.tensor(6, 5).values)
        #expect(a.tensor(6, 5).values != c.tensor(6, 5).values)
    }
}
