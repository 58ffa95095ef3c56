import Foundation
import ModelIO
import Tensors

/// The input of a fixed-size ViT for a batch `[B, C, H, W]`: conv patches (im2col and one GEMM for the
/// whole batch), the class tokens in front of each image's patches, learned positions added.
struct ImageEmbedding {
    let patchWeight: String
    let patchBias: String?
    /// [CLS] (and DeiT's distillation token), `width` values each, in sequence order.
    let classTokens: [String]
    /// `tokenCount × width` values.
    let positions: String
    let width, channels, imageSize, patchSize: Int

    var side: Int { imageSize / patchSize }
    var patchCount: Int { side * side }
    var tokenCount: Int { patchCount + classTokens.count }

    /// Checks every tensor's shape; `classTokenShape` and `positionShape` are the checkpoint's own
    /// layouts (ViT `[1, 1, d]` / `[1, T, d]`, CLIP `[d]` / `[T, d]`).
    init(store: WeightStore, patchWeight: String, patchBias: String?, classTokens: [String], classTokenShape: [Int],
         positions: String, positionShape: [Int], width: Int, channels: Int, imageSize: Int, patchSize: Int) throws {
        self.patchWeight = try store.checked(patchWeight, shape: [width, channels, patchSize, patchSize])
        self.patchBias = try patchBias.map { try store.checked($0, shape: [width]) }
        self.classTokens = try classTokens.map { try store.checked($0, shape: classTokenShape) }
        self.positions = try store.checked(positions, shape: positionShape)
        self.width = width
        self.channels = channels
        self.imageSize = imageSize
        self.patchSize = patchSize
        guard positionShape.reduce(1, *) == tokenCount * width else {
            throw ModelError("\(store.location): '\(positions)' holds \(positionShape) positions, the model needs \(tokenCount) × \(width)")
        }
    }

    /// Checks a pixel batch: `[B, C, H, W]` at the model's fixed size.
    func batchSize(of pixels: Tensor) throws -> Int {
        let s = imageSize
        guard pixels.rank == 4, pixels.shape[0] > 0, pixels.shape[1] == channels, pixels.shape[2] == s, pixels.shape[3] == s else {
            throw ModelError("pixel values have shape \(pixels.shape), expected [batch, \(channels), \(s), \(s)]: the model is fixed-size (its position embeddings cover \(s)×\(s) pixels and are not interpolated); resize and crop to \(s)×\(s) first")
        }
        return pixels.shape[0]
    }

    /// `[B · tokenCount, width]`: per image the class tokens, then the patches row-major, plus positions.
    func callAsFunction(_ pixels: Tensor, store: WeightStore) throws -> StackedRows {
        let batch = try batchSize(of: pixels)
        let c = channels, s = imageSize, ps = patchSize, side = self.side, p = patchCount
        let k = c * ps * ps
        // im2col: one row per patch, laid out (channel, dy, dx) like the conv weight.
        var cols = Tensor(overwrittenShape: [batch * p, k])
        cols.withUnsafeMutableBufferPointer { dst in
            pixels.withUnsafeBufferPointer { src in
                for b in 0..<batch {
                    let image = b * c * s * s
                    for py in 0..<side {
                        for px in 0..<side {
                            var o = ((b * p) + py * side + px) * k
                            for ch in 0..<c {
                                for dy in 0..<ps {
                                    let rowStart = image + (ch * s + py * ps + dy) * s + px * ps
                                    for dx in 0..<ps { dst[o] = src[rowStart + dx]; o += 1 }
                                }
                            }
                        }
                    }
                }
            }
        }
        let patches = try cols.linear(weight: try store.tensor(patchWeight).reshaped([width, k]),
                                      bias: try patchBias.map { try store.tensor($0) })
        let specials = try classTokens.map { try store.tensor($0) }
        let pos = try store.tensor(positions)
        let t = tokenCount, d = width, n = classTokens.count
        var out = Tensor(overwrittenShape: [batch * t, d])
        out.withUnsafeMutableBufferPointer { dst in
            patches.withUnsafeBufferPointer { src in
                pos.withUnsafeBufferPointer { pp in
                    for b in 0..<batch {
                        let base = dst.baseAddress! + b * t * d
                        for (i, token) in specials.enumerated() {
                            token.withUnsafeBufferPointer { tp in (base + i * d).update(from: tp.baseAddress!, count: d) }
                        }
                        (base + n * d).update(from: src.baseAddress! + b * p * d, count: p * d)
                        for j in 0..<(t * d) { base[j] += pp[j] }
                    }
                }
            }
        }
        return StackedRows(hidden: out, rows: Array(repeating: t, count: batch))
    }
}
