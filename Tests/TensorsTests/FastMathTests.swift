import Foundation
import Testing
@testable import Tensors

@Suite struct FastMathTests {
    @Test func expMatchesLibmOnTheWholeRange() {
        var worst: Float = 0
        var x: Float = -87
        while x < 88.5 {
            let reference = expf(x)
            worst = max(worst, abs(FastMath.exp(x) - reference) / reference)
            x += 0.0137
        }
        #expect(worst < 4e-7, "worst relative error \(worst)")
    }

    @Test func expEdgeCases() {
        #expect(FastMath.exp(-.infinity) == 0)
        #expect(FastMath.exp(-200) == 0)
        #expect(FastMath.exp(.infinity) == .infinity)
        #expect(FastMath.exp(200) == .infinity)
        #expect(FastMath.exp(0) == 1)
        #expect(FastMath.exp(.nan).isNaN)
    }

    @Test func bufferExpAppliesScaleAndShift() {
        let x: [Float] = (0..<37).map { Float($0) * 0.25 - 4 }
        var y = [Float](repeating: 0, count: x.count)
        y.withUnsafeMutableBufferPointer { FastMath.exp(x, times: -2, plus: 0.5, into: $0.baseAddress!, count: x.count) }
        for (a, b) in zip(x, y) { #expect(abs(b - expf(-2 * a + 0.5)) <= 4e-7 * expf(-2 * a + 0.5)) }
    }

    @Test func sumAndMaxCoverTailsAndEmptyInput() {
        for count in [0, 1, 7, 8, 9, 31] {
            let x: [Float] = (0..<count).map { Float(($0 * 7919) % 23) - 11 }
            #expect(FastMath.sum(x, count: count) == x.reduce(0, +))
            #expect(FastMath.max(x, count: count) == (x.max() ?? -.infinity))
        }
    }

    @Test func softmaxOfMaskedRowsIsZeroAndOthersSumToOne() {
        var row: [Float] = [1, -.infinity, 3, 2, -.infinity, 0, 5, 4, 1.5]
        row.withUnsafeMutableBufferPointer { softmaxInPlace($0.baseAddress!, count: $0.count) }
        #expect(row[1] == 0 && row[4] == 0)
        #expect(abs(row.reduce(0, +) - 1) < 1e-6)
        let e: [Float] = [1, 3, 2, 0, 5, 4, 1.5].map { expf($0 - 5) }
        #expect(abs(row[6] - e[4] / e.reduce(0, +)) < 1e-6)
        var masked: [Float] = [-.infinity, -.infinity]
        masked.withUnsafeMutableBufferPointer { softmaxInPlace($0.baseAddress!, count: 2) }
        #expect(masked == [0, 0])
    }
}
