import Foundation
import Synchronization
#if arch(x86_64)
import CVectorKernels
#endif

/// The two 16-bit float formats checkpoints store weights in.
public enum HalfFormat: String, Sendable, CaseIterable {
    /// IEEE 754 binary16 (safetensors `F16`).
    case f16
    /// bfloat16, the high half of a Float32 (safetensors `BF16`).
    case bf16

    /// One value widened to Float32 (exact: both formats are subsets of Float32).
    @inlinable
    public static func widen(_ bits: UInt16, _ format: HalfFormat) -> Float {
        switch format {
        case .bf16: return Float(bitPattern: UInt32(bits) << 16)
        case .f16: return widenF16(bits)
        }
    }

    /// binary16 → Float32 by bit manipulation (subnormals, infinities and NaN included), for the
    /// portable path: `Float16` is not available on every platform the package builds on.
    @inlinable
    public static func widenF16(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = UInt32(h >> 10) & 0x1F
        let mantissa = UInt32(h & 0x3FF)
        if exponent == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
        if exponent == 0 {
            // Subnormal (or zero): mantissa · 2⁻²⁴, exact in Float32.
            let magnitude = Float(mantissa) * 0x1p-24
            return sign == 0 ? magnitude : -magnitude
        }
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }
}

/// `y = x · Wᵀ` with `W` stored `[out, in]` in F16 or BF16, as mapped from a checkpoint, without a
/// Float32 copy of the whole matrix.
///
/// Why two paths: a product with few rows (decoding: one row per step) is bound by reading the
/// weights, so the kernel reads each 2-byte weight once and widens it in registers (`gemv`,
/// `CVectorKernels/halfgemm.h`), threaded over output rows. A product with many rows (prefill) is
/// bound by arithmetic, where sgemm wins: each thread widens a tile of weight rows into a scratch
/// buffer it reuses from call to call (`ScratchPool`), then runs single-threaded sgemm on it — no step
/// allocates or faults fresh memory, and each weight is widened once per product, not per row.
public enum HalfMatmul {
    /// Products with at most this many rows take the direct kernel; more rows take tiles + sgemm.
    public static let smallRowLimit = 8

    /// Instruction set of the direct kernels: AVX-512F, or AVX2 + FMA + F16C, else portable Swift.
    /// `TOKC_SIMD=avx2|portable` lowers it as for `FastMath.level`.
    public static let level: FastMath.Level = {
        #if arch(x86_64)
        let flags = BLAS.cpuFlags()
        var best: FastMath.Level = flags.contains("avx512f") ? .avx512
            : (flags.contains("avx2") && flags.contains("fma") && flags.contains("f16c") ? .avx2 : .portable)
        let order = FastMath.Level.allCases
        if let asked = ProcessInfo.processInfo.environment["TOKC_SIMD"].flatMap(FastMath.Level.init(rawValue:)),
           order.firstIndex(of: asked)! > order.firstIndex(of: best)! {
            best = asked
        }
        return best
        #else
        return .portable
        #endif
    }()

    /// The levels this CPU can run (for tests that compare them).
    public static var availableLevels: [FastMath.Level] { Array(FastMath.Level.allCases.drop { $0 != level }) }

    /// `y[m, n] = x[m, k] · Wᵀ` (`accumulate`: `y += …`, e.g. onto bias rows), `W` `[n, k]` half precision.
    /// Rows of `x` and `y` are contiguous (`k` and `n` apart).
    public static func linear(x: UnsafePointer<Float>, rows m: Int, weight: UnsafeRawPointer, format: HalfFormat,
                              outFeatures n: Int, inFeatures k: Int, into y: UnsafeMutablePointer<Float>,
                              accumulate: Bool, level: FastMath.Level = HalfMatmul.level) {
        guard m > 0, n > 0 else { return }
        guard k > 0 else {
            if !accumulate { y.update(repeating: 0, count: m * n) }
            return
        }
        if m <= smallRowLimit {
            gemv(x: x, rows: m, weight: weight, format: format, outFeatures: n, inFeatures: k, into: y,
                 accumulate: accumulate, level: level)
        } else {
            tiledSgemm(x: x, rows: m, weight: weight, format: format, outFeatures: n, inFeatures: k, into: y,
                       accumulate: accumulate, level: level)
        }
    }

    /// The direct kernel for any `m` (meant for few rows), output rows split over threads in
    /// blocks of four (the kernel's register block).
    ///
    /// The rows are cut into up to 8 pieces per thread that the threads take in turn from a shared
    /// counter: a thread the host deschedules for a while (a shared 2-core machine) leaves its share
    /// to the others instead of stalling the product at its fixed half.
    public static func gemv(x: UnsafePointer<Float>, rows m: Int, weight: UnsafeRawPointer, format: HalfFormat,
                            outFeatures n: Int, inFeatures k: Int, into y: UnsafeMutablePointer<Float>,
                            accumulate: Bool, level: FastMath.Level = HalfMatmul.level) {
        let w = weight.assumingMemoryBound(to: UInt16.self)
        // Below ~64 K weights a piece costs more to hand out than it saves.
        forEachPiece(outputs: n, block: 4, minimumOutputs: max(4, (1 << 16) / k)) { r in
            kernel(x: x, m: m, w: w, k: k, j0: r.lowerBound, j1: r.upperBound, y: y, ldy: n, format: format,
                   accumulate: accumulate, level: level)
        }
    }

    /// Splits `0..<outputs` into pieces (multiples of `block`, at least `minimumOutputs` each, up to 8
    /// per thread) that `Parallel.threadCount` threads take in turn from a shared counter.
    public static func forEachPiece(outputs n: Int, block: Int, minimumOutputs: Int, _ body: (Range<Int>) -> Void) {
        let blocks = (n + block - 1) / block
        let minimumBlocks = max(1, (minimumOutputs + block - 1) / block)
        let threads = min(Parallel.threadCount, blocks / minimumBlocks)
        let pieces = min(8 * max(threads, 1), max(1, blocks / minimumBlocks))
        func run(_ piece: Int) {
            let b0 = piece * blocks / pieces, b1 = (piece + 1) * blocks / pieces
            if b0 < b1 { body((b0 * block)..<min(n, b1 * block)) }
        }
        guard threads > 1 else {
            for p in 0..<pieces { run(p) }
            return
        }
        let next = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            while true {
                let p = next.wrappingAdd(1, ordering: .relaxed).oldValue
                if p >= pieces { break }
                run(p)
            }
        }
    }

    /// Output columns `j0..<j1` on the calling thread.
    static func kernel(x: UnsafePointer<Float>, m: Int, w: UnsafePointer<UInt16>, k: Int, j0: Int, j1: Int,
                       y: UnsafeMutablePointer<Float>, ldy: Int, format: HalfFormat, accumulate: Bool, level: FastMath.Level) {
        #if arch(x86_64)
        let acc: Int32 = accumulate ? 1 : 0
        switch (level, format) {
        case (.avx512, .f16): tc_hgemm_f16_avx512(x, m, k, w, k, j0, j1, y, ldy, acc); return
        case (.avx512, .bf16): tc_hgemm_bf16_avx512(x, m, k, w, k, j0, j1, y, ldy, acc); return
        case (.avx2, .f16): tc_hgemm_f16_avx2(x, m, k, w, k, j0, j1, y, ldy, acc); return
        case (.avx2, .bf16): tc_hgemm_bf16_avx2(x, m, k, w, k, j0, j1, y, ldy, acc); return
        case (.portable, _): break
        }
        #endif
        portableKernel(x: x, m: m, w: w, k: k, j0: j0, j1: j1, y: y, ldy: ldy, format: format, accumulate: accumulate)
    }

    /// Scalar fallback: each weight row widened into a stack-sized chunk, then dotted with every input row.
    static func portableKernel(x: UnsafePointer<Float>, m: Int, w: UnsafePointer<UInt16>, k: Int, j0: Int, j1: Int,
                               y: UnsafeMutablePointer<Float>, ldy: Int, format: HalfFormat, accumulate: Bool) {
        let chunk = 256
        withUnsafeTemporaryAllocation(of: Float.self, capacity: chunk + m) { scratch in
            let row = scratch.baseAddress!, sums = row + chunk
            for j in j0..<j1 {
                for r in 0..<m { sums[r] = 0 }
                var i0 = 0
                while i0 < k {
                    let count = min(chunk, k - i0)
                    for t in 0..<count { row[t] = HalfFormat.widen(w[j * k + i0 + t], format) }
                    for r in 0..<m {
                        let xr = x + r * k + i0
                        var s: Float = 0
                        for t in 0..<count { s += xr[t] * row[t] }
                        sums[r] += s
                    }
                    i0 += count
                }
                for r in 0..<m { y[r * ldy + j] = accumulate ? y[r * ldy + j] + sums[r] : sums[r] }
            }
        }
    }

    /// `dst[i] = src[i]` widened, for `count` values.
    public static func widen(_ src: UnsafePointer<UInt16>, format: HalfFormat, into dst: UnsafeMutablePointer<Float>, count: Int,
                             level: FastMath.Level = HalfMatmul.level) {
        #if arch(x86_64)
        switch level {
        case .avx512: tc_widen_avx512(format == .bf16 ? 1 : 0, src, dst, count); return
        case .avx2: tc_widen_avx2(format == .bf16 ? 1 : 0, src, dst, count); return
        case .portable: break
        }
        #endif
        for i in 0..<count { dst[i] = HalfFormat.widen(src[i], format) }
    }

    /// Weight rows per widened tile: about 1 MiB of Float32 (fits L2 next to sgemm's packing), a
    /// multiple of 16, at least 16.
    static func tileRows(inFeatures k: Int) -> Int { max(16, (1 << 18) / max(k, 1) / 16 * 16) }

    /// Many rows: per thread, widen `tileRows` weight rows into a pooled buffer and sgemm them.
    static func tiledSgemm(x: UnsafePointer<Float>, rows m: Int, weight: UnsafeRawPointer, format: HalfFormat,
                           outFeatures n: Int, inFeatures k: Int, into y: UnsafeMutablePointer<Float>,
                           accumulate: Bool, level: FastMath.Level) {
        let w = weight.assumingMemoryBound(to: UInt16.self)
        tiledSgemm(x: x, rows: m, outFeatures: n, inFeatures: k, into: y, accumulate: accumulate) { j0, count, buffer in
            widen(w + j0 * k, format: format, into: buffer, count: count * k, level: level)
        }
    }

    /// `y = x · Wᵀ` for a `W` that `widenRows(j0, count, into)` writes as Float32, `count` rows from
    /// `j0`, into a pooled tile; each thread sgemms its tiles single-threaded.
    public static func tiledSgemm(x: UnsafePointer<Float>, rows m: Int, outFeatures n: Int, inFeatures k: Int,
                                  into y: UnsafeMutablePointer<Float>, accumulate: Bool,
                                  widenRows: (Int, Int, UnsafeMutablePointer<Float>) -> Void) {
        let tile = tileRows(inFeatures: k)
        let tiles = (n + tile - 1) / tile
        BLAS.useSingleThreadedKernels()
        // Small products on one thread: dispatching costs more than it saves (as in parallelSgemm).
        let minimumTiles = m * n * k >= 1 << 22 ? 1 : tiles
        Parallel.forEachChunk(tiles, minimumPerThread: minimumTiles) { range in
            ScratchPool.shared.withBuffer(count: tile * k) { buffer in
                for t in range {
                    let j0 = t * tile, rowsHere = min(tile, n - j0)
                    widenRows(j0, rowsHere, buffer)
                    BLAS.sgemm(transposeA: false, transposeB: true, m: m, n: rowsHere, k: k,
                               a: x, lda: k, b: buffer, ldb: k, beta: accumulate ? 1 : 0, c: y + j0, ldc: n)
                }
            }
        }
    }
}

/// Float32 scratch buffers handed out to one caller at a time and kept for the next: the widened
/// tiles of `HalfMatmul` reuse the same (already faulted-in) pages on every call.
public final class ScratchPool: @unchecked Sendable {
    public static let shared = ScratchPool()
    /// Guarded by `lock`: an `NSLock` (a pthread mutex) rather than `Synchronization.Mutex`, whose futex
    /// ThreadSanitizer cannot see on Linux, so it reported the pool's list as raced between threads.
    private let lock = NSLock()
    private var free: [UnsafeMutableBufferPointer<Float>] = []

    private func locked<R>(_ body: (inout [UnsafeMutableBufferPointer<Float>]) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&free)
    }

    /// Calls `body` with a buffer of at least `count` floats (contents undefined), returned to the pool after.
    public func withBuffer<R>(count: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        var buffer = locked { list -> UnsafeMutableBufferPointer<Float>? in
            guard let i = list.firstIndex(where: { $0.count >= count }) ?? list.indices.last else { return nil }
            return list.remove(at: i)
        }
        if let b = buffer, b.count < count {
            b.deallocate()
            buffer = nil
        }
        let b = buffer ?? UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
        defer { locked { $0.append(b) } }
        return try body(b.baseAddress!)
    }

    /// Bytes currently parked in the pool (for tests and reports).
    public var pooledBytes: Int { locked { $0.reduce(0) { $0 + $1.count * MemoryLayout<Float>.stride } } }
}
