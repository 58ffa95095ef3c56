import Foundation
import Testing
@testable import TokenCompression
import TestSupport

/// TeaCache's polynomial fit (`numpy.polyfit(x, y, 4)`'s least squares).
@Suite struct TeaCacheCalibrationTests {
    /// Input changes in the range real runs give (a few percent to tens of percent).
    static func inputs(_ n: Int, seed: UInt64 = 7) -> [Double] {
        var rng = TestRandom(seed)
        return (0..<n).map { _ in 0.01 + 0.3 * Double(rng.uniform()) }
    }

    @Test(arguments: [TeaCache.fluxCoefficients, TeaCache.openSoraCoefficients, TeaCache.latteCoefficients, [2.5, -1, 0.5, 0.25, 0.01]])
    func exactPairsRecoverThePolynomial(coefficients: [Double]) throws {
        let x = Self.inputs(40)
        let y = x.map { TeaCache.rescale($0, coefficients: coefficients) }
        let fit = try TeaCache.fitPolynomial(x: x, y: y)
        #expect(fit.count == 5)
        for (a, b) in zip(fit, coefficients) {
            #expect(abs(a - b) <= 1e-6 * max(1, abs(b)), "fitted \(fit) vs \(coefficients)")
        }
    }

    @Test func noisyPairsGiveTheLeastSquaresSolution() throws {
        // The least-squares residual is orthogonal to every column of the Vandermonde matrix.
        let x = Self.inputs(60, seed: 3)
        var rng = TestRandom(11)
        let y = x.map { 0.2 + 3 * $0 - 4 * $0 * $0 + Double(rng.uniform() - 0.5) * 0.05 }
        let fit = try TeaCache.fitPolynomial(x: x, y: y)
        let residual = zip(x, y).map { TeaCache.rescale($0, coefficients: fit) - $1 }
        for k in 0...4 {
            let dot = zip(x, residual).reduce(0.0) { $0 + pow($1.0, Double(k)) * $1.1 }
            #expect(abs(dot) < 1e-9, "column x^\(k): residual·column = \(dot)")
        }
        // And it beats a perturbed polynomial.
        func sse(_ c: [Double]) -> Double { zip(x, y).reduce(0) { let e = TeaCache.rescale($1.0, coefficients: c) - $1.1; return $0 + e * e } }
        for i in 0..<5 { var c = fit; c[i] += 1e-3; #expect(sse(c) > sse(fit)) }
    }

    @Test func lowerDegreesAndBadInputs() throws {
        let x = [0.1, 0.2, 0.3, 0.4]
        let line = try TeaCache.fitPolynomial(x: x, y: x.map { 2 * $0 + 1 }, degree: 1)
        #expect(abs(line[0] - 2) < 1e-12 && abs(line[1] - 1) < 1e-12)
        #expect(throws: CompressionError.self) { try TeaCache.fitPolynomial(x: x, y: x) }  // 4 distinct inputs for 5 terms
        #expect(throws: CompressionError.self) { try TeaCache.fitPolynomial(x: [0.1, 0.1, 0.1, 0.1, 0.1, 0.2], y: [1, 1, 1, 1, 1, 2]) }
        #expect(throws: CompressionError.self) { try TeaCache.fitPolynomial(x: [0, 0.1, .nan, 0.3, 0.4], y: [0, 1, 2, 3, 4]) }
        #expect(throws: CompressionError.self) { try TeaCache.fitPolynomial(x: [0.1, 0.2], y: [1]) }
        #expect(throws: CompressionError.self) { try TeaCache.fitPolynomial(x: [0, 0, 0, 0, 0], y: [1, 2, 3, 4, 5], degree: 0) }
    }
}
