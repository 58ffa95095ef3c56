import Foundation
import Tensors

/// Latents to patch tokens and back, as diffusers' `PatchEmbed` and the transformers' unpatchify do.
enum LatentPatches {
    /// `PatchEmbed`: a p×p stride-p convolution of `[C, H, W]`, flattened to `[tokens, width]`, plus the positions.
    static func embed(_ x: Tensor, conv: Conv2DWeight, positions: Tensor, store: WeightStore) throws -> Tensor {
        let out = try conv(x, store: store)  // [width, g, g]
        return try out.reshaped([out.shape[0], out.shape[1] * out.shape[2]]).transposed() + positions
    }

    /// Rows `[g², p·p·C]` of sample `sample` (`nhwpqc`) to `[C, g·p, g·p]` (`nchpwq`), as diffusers' einsum.
    static func unpatchify(_ patches: Tensor, sample: Int, grid g: Int, patch p: Int, channels oc: Int) -> Tensor {
        let side = g * p
        var out = Tensor(zeros: [oc, side, side])
        out.withUnsafeMutableBufferPointer { o in
            patches.withUnsafeBufferPointer { src in
                let base = sample * g * g * p * p * oc
                for hy in 0..<g {
                    for wx in 0..<g {
                        for pi in 0..<p {
                            for qj in 0..<p {
                                for ch in 0..<oc {
                                    let from = base + ((hy * g + wx) * p * p + pi * p + qj) * oc + ch
                                    o[(ch * side + hy * p + pi) * side + wx * p + qj] = src[from]
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}
