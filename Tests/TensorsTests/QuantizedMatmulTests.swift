import Foundation
import Testing
@testable import Tensors

/// Weight-only int8 / int4: the rounding error of quantization is bounded by half a step, and the
/// kernels (every level this CPU runs, the portable one, the tiled path) compute x · dequantized(W)ᵀ.
@Suite struct QuantizedMatmulTests {
    static func quantized(_ w: [Float], rows: Int, columns: Int, _ format: QuantizedFormat) throws -> (data: [UInt8], scales: [Float]) {
        try w.withUnsafeBufferPointer { try QuantizedMatmul.quantize($0.baseAddress!, rows: rows, columns: columns, format: format) }
    }

    static func dequantized(_ q: (data: [UInt8], scales: [Float]), rows: Int, columns: Int, _ format: QuantizedFormat) -> [Float] {
        var out = [Float](repeating: .nan, count: rows * columns)
        q.data.withUnsafeBytes { d in
            q.scales.withUnsafeBufferPointer { s in
                let m = QuantizedMatrix(format: format, rows: rows, columns: columns, data: d.baseAddress!, scales: s.baseAddress!)
                out.withUnsafeMutableBufferPointer { m.dequantize(rows: 0, count: rows, into: $0.baseAddress!) }
            }
        }
        return out
    }

    @Test(arguments: QuantizedFormat.allCases)
    func roundingErrorIsAtMostHalfAStep(_ format: QuantizedFormat) throws {
        let (rows, columns) = (7, 96)
        var w = HalfMatmulTests.randomFloats(rows * columns, seed: 3)
        for i in 0..<columns { w[2 * columns + i] = 0 }  // an all-zero row: scale 0, exact zeros
        w[5] = 3.5  // one outlier stretches its row's (or group's) step
        let q = try Self.quantized(w, rows: rows, columns: columns, format)
        let back = Self.dequantized(q, rows: rows, columns: columns, format)
        let span = format == .int8 ? columns : QuantizedFormat.groupSize
        for i in 0..<w.count {
            let step = q.scales[i / span]
            #expect(abs(back[i] - w[i]) <= step / 2 * 1.0001 + 1e-7, "\(format) element \(i): \(w[i]) → \(back[i]), step \(step)")
        }
        #expect(back[(2 * columns)..<(3 * columns)].allSatisfy { $0 == 0 })
        // The step is max |w| / 127 (int8) or / 7 (int4) of the row or group.
        #expect(abs(q.scales[0] - 3.5 / (format == .int8 ? 127 : 7)) < 1e-6)
    }

    @Test func int4NeedsWholeGroupsAndFiniteWeights() {
        #expect(throws: TensorError.self) { try Self.quantized([Float](repeating: 1, count: 30), rows: 1, columns: 30, .int4) }
        #expect(throws: TensorError.self) { try Self.quantized([1, .nan, 2], rows: 1, columns: 3, .int8) }
    }

    @Test(arguments: QuantizedFormat.allCases)
    func kernelsMatchFloat64OverDequantizedWeights(_ format: QuantizedFormat) throws {
        let shapes: [(Int, Int, Int)] = format == .int8
            ? [(1, 1, 1), (1, 5, 17), (2, 7, 33), (3, 9, 100), (8, 13, 47), (9, 21, 65), (17, 40, 130)]
            : [(1, 1, 32), (1, 5, 64), (2, 7, 96), (3, 9, 160), (8, 13, 32), (9, 21, 64), (17, 40, 224)]
        for (m, n, k) in shapes {
            let w = HalfMatmulTests.randomFloats(n * k, seed: UInt64(n * k))
            let q = try Self.quantized(w, rows: n, columns: k, format)
            let deq = Self.dequantized(q, rows: n, columns: k, format)
            let x = HalfMatmulTests.randomFloats(m * k, seed: UInt64(m + 100))
            for accumulate in [false, true] {
                let y0 = accumulate ? HalfMatmulTests.randomFloats(m * n, seed: 7) : [Float](repeating: .nan, count: m * n)
                for level in FastMath.availableLevels {
                    var y = y0
                    q.data.withUnsafeBytes { d in
                        q.scales.withUnsafeBufferPointer { s in
                            let matrix = QuantizedMatrix(format: format, rows: n, columns: k, data: d.baseAddress!, scales: s.baseAddress!)
                            y.withUnsafeMutableBufferPointer { QuantizedMatmul.linear(x: x, rows: m, matrix: matrix, into: $0.baseAddress!, accumulate: accumulate, level: level) }
                        }
                    }
                    for r in 0..<m {
                        for j in 0..<n {
                            var s = accumulate ? Double(y0[r * n + j]) : 0, a = abs(s)
                            for i in 0..<k { let p = Double(x[r * k + i]) * Double(deq[j * k + i]); s += p; a += abs(p) }
                            #expect(abs(Double(y[r * n + j]) - s) <= a * Double(k + 2) * 1.2e-7 + 1e-12,
                                    "\(format) \(level) m \(m) n \(n) k \(k) [\(r), \(j)]: \(y[r * n + j]) vs \(s)")
                        }
                    }
                }
            }
        }
    }
}
