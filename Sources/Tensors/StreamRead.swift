import Foundation
#if arch(x86_64)
import CVectorKernels
#endif

/// Memory read bandwidth, measured the way a decode step reads weights: every thread streams its own
/// contiguous part of a buffer much larger than the caches, once. Benchmarks divide the bytes a step
/// must read by this rate for the bandwidth floor of that step.
public enum StreamRead {
    /// Σ x[i] with several accumulators at the widest level (the sum keeps the loads from being elided).
    public static func sum(_ x: UnsafePointer<Float>, count: Int, level: FastMath.Level = FastMath.level) -> Float {
        #if arch(x86_64)
        switch level {
        case .avx512: return tc_stream_sum_avx512(x, count)
        case .avx2: return tc_stream_sum_avx2(x, count)
        case .portable: break
        }
        #endif
        return FastMath.sum(x, count: count)
    }

    /// Best read rate in bytes/second over `repeats` passes of `Parallel.threadCount` threads over a
    /// buffer of `bytes` (filled first, so its pages are resident before timing).
    public static func bandwidth(bytes: Int = 1 << 29, repeats: Int = 5) -> Double {
        let count = max(1 << 16, bytes / MemoryLayout<Float>.stride)
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { buffer.deallocate() }
        Parallel.forEachChunk(count, minimumPerThread: 1 << 16) { r in (buffer + r.lowerBound).update(repeating: 1, count: r.count) }
        var best = 0.0
        for _ in 0..<max(1, repeats) {
            let start = DispatchTime.now().uptimeNanoseconds
            let threads = max(1, Parallel.threadCount)
            var partial = [Float](repeating: 0, count: threads)
            partial.withUnsafeMutableBufferPointer { p in
                let out = p.baseAddress!
                let chunk = (count + threads - 1) / threads
                DispatchQueue.concurrentPerform(iterations: threads) { t in
                    let lo = t * chunk, hi = min(count, lo + chunk)
                    if lo < hi { out[t] = sum(buffer + lo, count: hi - lo) }
                }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            best = max(best, Double(count * MemoryLayout<Float>.stride) / seconds)
        }
        return best
    }
}
