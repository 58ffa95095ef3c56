import Foundation
import Tensors

/// The fixed (unlearned) embeddings of diffusion transformers, computed as diffusers computes them.
public enum DiffusionEmbeddings {
    /// `get_timestep_embedding(t, dim, flip_sin_to_cos, downscale_freq_shift)`: `[t.count, dim]`.
    ///
    /// Computed in Float32 in the same order as diffusers (frequencies `exp(−ln(10000)·i / (half − shift))`,
    /// then `t · freq`, then sin and cos), because the phase `t · freq` reaches ~1000 radians and a
    /// different rounding of it would move the embedding by ~1e-4.
    public static func timestep(_ t: [Float], dim: Int, flipSinToCos: Bool, downscaleFreqShift: Float) -> Tensor {
        let half = dim / 2
        let logPeriod = -Float(log(10000.0))
        let freqs = (0..<half).map { i in expf(logPeriod * Float(i) / (Float(half) - downscaleFreqShift)) }
        var out = Tensor(zeros: [t.count, dim])
        out.withUnsafeMutableBufferPointer { o in
            for (r, tr) in t.enumerated() {
                for i in 0..<half {
                    let phase = tr * freqs[i]
                    let (s, c) = (sinf(phase), cosf(phase))
                    // diffusers: cat([sin, cos]), flipped to cat([cos, sin]); an odd dim gets a zero column.
                    o[r * dim + i] = flipSinToCos ? c : s
                    o[r * dim + half + i] = flipSinToCos ? s : c
                }
            }
        }
        return out
    }

    /// `get_2d_sincos_pos_embed(dim, grid, base_size, interpolation_scale)`: `[grid², dim]`, rows in
    /// raster order (row-major over the patch grid).
    ///
    /// The first half of each row encodes the patch's column, the second its row (diffusers builds the
    /// grid with `meshgrid(w, h, indexing="xy")` and embeds `grid[0]`, the column, first). Positions are
    /// `index / (grid / base_size) / interpolation_scale`, in Float64 as diffusers, then rounded to Float32.
    public static func sinCos2D(dim: Int, grid: Int, baseSize: Int, interpolationScale: Double = 1) -> Tensor {
        let quarter = dim / 4
        let omega = (0..<quarter).map { 1 / pow(10000.0, Double($0) / (Double(dim) / 4)) }
        func position(_ i: Int) -> Double { Double(Float(Float(i) / (Float(grid) / Float(baseSize)) / Float(interpolationScale))) }
        var out = Tensor(zeros: [grid * grid, dim])
        out.withUnsafeMutableBufferPointer { o in
            for row in 0..<grid {
                for col in 0..<grid {
                    let base = (row * grid + col) * dim
                    for (half, pos) in [(0, position(col)), (1, position(row))] {
                        for i in 0..<quarter {
                            let a = pos * omega[i]
                            o[base + half * dim / 2 + i] = Float(sin(a))
                            o[base + half * dim / 2 + quarter + i] = Float(cos(a))
                        }
                    }
                }
            }
        }
        return out
    }
}
