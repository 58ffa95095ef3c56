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

/// Every vector level this CPU runs (AVX-512, AVX2, portable) against libm, tails included.
@Suite struct FastMathLevelTests {
    static let inputs: [Float] = (0..<1003).map { Float($0) * 0.1777 - 89 } + [-.infinity, .infinity, 0, -200, 200]

    @Test func levelsAreOrderedAndTheBestIsFirst() {
        #expect(FastMath.availableLevels.first == FastMath.level)
        #expect(FastMath.availableLevels.last == .portable)
    }

    @Test(arguments: FastMath.availableLevels)
    func bufferExpMatchesLibm(_ level: FastMath.Level) {
        let x = Self.inputs
        for count in [0, 1, 7, 8, 15, 16, 17, x.count] {
            var y = [Float](repeating: -1, count: count)
            y.withUnsafeMutableBufferPointer { FastMath.exp(x, times: 1, plus: 0, into: $0.baseAddress!, count: count, level: level) }
            for i in 0..<count {
                let reference = expf(x[i])
                if reference == 0 || reference.isInfinite || x[i] < -87.33 || x[i] > 88.72 {
                    #expect(y[i] == (x[i] < -87.33 ? 0 : (x[i] > 88.72 ? .infinity : y[i])), "\(level) x=\(x[i]) got \(y[i])")
                } else {
                    #expect(abs(y[i] - reference) <= 4e-7 * reference, "\(level) x=\(x[i]) got \(y[i]) want \(reference)")
                }
            }
        }
        var nan: [Float] = [.nan]
        nan.withUnsafeMutableBufferPointer { FastMath.exp($0.baseAddress!, into: $0.baseAddress!, count: 1, level: level) }
        #expect(nan[0].isNaN)
    }

    @Test(arguments: FastMath.availableLevels)
    func activationsAndSoftmaxMatchTheScalarDefinitions(_ level: FastMath.Level) {
        let x: [Float] = (0..<77).map { Float($0) * 0.37 - 14 }
        let u: [Float] = (0..<77).map { Float($0 % 5) - 2 }
        var silu = [Float](repeating: 0, count: x.count), gelu = silu, glu = silu
        silu.withUnsafeMutableBufferPointer { FastMath.xSigmoid(x, scale: 1, into: $0.baseAddress!, count: x.count, level: level) }
        gelu.withUnsafeMutableBufferPointer { FastMath.xSigmoid(x, scale: 1.702, into: $0.baseAddress!, count: x.count, level: level) }
        glu.withUnsafeMutableBufferPointer { FastMath.swiGLU(gate: x, up: u, into: $0.baseAddress!, count: x.count, level: level) }
        for i in x.indices {
            let s = x[i] / (1 + expf(-x[i])), q = x[i] / (1 + expf(-1.702 * x[i]))
            #expect(abs(silu[i] - s) <= 1e-6 * max(1, abs(s)), "\(level) silu \(x[i])")
            #expect(abs(gelu[i] - q) <= 1e-6 * max(1, abs(q)), "\(level) quick-gelu \(x[i])")
            #expect(abs(glu[i] - s * u[i]) <= 1e-6 * max(1, abs(s * u[i])), "\(level) swiglu \(x[i])")
        }
        for count in [1, 5, 16, 33] {
            var row: [Float] = (0..<count).map { $0 % 4 == 1 ? -.infinity : Float($0) * 0.3 - 2 }
            let finite = row.filter { $0.isFinite }
            let top = finite.max()!
            let z = finite.map { expf($0 - top) }.reduce(0, +)
            row.withUnsafeMutableBufferPointer { softmaxInPlace($0.baseAddress!, count: count, level: level) }
            for (i, v) in row.enumerated() {
                let reference = (i % 4 == 1) ? 0 : expf(Float(i) * 0.3 - 2 - top) / z
                #expect(abs(v - reference) <= 1e-6, "\(level) softmax[\(i)] of \(count)")
            }
            var masked = [Float](repeating: -.infinity, count: count)
            masked.withUnsafeMutableBufferPointer { softmaxInPlace($0.baseAddress!, count: count, level: level) }
            #expect(masked.allSatisfy { $0 == 0 })
        }
    }
}
