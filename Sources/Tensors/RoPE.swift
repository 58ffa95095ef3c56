import Foundation

/// Rotary position embedding in the Hugging Face "rotate half" layout (LLaMA, Qwen2).
///
/// Positions are explicit per token: after pruning, methods either keep original positions
/// (gaps allowed) or renumber them, and the rotation must follow whichever they chose.
public struct RotaryEmbedding: Sendable {
    public let headDim: Int
    public let theta: Double
    /// Frequencies computed in Float32 as `transformers` does, so angles round the same way.
    let inverseFrequencies: [Float]

    public init(headDim: Int, theta: Double) throws {
        guard headDim > 0, headDim % 2 == 0 else { throw TensorError("RoPE head dimension must be even and positive, got \(headDim)") }
        guard theta > 0 else { throw TensorError("RoPE theta must be positive, got \(theta)") }
        self.headDim = headDim
        self.theta = theta
        inverseFrequencies = (0..<headDim / 2).map { i in
            1 / Float(pow(Float(theta), Float(2 * i) / Float(headDim)))
        }
    }

    /// Rotates `x` (`[tokens, heads·headDim]`) in place-by-value, token `t` at `positions[t]`.
    public func apply(_ x: Tensor, positions: [Int]) throws -> Tensor {
        guard x.rank == 2, x.columns % headDim == 0 else {
            throw TensorError.shape("RoPE", "input \(x.shape) with head dim \(headDim)")
        }
        guard positions.count == x.rows else {
            throw TensorError.shape("RoPE", "\(x.rows) tokens but \(positions.count) positions")
        }
        var out = x
        let width = x.columns, heads = width / headDim, half = headDim / 2
        let base = out.withUnsafeMutableBufferPointer { $0.baseAddress! }
        let frequencies = inverseFrequencies
        Parallel.forEachChunk(x.rows, minimumPerThread: 16) { range in
            var cosines = [Float](repeating: 0, count: half)
            var sines = [Float](repeating: 0, count: half)
            for t in range {
                let p = Float(positions[t])
                for i in 0..<half {
                    let angle = p * frequencies[i]
                    cosines[i] = Float(cos(Double(angle)))
                    sines[i] = Float(sin(Double(angle)))
                }
                for h in 0..<heads {
                    let v = base + t * width + h * headDim
                    for i in 0..<half {
                        let a = v[i], b = v[i + half]
                        v[i] = a * cosines[i] - b * sines[i]
                        v[i + half] = b * cosines[i] + a * sines[i]
                    }
                }
            }
        }
        return out
    }
}
