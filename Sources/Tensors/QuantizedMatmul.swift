import Foundation
#if arch(x86_64)
import CVectorKernels
#endif

/// Weight-only quantization of a `[out, in]` matrix: symmetric integers and Float32 scales, the
/// layout `CVectorKernels/quantgemm.h` reads.
public enum QuantizedFormat: String, Sendable, CaseIterable {
    /// One signed byte per weight, one scale per output row: `w ≈ s_j · q`, `q ∈ [−127, 127]`.
    case int8
    /// Four bits per weight in groups of 32 along a row, one scale per group: `q ∈ [−7, 7]` stored as
    /// `q + 8`; byte `t` of a group's 16 holds element `t` (low nibble) and `t + 16` (high nibble).
    case int4

    public static let groupSize = 32

    /// Bytes of quantized data for a `[rows, columns]` matrix.
    public func dataBytes(rows: Int, columns: Int) -> Int { self == .int8 ? rows * columns : rows * columns / 2 }
    /// Scales of a `[rows, columns]` matrix.
    public func scaleCount(rows: Int, columns: Int) -> Int { self == .int8 ? rows : rows * columns / Self.groupSize }
    /// Largest stored magnitude.
    var maxLevel: Float { self == .int8 ? 127 : 7 }
}

/// A quantized matrix in memory or in a mapping (the pointers must outlive its use).
public struct QuantizedMatrix: @unchecked Sendable {
    public let format: QuantizedFormat
    public let rows: Int
    public let columns: Int
    public let data: UnsafeRawPointer
    public let scales: UnsafePointer<Float>

    public init(format: QuantizedFormat, rows: Int, columns: Int, data: UnsafeRawPointer, scales: UnsafePointer<Float>) {
        self.format = format
        self.rows = rows
        self.columns = columns
        self.data = data
        self.scales = scales
    }

    /// Rows `j0..<j0+count` as Float32 (`q · s`).
    public func dequantize(rows j0: Int, count: Int, into dst: UnsafeMutablePointer<Float>) {
        let k = columns
        switch format {
        case .int8:
            let q = data.assumingMemoryBound(to: Int8.self)
            for j in j0..<(j0 + count) {
                let s = scales[j], out = dst + (j - j0) * k, row = q + j * k
                for i in 0..<k { out[i] = Float(row[i]) * s }
            }
        case .int4:
            let q = data.assumingMemoryBound(to: UInt8.self)
            let groups = k / QuantizedFormat.groupSize
            for j in j0..<(j0 + count) {
                let out = dst + (j - j0) * k
                for g in 0..<groups {
                    let s = scales[j * groups + g], bytes = q + j * (k / 2) + g * 16, o = out + g * 32
                    for t in 0..<16 {
                        o[t] = Float(Int(bytes[t] & 0xF) - 8) * s
                        o[t + 16] = Float(Int(bytes[t] >> 4) - 8) * s
                    }
                }
            }
        }
    }
}

/// `y = x · Wᵀ` with a quantized `W`: the direct kernels for few rows (decoding reads 1 or ½ byte
/// per weight instead of 2 or 4), dequantized pooled tiles + sgemm for many rows, as `HalfMatmul`.
public enum QuantizedMatmul {
    /// Products with at most this many rows take the direct kernel.
    public static let smallRowLimit = 8

    /// Levels of the direct kernels (no F16C needed): as `FastMath.level`.
    public static var level: FastMath.Level { FastMath.level }

    /// Quantizes a `[rows, columns]` Float32 matrix (scale = max |w| / max level per row or group;
    /// round to nearest). Throws when int4's columns are not a multiple of 32 or a value is not finite.
    public static func quantize(_ w: UnsafePointer<Float>, rows: Int, columns k: Int, format: QuantizedFormat) throws -> (data: [UInt8], scales: [Float]) {
        if format == .int4, k % QuantizedFormat.groupSize != 0 {
            throw TensorError.shape("int4 quantization", "in_features \(k) is not a multiple of \(QuantizedFormat.groupSize)")
        }
        var data = [UInt8](repeating: 0, count: format.dataBytes(rows: rows, columns: k))
        var scales = [Float](repeating: 0, count: format.scaleCount(rows: rows, columns: k))
        let span = format == .int8 ? k : QuantizedFormat.groupSize
        var bad = false
        for b in 0..<scales.count {
            let start = w + b * span
            var peak: Float = 0
            for i in 0..<span { let v = abs(start[i]); if !v.isFinite { bad = true }; peak = max(peak, v) }
            let s = peak / format.maxLevel
            scales[b] = s
            let inverse: Float = s > 0 ? 1 / s : 0
            for i in 0..<span {
                let q = Int(max(-format.maxLevel, min(format.maxLevel, (start[i] * inverse).rounded())))
                switch format {
                case .int8: data[b * span + i] = UInt8(bitPattern: Int8(q))
                case .int4:
                    let byte = b * 16 + (i & 15)
                    data[byte] |= UInt8(q + 8) << (i < 16 ? 0 : 4)
                }
            }
        }
        if bad { throw TensorError.shape("quantization", "weights contain a non-finite value") }
        return (data, scales)
    }

    /// `y[m, n] (+)= x[m, k] · Wᵀ`; rows of `x` and `y` contiguous.
    public static func linear(x: UnsafePointer<Float>, rows m: Int, matrix w: QuantizedMatrix, into y: UnsafeMutablePointer<Float>,
                              accumulate: Bool, level: FastMath.Level = QuantizedMatmul.level) {
        let n = w.rows, k = w.columns
        guard m > 0, n > 0 else { return }
        if m <= smallRowLimit {
            gemv(x: x, rows: m, matrix: w, into: y, accumulate: accumulate, level: level)
        } else {
            HalfMatmul.tiledSgemm(x: x, rows: m, outFeatures: n, inFeatures: k, into: y, accumulate: accumulate) { j0, count, buffer in
                w.dequantize(rows: j0, count: count, into: buffer)
            }
        }
    }

    /// The direct kernel, output rows shared over threads.
    public static func gemv(x: UnsafePointer<Float>, rows m: Int, matrix w: QuantizedMatrix, into y: UnsafeMutablePointer<Float>,
                            accumulate: Bool, level: FastMath.Level = QuantizedMatmul.level) {
        let n = w.rows, k = w.columns
        HalfMatmul.forEachPiece(outputs: n, block: 1, minimumOutputs: max(1, (1 << 17) / max(k, 1))) { r in
            kernel(x: x, m: m, w: w, j0: r.lowerBound, j1: r.upperBound, y: y, accumulate: accumulate, level: level)
        }
    }

    static func kernel(x: UnsafePointer<Float>, m: Int, w: QuantizedMatrix, j0: Int, j1: Int, y: UnsafeMutablePointer<Float>,
                       accumulate: Bool, level: FastMath.Level) {
        let n = w.rows, k = w.columns
        #if arch(x86_64)
        let acc: Int32 = accumulate ? 1 : 0
        let q8 = w.data.assumingMemoryBound(to: Int8.self), q4 = w.data.assumingMemoryBound(to: UInt8.self)
        switch (level, w.format) {
        case (.avx512, .int8): tc_q8_gemm_avx512(x, m, k, q8, w.scales, k, j0, j1, y, n, acc); return
        case (.avx512, .int4): tc_q4_gemm_avx512(x, m, k, q4, w.scales, k, j0, j1, y, n, acc); return
        case (.avx2, .int8): tc_q8_gemm_avx2(x, m, k, q8, w.scales, k, j0, j1, y, n, acc); return
        case (.avx2, .int4): tc_q4_gemm_avx2(x, m, k, q4, w.scales, k, j0, j1, y, n, acc); return
        case (.portable, _): break
        }
        #endif
        withUnsafeTemporaryAllocation(of: Float.self, capacity: k) { row in
            let r0 = row.baseAddress!
            for j in j0..<j1 {
                w.dequantize(rows: j, count: 1, into: r0)
                for r in 0..<m {
                    let xr = x + r * k
                    var s: Float = 0
                    for i in 0..<k { s += xr[i] * r0[i] }
                    y[r * n + j] = accumulate ? y[r * n + j] + s : s
                }
            }
        }
    }
}
