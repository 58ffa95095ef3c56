import Foundation
import Testing
import Tensors
@testable import TokenCompression
import TestSupport

/// The per-method helpers `L2Norm` replaced, as they were written (references for bit-for-bit agreement).
private enum FormerHelpers {
    /// FiCoCo-V and GlobalCom² `l2Normalized`, PruMerge's keys: float64 sum, float32 norm, eps 1e-12.
    static func ficocoV(_ x: [Float]) -> [Float] {
        let norm = max(Float(x.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()), 1e-12)
        return x.map { $0 / norm }
    }
    /// ToCa `l2Normalized`: float32 sum, eps 1e-12.
    static func toCa(_ x: [Float]) -> [Float] {
        var sum: Float = 0
        for v in x { sum += v * v }
        let norm = max(sum.squareRoot(), 1e-12)
        return x.map { $0 / norm }
    }
    /// VisionZip's metric rows: float32 sum, no eps.
    static func visionZip(_ row: [Float]) -> [Float] {
        let norm = row.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
        return row.map { $0 / norm }
    }
    /// FastVID's `unit`: widened to float64, no eps.
    static func fastVID(_ v: [Float]) -> [Double] {
        let norm = v.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        return v.map { Double($0) / norm }
    }
    /// HoliTom / PruneVid / DyCoke unit vectors: float64, eps 1e-12.
    static func holiTomUnit(_ v: [Double]) -> [Double] {
        let norm = max(v.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
        return v.map { $0 / norm }
    }
    /// MustDrop's window units: float64, eps 1e-8.
    static func mustDrop(_ x: [Float]) -> [Double] {
        var sq = 0.0
        for v in x { let d = Double(v); sq += d * d }
        let norm = max(sq.squareRoot(), 1e-8)
        return x.map { Double($0) / norm }
    }
    /// HoliTom's consecutive-frame cosine (separate reductions).
    static func holiTomCosine(_ a: [Double], _ b: [Double]) -> Double {
        let dot = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
        let na = a.reduce(0) { $0 + $1 * $1 }.squareRoot(), nb = b.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return dot / (max(na, 1e-8) * max(nb, 1e-8))
    }
    /// FrameFusion / FastVID DySeg cosine: no eps.
    static func frameFusionCosine(_ a: [Float], _ b: [Float]) -> Double {
        var dot = 0.0, na = 0.0, nb = 0.0
        for c in 0..<a.count { dot += Double(a[c]) * Double(b[c]); na += Double(a[c]) * Double(a[c]); nb += Double(b[c]) * Double(b[c]) }
        return dot / (na.squareRoot() * nb.squareRoot())
    }
    /// `Selection.cosine` (DART, ToCa): float32, eps 1e-8.
    static func selectionCosine(_ a: [Float], _ b: [Float]) -> Float {
        var dot: Float = 0, na: Float = 0, nb: Float = 0
        for i in 0..<a.count { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i] }
        return dot / (max(na.squareRoot(), 1e-8) * max(nb.squareRoot(), 1e-8))
    }
}

@Suite struct L2NormTests {
    @Test func handComputedNormsAndUnits() {
        #expect(L2Norm.norm([3.0, 4.0]) == 5)
        #expect(L2Norm.norm([Float(3), 4]) == 5.0)
        #expect(L2Norm.float32Norm([3, 4]) == 5)
        #expect(L2Norm.normalized([3.0, -4.0], eps: 1e-12) == [0.6, -0.8])
        #expect(L2Norm.normalized([Float(3), -4], eps: 1e-12, accumulation: .float32) == [0.6, -0.8])
        #expect(L2Norm.normalized([Float(3), -4], eps: 1e-12, accumulation: .float64) == [0.6, -0.8])
        #expect(abs(L2Norm.cosine([1.0, 0], [1.0, 1], eps: 1e-8) - 0.5.squareRoot()) < 1e-15)
        #expect(L2Norm.cosine([2.0, 0], [-5.0, 0], eps: 0) == -1)
    }

    /// eps clamps the norm; 0 divides by the raw norm, so a zero vector gives NaN as `x / x.norm()` does.
    @Test func epsilonClampsOnlyWhenGiven() {
        #expect(L2Norm.normalized([0.0, 0], eps: 1e-12) == [0, 0])
        let tiny = L2Norm.normalized([1e-13, 0.0], eps: 1e-12)
        #expect(abs(tiny[0] - 0.1) < 1e-15 && tiny[1] == 0)
        #expect(L2Norm.normalized([0.0, 0], eps: 0).allSatisfy { $0.isNaN })
        #expect(L2Norm.normalized([Float(0), 0], eps: 0, accumulation: .float32).allSatisfy { $0.isNaN })
        #expect(L2Norm.cosine([0.0, 0], [1.0, 0], eps: 1e-8) == 0)
        #expect(L2Norm.cosine([0.0, 0], [1.0, 0], eps: 0).isNaN)
    }

    /// 1 + 10 000 · (1e-4)²: each float32 addition of 1e-8 to 1 rounds away, the float64 sum keeps it.
    @Test func accumulationDecidesTheFloat32Norm() {
        let x = [Float(1)] + [Float](repeating: 1e-4, count: 10_000)
        #expect(L2Norm.float32Norm(x) == 1)
        #expect(abs(L2Norm.norm(x) - 1.0001.squareRoot()) < 1e-9)
        #expect(L2Norm.normalized(x, eps: 1e-12, accumulation: .float32)[0] == 1)
        #expect(L2Norm.normalized(x, eps: 1e-12, accumulation: .float64)[0] < 1)
    }

    @Test func bufferVariantsMatchTheArrayOnes() {
        var g = TestRandom(31)
        let x = (0..<19).map { _ in g.signed() }, y = (0..<19).map { _ in g.signed() }
        for accumulation in [L2Norm.Accumulation.float32, .float64] {
            var out = [Float](repeating: 0, count: 19)
            x.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { L2Norm.normalize(src, into: $0, eps: 1e-12, accumulation: accumulation) }
            }
            #expect(out == L2Norm.normalized(x, eps: 1e-12, accumulation: accumulation))
        }
        let c32 = x.withUnsafeBufferPointer { a in y.withUnsafeBufferPointer { b in L2Norm.cosine(a, b, eps: 1e-8) } }
        let c64 = L2Norm.cosine(x.map(Double.init), y.map(Double.init), eps: 1e-8)
        #expect(abs(Double(c32) - c64) < 1e-6)
    }

    /// Bit-for-bit agreement with each helper the methods had before.
    @Test func agreesWithTheFormerPerMethodHelpers() {
        var g = TestRandom(32)
        for width in [1, 2, 7, 64, 333] {
            let x = (0..<width).map { _ in g.signed() * 3 }, y = (0..<width).map { _ in g.signed() }
            let xd = x.map(Double.init), yd = y.map(Double.init)
            #expect(L2Norm.normalized(x, eps: 1e-12, accumulation: .float64) == FormerHelpers.ficocoV(x))
            #expect(L2Norm.normalized(x, eps: 1e-12, accumulation: .float32) == FormerHelpers.toCa(x))
            #expect(L2Norm.normalized(x, eps: 0, accumulation: .float32) == FormerHelpers.visionZip(x))
            #expect(L2Norm.normalized(xd, eps: 0) == FormerHelpers.fastVID(x))
            #expect(L2Norm.normalized(xd, eps: 1e-12) == FormerHelpers.holiTomUnit(xd))
            #expect(L2Norm.normalized(xd, eps: 1e-8) == FormerHelpers.mustDrop(x))
            let ux = L2Norm.normalized(xd, eps: 1e-12), uy = L2Norm.normalized(yd, eps: 1e-12)
            #expect(L2Norm.cosine(ux, uy, eps: 1e-8) == FormerHelpers.holiTomCosine(ux, uy))
            #expect(L2Norm.cosine(xd, yd, eps: 0) == FormerHelpers.frameFusionCosine(x, y))
            let c = x.withUnsafeBufferPointer { a in y.withUnsafeBufferPointer { b in L2Norm.cosine(a, b, eps: 1e-8) } }
            #expect(c == FormerHelpers.selectionCosine(x, y))
            #expect(L2Norm.float32Norm(x) == x.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot())
        }
    }
}
