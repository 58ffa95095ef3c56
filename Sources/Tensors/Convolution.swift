import Foundation

/// Image-shaped operations on one `[channels, height, width]` tensor (an image or a latent, batch
/// handled by the caller): 2-D convolution as im2col + one sgemm, GroupNorm and nearest-neighbour
/// upsampling, as PyTorch's `nn.Conv2d`, `nn.GroupNorm` and `F.interpolate(mode="nearest")` compute them.
///
/// Convolutions go through BLAS so that a VAE decoder runs at the machine's sgemm rate: the im2col
/// matrix costs `Cin·k²·H·W` floats, which for the decoders here (≤ 512 channels at 32², 128 at 256²)
/// is far below the activations it replaces in cost.
public enum Convolution {
    /// Geometry of one convolution: square kernel, the same stride and zero padding on both axes.
    public struct Geometry: Sendable, Equatable {
        public var kernel: Int
        public var stride: Int
        public var padding: Int
        public init(kernel: Int, stride: Int = 1, padding: Int = 0) {
            self.kernel = kernel
            self.stride = stride
            self.padding = padding
        }

        /// Output size along an axis of `size` input pixels (PyTorch's floor rule).
        public func outputSize(_ size: Int) -> Int { (size + 2 * padding - kernel) / stride + 1 }
    }

    /// `[Cin·k·k, Hout·Wout]` patches of `input` (`[Cin, H, W]`), zero outside the image: row
    /// `(c·k + i)·k + j` holds input channel `c` at kernel offset `(i, j)`, the order of a PyTorch
    /// weight `[Cout, Cin, k, k]` flattened per output channel.
    public static func im2col(_ input: Tensor, geometry g: Geometry) throws -> Tensor {
        guard input.rank == 3 else { throw TensorError.shape("im2col", "input \(input.shape), expected [C, H, W]") }
        let (c, h, w) = (input.shape[0], input.shape[1], input.shape[2])
        guard g.kernel > 0, g.stride > 0, g.padding >= 0 else {
            throw TensorError("im2col: kernel \(g.kernel), stride \(g.stride), padding \(g.padding) must be positive (padding ≥ 0)")
        }
        let ho = g.outputSize(h), wo = g.outputSize(w)
        guard ho > 0, wo > 0 else {
            throw TensorError("im2col: a \(g.kernel)×\(g.kernel) kernel does not fit a \(h)×\(w) input with padding \(g.padding)")
        }
        let k = g.kernel
        var out = Tensor(zeros: [c * k * k, ho * wo])
        let dst = out.withUnsafeMutableBufferPointer { $0.baseAddress! }
        input.withUnsafeBufferPointer { src in
            let s = src.baseAddress!
            Parallel.forEachChunk(c * k * k, minimumPerThread: 8) { rows in
                for row in rows {
                    let ch = row / (k * k), ki = (row / k) % k, kj = row % k
                    let plane = s + ch * h * w
                    let line = dst + row * ho * wo
                    for oy in 0..<ho {
                        let y = oy * g.stride - g.padding + ki
                        guard y >= 0, y < h else { continue }
                        for ox in 0..<wo {
                            let x = ox * g.stride - g.padding + kj
                            if x >= 0, x < w { line[oy * wo + ox] = plane[y * w + x] }
                        }
                    }
                }
            }
        }
        return out
    }

    /// `nn.Conv2d` on `[Cin, H, W]` with `weight` `[Cout, Cin·k·k]` (the PyTorch `[Cout, Cin, k, k]`
    /// tensor read flat) and an optional bias `[Cout]`: `[Cout, Hout, Wout]`.
    public static func conv2d(_ input: Tensor, weight: UnsafePointer<Float>, outChannels: Int, bias: Tensor?,
                              geometry g: Geometry) throws -> Tensor {
        let cols = try im2col(input, geometry: g)
        let k = cols.shape[0], n = cols.shape[1]
        let ho = g.outputSize(input.shape[1]), wo = g.outputSize(input.shape[2])
        if let bias, bias.count != outChannels {
            throw TensorError.shape("conv2d", "bias \(bias.shape) for \(outChannels) output channels")
        }
        var out = Tensor(overwrittenShape: [outChannels, ho, wo])
        let c = out.withUnsafeMutableBufferPointer { $0.baseAddress! }
        if let bias {
            bias.withUnsafeBufferPointer { b in
                for o in 0..<outChannels { (c + o * n).update(repeating: b[o], count: n) }
            }
        }
        cols.withUnsafeBufferPointer { col in
            BLAS.parallelSgemm(transposeB: false, m: outChannels, n: n, k: k,
                               a: weight, lda: k, b: col.baseAddress!, ldb: n,
                               beta: bias == nil ? 0 : 1, c: c, ldc: n)
        }
        return out
    }

    /// `nn.GroupNorm(groups, C, eps)` on `[C, ...]`: each group of `C / groups` channels is normalised
    /// over all its values (biased variance), then scaled and shifted per channel.
    public static func groupNorm(_ input: Tensor, groups: Int, weight: Tensor, bias: Tensor, eps: Float) throws -> Tensor {
        guard input.rank >= 2 else { throw TensorError.shape("groupNorm", "input \(input.shape), expected [C, ...]") }
        let c = input.shape[0]
        guard groups > 0, c % groups == 0 else {
            throw TensorError("groupNorm: \(c) channels cannot be split into \(groups) groups")
        }
        guard weight.count == c, bias.count == c else {
            throw TensorError.shape("groupNorm", "input \(input.shape), weight \(weight.shape), bias \(bias.shape)")
        }
        let plane = input.count / c, perGroup = c / groups
        var out = input
        let o = out.withUnsafeMutableBufferPointer { $0.baseAddress! }
        weight.withUnsafeBufferPointer { wp in
            bias.withUnsafeBufferPointer { bp in
                let w = wp.baseAddress!, b = bp.baseAddress!
                Parallel.forEach(groups) { gi in
                    let start = o + gi * perGroup * plane, n = perGroup * plane
                    // Double sums: a group of a 256² decoder holds 8M values.
                    var sum = 0.0
                    for i in 0..<n { sum += Double(start[i]) }
                    let mean = sum / Double(n)
                    var sq = 0.0
                    for i in 0..<n { let d = Double(start[i]) - mean; sq += d * d }
                    let inv = Float(1 / (sq / Double(n) + Double(eps)).squareRoot())
                    let m = Float(mean)
                    for ch in 0..<perGroup {
                        let channel = gi * perGroup + ch
                        let scale = inv * w[channel], shift = b[channel]
                        let p = start + ch * plane
                        for i in 0..<plane { p[i] = (p[i] - m) * scale + shift }
                    }
                }
            }
        }
        return out
    }

    /// `F.interpolate(scale_factor=2, mode="nearest")` on `[C, H, W]`: every pixel becomes a 2×2 block.
    public static func upsampleNearest2x(_ input: Tensor) throws -> Tensor {
        guard input.rank == 3 else { throw TensorError.shape("upsampleNearest2x", "input \(input.shape), expected [C, H, W]") }
        let (c, h, w) = (input.shape[0], input.shape[1], input.shape[2])
        var out = Tensor(overwrittenShape: [c, 2 * h, 2 * w])
        let o = out.withUnsafeMutableBufferPointer { $0.baseAddress! }
        input.withUnsafeBufferPointer { src in
            let s = src.baseAddress!
            Parallel.forEachChunk(c, minimumPerThread: 4) { channels in
                for ch in channels {
                    for y in 0..<(2 * h) {
                        let from = s + ch * h * w + (y / 2) * w
                        let to = o + ch * 4 * h * w + y * 2 * w
                        for x in 0..<(2 * w) { to[x] = from[x / 2] }
                    }
                }
            }
        }
        return out
    }
}
