import Foundation
#if arch(x86_64)
import CVectorKernels
#endif

extension Tensor {
    /// Softmax over the last axis, rows in parallel. Numerically stable (max subtracted).
    public func softmaxRows() -> Tensor {
        var out = self
        let c = columns
        guard c > 0 else { return out }
        let base = out.withUnsafeMutableBufferPointer { $0.baseAddress! }
        Parallel.forEachChunk(rows, minimumPerThread: 64) { range in
            for r in range { softmaxInPlace(base + r * c, count: c) }
        }
        return out
    }

    /// LayerNorm over the last axis (biased variance, as PyTorch).
    public func layerNorm(weight: Tensor, bias: Tensor?, eps: Float) throws -> Tensor {
        let c = columns
        guard weight.count == c, bias.map({ $0.count == c }) ?? true else {
            throw TensorError.shape("layerNorm", "input \(shape), weight \(weight.shape), bias \(bias?.shape ?? [])")
        }
        var out = self
        let base = out.withUnsafeMutableBufferPointer { $0.baseAddress! }
        let w = weight.withUnsafeBufferPointer { $0.baseAddress! }
        let b = bias?.withUnsafeBufferPointer { $0.baseAddress! }
        Parallel.forEachChunk(rows, minimumPerThread: 32) { range in
            for r in range {
                let x = base + r * c
                var mean: Float = 0
                for j in 0..<c { mean += x[j] }
                mean /= Float(c)
                var variance: Float = 0
                for j in 0..<c { let d = x[j] - mean; variance += d * d }
                let inv = 1 / (variance / Float(c) + eps).squareRoot()
                for j in 0..<c { x[j] = (x[j] - mean) * inv * w[j] + (b?[j] ?? 0) }
            }
        }
        return withExtendedLifetime((weight, bias)) { out }
    }

    /// RMSNorm over the last axis: `x / sqrt(mean(x²) + eps) · weight` (LLaMA, Qwen2).
    public func rmsNorm(weight: Tensor, eps: Float) throws -> Tensor {
        let c = columns
        guard weight.count == c else { throw TensorError.shape("rmsNorm", "input \(shape), weight \(weight.shape)") }
        var out = self
        let base = out.withUnsafeMutableBufferPointer { $0.baseAddress! }
        let w = weight.withUnsafeBufferPointer { $0.baseAddress! }
        Parallel.forEachChunk(rows, minimumPerThread: 32) { range in
            for r in range {
                let x = base + r * c
                var sumSquares: Float = 0
                for j in 0..<c { sumSquares += x[j] * x[j] }
                let inv = 1 / (sumSquares / Float(c) + eps).squareRoot()
                for j in 0..<c { x[j] = x[j] * inv * w[j] }
            }
        }
        return withExtendedLifetime(weight) { out }
    }
}

/// Stable in-place softmax of `count` floats (max subtracted; `FastMath` exponentials, ≤ 3e-7
/// relative). A row of −inf only (fully masked) becomes zeros rather than NaN.
public func softmaxInPlace(_ x: UnsafeMutablePointer<Float>, count: Int, level: FastMath.Level = FastMath.level) {
    #if arch(x86_64)
    if level == .avx512 { tc_softmax_avx512(x, count); return }
    #endif
    let maxValue = FastMath.max(x, count: count)
    if maxValue == -.infinity {
        for j in 0..<count { x[j] = 0 }
        return
    }
    FastMath.exp(x, plus: -maxValue, into: x, count: count, level: level)
    let inv = 1 / FastMath.sum(x, count: count)
    for j in 0..<count { x[j] *= inv }
}
