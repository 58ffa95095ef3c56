import Foundation
import Testing
@testable import Tensors

/// Half-precision products against a Float64 reference, at every level this CPU runs and the
/// portable fallback, on sizes that leave tails in every blocked dimension.
@Suite struct HalfMatmulTests {
    /// Random half weights in ±[2⁻¹⁰, 2): F16 from sign/exponent/mantissa fields, BF16 from the top
    /// half of a random Float32 (a subnormal or overflowing value is never produced).
    static func randomHalf(_ count: Int, _ format: HalfFormat, seed: UInt64) -> [UInt16] {
        var s = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func next() -> UInt64 { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s }
        return (0..<count).map { _ in
            let r = next()
            let sign = UInt16(r & 1) << 15
            switch format {
            case .f16: return sign | UInt16(5 + (r >> 1) % 11) << 10 | UInt16((r >> 8) & 0x3FF)
            case .bf16: return sign | UInt16(117 + (r >> 1) % 11) << 7 | UInt16((r >> 8) & 0x7F)
            }
        }
    }

    static func randomFloats(_ count: Int, seed: UInt64) -> [Float] {
        var s = seed &* 0xD1B5_4A32_D192_ED03 | 1
        return (0..<count).map { _ in
            s ^= s << 13; s ^= s >> 7; s ^= s << 17
            return Float(s >> 40) / Float(1 << 24) * 2 - 1
        }
    }

    /// Float64 x·Wᵀ (+ y0) and the bound Σ|x·w| per output, for an error tolerance relative to the
    /// magnitudes summed (Float32 accumulation over k terms).
    static func reference(x: [Float], w: [UInt16], format: HalfFormat, m: Int, n: Int, k: Int, y0: [Float]?) -> (y: [Double], scale: [Double]) {
        var y = [Double](repeating: 0, count: m * n), scale = y
        for r in 0..<m {
            for j in 0..<n {
                var s = Double(y0?[r * n + j] ?? 0), a = abs(s)
                for i in 0..<k {
                    let p = Double(x[r * k + i]) * Double(HalfFormat.widen(w[j * k + i], format))
                    s += p
                    a += abs(p)
                }
                y[r * n + j] = s
                scale[r * n + j] = a
            }
        }
        return (y, scale)
    }

    static func run(_ x: [Float], _ w: [UInt16], _ format: HalfFormat, m: Int, n: Int, k: Int, y0: [Float]?,
                    level: FastMath.Level, direct: Bool) -> [Float] {
        var y = y0 ?? [Float](repeating: .nan, count: m * n)
        y.withUnsafeMutableBufferPointer { yp in
            x.withUnsafeBufferPointer { xp in
                w.withUnsafeBytes { wp in
                    if direct {
                        HalfMatmul.gemv(x: xp.baseAddress!, rows: m, weight: wp.baseAddress!, format: format, outFeatures: n,
                                        inFeatures: k, into: yp.baseAddress!, accumulate: y0 != nil, level: level)
                    } else {
                        HalfMatmul.linear(x: xp.baseAddress!, rows: m, weight: wp.baseAddress!, format: format, outFeatures: n,
                                          inFeatures: k, into: yp.baseAddress!, accumulate: y0 != nil, level: level)
                    }
                }
            }
        }
        return y
    }

    static func check(m: Int, n: Int, k: Int, format: HalfFormat, level: FastMath.Level, accumulate: Bool, direct: Bool) {
        let seed = UInt64(m * 1_000_003 + n * 1009 + k)
        let x = randomFloats(m * k, seed: seed), w = randomHalf(n * k, format, seed: seed + 1)
        let y0 = accumulate ? randomFloats(m * n, seed: seed + 2) : nil
        let ours = run(x, w, format, m: m, n: n, k: k, y0: y0, level: level, direct: direct)
        let ref = reference(x: x, w: w, format: format, m: m, n: n, k: k, y0: y0)
        var worst = 0.0
        for i in 0..<(m * n) {
            worst = max(worst, abs(Double(ours[i]) - ref.y[i]) / (ref.scale[i] * Double(k + 1) * 1.2e-7 + 1e-30))
        }
        #expect(worst <= 1, "m \(m) n \(n) k \(k) \(format) \(level) accumulate \(accumulate) direct \(direct): error \(worst) of the bound")
    }

    @Test(arguments: HalfFormat.allCases)
    func directKernelMatchesFloat64OnOddSizes(_ format: HalfFormat) {
        for level in HalfMatmul.availableLevels {
            for (m, n, k) in [(1, 1, 1), (1, 5, 17), (2, 7, 33), (3, 9, 15), (4, 13, 64), (5, 3, 100), (8, 21, 7), (1, 130, 257), (6, 37, 129),
                              // One row: row by row up to k = 6144 (x in L1), 4-row blocks past it.
                              (1, 9, 80), (1, 4, 6144), (1, 9, 6145)] {
                for accumulate in [false, true] {
                    Self.check(m: m, n: n, k: k, format: format, level: level, accumulate: accumulate, direct: true)
                }
            }
        }
    }

    @Test(arguments: HalfFormat.allCases)
    func manyRowsGoThroughWidenedTiles(_ format: HalfFormat) {
        for level in HalfMatmul.availableLevels {
            // 9 and 17 rows take the tiled sgemm path; k = 4096 makes 64-row tiles, so n = 130 spans three,
            // the last one partial, and the product is large enough to run threaded.
            Self.check(m: 9, n: 130, k: 4096, format: format, level: level, accumulate: true, direct: false)
            Self.check(m: 17, n: 23, k: 31, format: format, level: level, accumulate: false, direct: false)
        }
    }

    @Test func tilesReuseThePooledBuffers() {
        let (m, n, k) = (12, 200, 1024)
        let x = Self.randomFloats(m * k, seed: 5), w = Self.randomHalf(n * k, .f16, seed: 6)
        _ = Self.run(x, w, .f16, m: m, n: n, k: k, y0: nil, level: HalfMatmul.level, direct: false)
        let pooled = ScratchPool.shared.pooledBytes
        #expect(pooled > 0)
        for _ in 0..<3 { _ = Self.run(x, w, .f16, m: m, n: n, k: k, y0: nil, level: HalfMatmul.level, direct: false) }
        // Other tests may grow the pool concurrently, never this one: repeated calls allocate nothing new.
        #expect(ScratchPool.shared.pooledBytes >= pooled)
    }

    @Test func widenF16CoversSpecialValues() {
        #expect(HalfFormat.widenF16(0x3C00) == 1)
        #expect(HalfFormat.widenF16(0xC000) == -2)
        #expect(HalfFormat.widenF16(0x7BFF) == 65504)
        #expect(HalfFormat.widenF16(0x0001) == 0x1p-24)
        #expect(HalfFormat.widenF16(0x03FF) == 1023 * 0x1p-24)
        #expect(HalfFormat.widenF16(0x7C00) == .infinity)
        #expect(HalfFormat.widenF16(0xFC00) == -.infinity)
        #expect(HalfFormat.widenF16(0x7E00).isNaN)
        #expect(HalfFormat.widenF16(0x8000).sign == .minus && HalfFormat.widenF16(0x8000) == 0)
        #expect(HalfFormat.widen(0x3F80, .bf16) == 1)
        #expect(HalfFormat.widen(0xC0A0, .bf16) == -5)
    }

    @Test(arguments: HalfFormat.allCases)
    func vectorWideningMatchesScalar(_ format: HalfFormat) {
        let bits = Self.randomHalf(37, format, seed: 9) + (format == .f16 ? [0x0001, 0x8000, 0x7C00, 0x03FF] : [0x0001, 0x8000, 0x7F80])
        for level in HalfMatmul.availableLevels {
            var out = [Float](repeating: .nan, count: bits.count)
            out.withUnsafeMutableBufferPointer { o in
                bits.withUnsafeBufferPointer { HalfMatmul.widen($0.baseAddress!, format: format, into: o.baseAddress!, count: bits.count, level: level) }
            }
            #expect(out == bits.map { HalfFormat.widen($0, format) }, "\(format) \(level)")
        }
    }
}
