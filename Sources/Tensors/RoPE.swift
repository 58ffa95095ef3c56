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

    /// Cosines and sines of every (token, frequency) pair for `positions`: computed once per
    /// prefill and shared by the queries and keys of every layer (they all see the same positions
    /// until a method prunes, which makes a new table).
    public func table(positions: [Int]) -> RotaryTable {
        let half = headDim / 2
        var cosines = [Float](repeating: 0, count: positions.count * half)
        var sines = [Float](repeating: 0, count: positions.count * half)
        let frequencies = inverseFrequencies
        cosines.withUnsafeMutableBufferPointer { c in
            sines.withUnsafeMutableBufferPointer { s in
                let cb = c.baseAddress!, sb = s.baseAddress!
                Parallel.forEachChunk(positions.count, minimumPerThread: 64) { range in
                    for t in range {
                        let p = Float(positions[t])
                        for i in 0..<half {
                            // The angle rounds in Float32 as in transformers; cos/sin in Double.
                            let angle = Double(p * frequencies[i])
                            cb[t * half + i] = Float(cos(angle))
                            sb[t * half + i] = Float(sin(angle))
                        }
                    }
                }
            }
        }
        return RotaryTable(headDim: headDim, positions: positions, cosines: cosines, sines: sines)
    }

    /// Rotates `x` (`[tokens, heads·headDim]`) in place-by-value, token `t` at `positions[t]`.
    public func apply(_ x: Tensor, positions: [Int]) throws -> Tensor {
        try apply(x, table: table(positions: positions))
    }

    /// Rotates `x` with a precomputed table (one row per token of `x`).
    public func apply(_ x: Tensor, table: RotaryTable) throws -> Tensor {
        guard x.rank == 2, x.columns % headDim == 0, table.headDim == headDim else {
            throw TensorError.shape("RoPE", "input \(x.shape) with head dim \(headDim) (table for \(table.headDim))")
        }
        guard table.positions.count == x.rows else {
            throw TensorError.shape("RoPE", "\(x.rows) tokens but \(table.positions.count) positions")
        }
        var out = x
        let width = x.columns, heads = width / headDim, half = headDim / 2
        let base = out.withUnsafeMutableBufferPointer { $0.baseAddress! }
        table.cosines.withUnsafeBufferPointer { c in
            table.sines.withUnsafeBufferPointer { s in
                let cb = c.baseAddress!, sb = s.baseAddress!
                Parallel.forEachChunk(x.rows, minimumPerThread: 16) { range in
                    for t in range {
                        let cosines = cb + t * half, sines = sb + t * half
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
            }
        }
        return out
    }
}

/// Rotation factors for one list of positions (`RotaryEmbedding.table(positions:)`).
public struct RotaryTable: Sendable {
    public let headDim: Int
    public let positions: [Int]
    /// `[positions.count, headDim / 2]`, row-major.
    let cosines: [Float]
    let sines: [Float]
}
