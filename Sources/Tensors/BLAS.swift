#if canImport(Accelerate)
import Accelerate
#else
import COpenBLAS
#endif
import Foundation

/// Thin wrapper over CBLAS `sgemm`: the one place the package touches BLAS.
public enum BLAS {
    /// C[m×n] = alpha · op(A) · op(B) + beta · C, all row-major with the given leading dimensions.
    @inlinable
    public static func sgemm(
        transposeA: Bool, transposeB: Bool,
        m: Int, n: Int, k: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            // beta = 0 means C is not read (it may be uninitialised), as in BLAS.
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : c[i * ldc + j] * beta } }
            return
        }
        cblas_sgemm(CblasRowMajor,
                    transposeA ? CblasTrans : CblasNoTrans,
                    transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// `sgemm` with the output columns split over `Parallel.threadCount` threads, each running
    /// single-threaded BLAS (decode-time matrix–vector products included: they are bound by memory
    /// bandwidth, which two cores share better than one). Measured here: OpenBLAS's own threads and Dispatch workers contend
    /// between consecutive calls of a forward pass; one owner of the cores avoids that. Small
    /// products run as one plain call.
    public static func parallelSgemm(
        transposeA: Bool = false, transposeB: Bool,
        m: Int, n: Int, k: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let threads = Parallel.threadCount
        guard threads > 1, m * n * k >= 1 << 22, n >= 64 * threads else {
            sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                  a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        BLAS.useSingleThreadedKernels()
        let chunk = ((n + threads - 1) / threads + 15) / 16 * 16
        Parallel.forEach(threads) { t in
            let c0 = t * chunk, c1 = min(n, c0 + chunk)
            guard c0 < c1 else { return }
            // Columns c0..<c1 of op(B): rows of B when it is transposed, columns otherwise.
            let bPart = transposeB ? b + c0 * ldb : b + c0
            sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: c1 - c0, k: k, alpha: alpha,
                  a: a, lda: lda, b: bPart, ldb: ldb, beta: beta, c: c + c0, ldc: ldc)
        }
    }

    /// Switches OpenBLAS to one thread for the rest of the process, once: the package's own
    /// threads own the cores (`parallelSgemm`, attention). Re-configuring OpenBLAS around every
    /// call costs more than a 512³ product.
    public static func useSingleThreadedKernels() {
        _ = singleThreadedOnce
    }

    private static let singleThreadedOnce: Void = { BLAS.threads = 1 }()

    /// The kernel family OpenBLAS picked for this CPU (nil with Accelerate).
    public static var coreName: String? {
        #if canImport(Accelerate)
        return nil
        #else
        return openblas_get_corename().map { String(cString: $0) }
        #endif
    }

    /// A better `OPENBLAS_CORETYPE` for this CPU when OpenBLAS fell back to a generic SSE kernel.
    ///
    /// Debian's OpenBLAS 0.3.21 does not recognise some virtualised Xeons ("Intel Xeon Processor")
    /// and runs its Prescott (SSE3) kernels: about a fifth of the machine's sgemm rate. The
    /// environment variable is read when the library loads, so the CLI re-executes itself with it
    /// set (see `tokc`); library users can export it themselves.
    public static func recommendedCoreType(coreName: String? = BLAS.coreName,
                                           cpuFlags: Set<String> = BLAS.cpuFlags()) -> String? {
        guard let core = coreName?.lowercased() else { return nil }
        let generic = ["prescott", "core2", "penryn", "dunnington", "nehalem", "katmai", "coppermine", "northwood", "banias", "atom"]
        guard generic.contains(core) else { return nil }
        if ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"].allSatisfy(cpuFlags.contains) { return "SkylakeX" }
        if cpuFlags.contains("avx2") && cpuFlags.contains("fma") { return "Haswell" }
        if cpuFlags.contains("avx") { return "Sandybridge" }
        return nil
    }

    /// CPU feature flags from `/proc/cpuinfo` (empty elsewhere).
    public static func cpuFlags() -> Set<String> {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
    }

    /// Threads BLAS itself may use (OpenBLAS); a no-op with Accelerate.
    public static var threads: Int {
        get {
            #if canImport(Accelerate)
            return 1
            #else
            return Int(openblas_get_num_threads())
            #endif
        }
        set {
            #if !canImport(Accelerate)
            openblas_set_num_threads(Int32(newValue))
            #endif
        }
    }
}

extension Tensor {
    /// Matrix product of the last two axes: `[..., m, k] × [k, n] → [..., m, n]`.
    ///
    /// Leading axes of `self` are folded into rows, so a `[tokens, d]` activation times a weight
    /// is one sgemm call.
    public func matmul(_ other: Tensor) throws -> Tensor {
        guard other.rank == 2, rank >= 1, columns == other.shape[0] else {
            throw TensorError.shape("matmul", "\(shape) × \(other.shape)")
        }
        let m = rows, k = columns, n = other.shape[1]
        var out = Tensor(overwrittenShape: Array(shape.dropLast()) + [n])
        out.withUnsafeMutableBufferPointer { c in
            withUnsafeBufferPointer { a in
                other.withUnsafeBufferPointer { b in
                    BLAS.parallelSgemm(transposeB: false, m: m, n: n, k: k,
                                       a: a.baseAddress!, lda: k, b: b.baseAddress!, ldb: n,
                                       c: c.baseAddress!, ldc: n)
                }
            }
        }
        return out
    }

    /// `x · Wᵀ + b` with `W` stored `[out, in]` as in PyTorch / Hugging Face checkpoints.
    public func linear(weight: Tensor, bias: Tensor? = nil) throws -> Tensor {
        guard weight.rank == 2, columns == weight.shape[1] else {
            throw TensorError.shape("linear", "input \(shape), weight \(weight.shape) (expected [out, \(columns)])")
        }
        let m = rows, k = columns, n = weight.shape[0]
        var out = Tensor(overwrittenShape: Array(shape.dropLast()) + [n])  // bias rows or beta = 0
        if let bias {
            guard bias.count == n else { throw TensorError.shape("linear", "bias \(bias.shape) for \(n) outputs") }
            out.withUnsafeMutableBufferPointer { c in
                bias.withUnsafeBufferPointer { b in
                    for r in 0..<m { (c.baseAddress! + r * n).update(from: b.baseAddress!, count: n) }
                }
            }
        }
        out.withUnsafeMutableBufferPointer { c in
            withUnsafeBufferPointer { a in
                weight.withUnsafeBufferPointer { w in
                    BLAS.parallelSgemm(transposeB: true, m: m, n: n, k: k,
                                       a: a.baseAddress!, lda: k, b: w.baseAddress!, ldb: k,
                                       beta: bias == nil ? 0 : 1,
                                       c: c.baseAddress!, ldc: n)
                }
            }
        }
        return out
    }

    /// Batched matrix product: `[B, m, k] × [B, k, n] → [B, m, n]` (optionally transposing the
    /// right factor, `[B, n, k]`), batches spread over threads.
    public func batchedMatmul(_ other: Tensor, transposeOther: Bool = false) throws -> Tensor {
        guard rank == 3, other.rank == 3, shape[0] == other.shape[0] else {
            throw TensorError.shape("batchedMatmul", "\(shape) × \(other.shape)")
        }
        let batch = shape[0], m = shape[1], k = shape[2]
        let n = transposeOther ? other.shape[1] : other.shape[2]
        guard (transposeOther ? other.shape[2] : other.shape[1]) == k else {
            throw TensorError.shape("batchedMatmul", "\(shape) × \(other.shape) (transposeOther: \(transposeOther))")
        }
        var out = Tensor(overwrittenShape: [batch, m, n])
        let cBase = out.withUnsafeMutableBufferPointer { $0.baseAddress! }
        withUnsafeBufferPointer { a in
            other.withUnsafeBufferPointer { b in
                let aBase = a.baseAddress!, bBase = b.baseAddress!
                Parallel.forEach(batch) { i in
                    BLAS.sgemm(transposeA: false, transposeB: transposeOther, m: m, n: n, k: k,
                               a: aBase + i * m * k, lda: k, b: bBase + i * k * n,
                               ldb: transposeOther ? k : n,
                               c: cBase + i * m * n, ldc: n)
                }
            }
        }
        return out
    }
}
