import Foundation
#if arch(x86_64)
import CVectorKernels
#endif

/// Element-wise exponentials written so that LLVM's loop vectoriser turns them into SIMD code
/// on the baseline x86-64 target (no `-mavx` flags are allowed in the package).
///
/// Why not glibc `expf`: it is a scalar call per element; softmax rows of attention and the MLP
/// activations spend most of their time in it (measured: 16 heads × 577² softmax ≈ 17 ms of a
/// 20 ms attention). Why not `SIMD8<Float>`: `.rounded()` and `SIMD8<Int32>(_:)` lower to per-lane
/// libm calls and checked conversions without SSE4.1, which made an earlier attempt slower than
/// `expf`. Here rounding uses the 1.5·2²³ trick and the exponent is built with wrapping integer
/// ops, so every step is a plain vector instruction.
public enum FastMath {
    @usableFromInline static let log2e: Float = 1.442_695_04
    // ln 2 split in two (Cody–Waite) so that x − n·ln2 keeps full precision for large |x|.
    @usableFromInline static let ln2High: Float = 0.693_145_75
    @usableFromInline static let ln2Low: Float = 1.428_606_8e-6
    /// Adding then subtracting 1.5·2²³ rounds a float of magnitude < 2²² to the nearest integer.
    @usableFromInline static let roundingMagic: Float = 12_582_912
    @usableFromInline static let lowest: Float = -87.33
    @usableFromInline static let highest: Float = 88.72

    /// `eˣ` for one value, ≤ 2 ulp from `expf` on the normal range, 0 below `e^-87.33`, +inf above
    /// `e^88.72`; `-inf` gives 0. Branch-free so that it vectorises inside loops.
    @inlinable @inline(__always)
    public static func exp(_ x: Float) -> Float {
        let c = x < lowest ? lowest : (x > highest ? highest : x)
        let shifted = c * log2e + roundingMagic
        let n = shifted - roundingMagic
        let f = (c - n * ln2High) - n * ln2Low
        // e^f on |f| ≤ ln2/2: Taylor–Horner to degree 6 (truncation error < 2e-8 relative).
        var p: Float = 1.0 / 720
        p = p * f + 1.0 / 120
        p = p * f + 1.0 / 24
        p = p * f + 1.0 / 6
        p = p * f + 0.5
        p = p * f + 1
        p = p * f + 1
        // The low mantissa bits of `shifted` hold n (two's complement, −126 ≤ n ≤ 128). 2ⁿ is
        // applied as two normal factors 2^⌊n/2⌋ · 2^(n−⌊n/2⌋): n = 128 (x > 88.38) has no
        // single-float power of two, and the result is still below FLT_MAX.
        let n32 = Int32(bitPattern: shifted.bitPattern &- roundingMagic.bitPattern)
        let half = n32 &>> 1
        let scale1 = Float(bitPattern: UInt32(bitPattern: (half &+ 127) &<< 23))
        let scale2 = Float(bitPattern: UInt32(bitPattern: (n32 &- half &+ 127) &<< 23))
        let r = p * scale1 * scale2
        return x < lowest ? 0 : (x > highest ? .infinity : r)
    }

    /// `y[i] = e^(x[i] · a + b)` for `count` values (`x` and `y` may be the same buffer), with the
    /// widest vector kernel this CPU has (`level`).
    public static func exp(_ x: UnsafePointer<Float>, times a: Float = 1, plus b: Float = 0,
                           into y: UnsafeMutablePointer<Float>, count: Int, level: Level = FastMath.level) {
        var done = 0
        #if arch(x86_64)
        switch level {
        case .avx512: tc_exp_avx512(x, a, b, y, count); done = count
        case .avx2: done = count - count % 8; tc_exp_avx2(x, a, b, y, done)
        case .portable: break
        }
        #endif
        for i in done..<Swift.max(done, count) { y[i] = exp(x[i] * a + b) }
    }

    /// `y[i] = x[i] / (1 + e^(−a·x[i]))`: SiLU (a = 1), quick-GELU (a = 1.702). May alias.
    public static func xSigmoid(_ x: UnsafePointer<Float>, scale a: Float, into y: UnsafeMutablePointer<Float>, count: Int,
                                level: Level = FastMath.level) {
        var done = 0
        #if arch(x86_64)
        switch level {
        case .avx512: tc_x_sigmoid_avx512(x, a, y, count); done = count
        case .avx2: done = count - count % 8; tc_x_sigmoid_avx2(x, a, y, done)
        case .portable: break
        }
        #endif
        for i in done..<Swift.max(done, count) { let v = x[i]; y[i] = v / (1 + exp(-a * v)) }
    }

    /// `out[i] = silu(g[i]) · u[i]` (the LLaMA MLP's gate). `out` may alias `g` or `u`.
    public static func swiGLU(gate g: UnsafePointer<Float>, up u: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                              count: Int, level: Level = FastMath.level) {
        var done = 0
        #if arch(x86_64)
        switch level {
        case .avx512: tc_swiglu_avx512(g, u, out, count); done = count
        case .avx2: done = count - count % 8; tc_swiglu_avx2(g, u, out, done)
        case .portable: break
        }
        #endif
        for i in done..<Swift.max(done, count) { let v = g[i]; out[i] = v / (1 + exp(-v)) * u[i] }
    }

    /// Instruction set of the element-wise kernels: AVX-512F or AVX2+FMA (C kernels with target
    /// attributes, `CVectorKernels`), else the portable Swift loops (SSE2 after vectorisation).
    public enum Level: String, Sendable, CaseIterable {
        case avx512, avx2, portable
    }

    /// The widest level this CPU supports (`TOKC_SIMD=avx2|portable` lowers it, e.g. to compare).
    public static let level: Level = {
        #if arch(x86_64)
        let flags = BLAS.cpuFlags()
        var best: Level = flags.contains("avx512f") ? .avx512 : (flags.contains("avx2") && flags.contains("fma") ? .avx2 : .portable)
        if let asked = ProcessInfo.processInfo.environment["TOKC_SIMD"].flatMap(Level.init(rawValue:)),
           Level.allCases.firstIndex(of: asked)! > Level.allCases.firstIndex(of: best)! {
            best = asked
        }
        return best
        #else
        return .portable
        #endif
    }()

    /// The levels this CPU can run (for tests that compare them).
    public static var availableLevels: [Level] { Array(Level.allCases.drop { $0 != level }) }
}

extension FastMath {
    /// Sum of `count` floats with eight running partial sums (a single accumulator serialises on
    /// the add latency; eight let the loop vectorise). The order differs from a left fold only in
    /// rounding.
    @inlinable
    public static func sum(_ x: UnsafePointer<Float>, count: Int) -> Float {
        var s = SIMD8<Float>(repeating: 0)
        var j = 0
        while j + 8 <= count {
            s += UnsafeRawPointer(x + j).loadUnaligned(as: SIMD8<Float>.self)
            j += 8
        }
        var total = s.sum()
        while j < count { total += x[j]; j += 1 }
        return total
    }

    /// Largest of `count` floats (`-inf` when empty); NaNs are ignored as by `x > max` comparisons.
    @inlinable
    public static func max(_ x: UnsafePointer<Float>, count: Int) -> Float {
        var m = SIMD8<Float>(repeating: -.infinity)
        var j = 0
        while j + 8 <= count {
            let v = UnsafeRawPointer(x + j).loadUnaligned(as: SIMD8<Float>.self)
            m.replace(with: v, where: v .> m)
            j += 8
        }
        var best = m.max()
        while j < count { if x[j] > best { best = x[j] }; j += 1 }
        return best
    }
}
