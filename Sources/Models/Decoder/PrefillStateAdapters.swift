import Tensors
import TokenCompression

/// Bridges between the decoder's prefill state and the method API of `TokenCompression`.
extension PrefillState {
    /// The current rows as a `TokenLayout` (system, image, text), when the image rows still form
    /// one contiguous run (true for a single image before any visual pruning, and after pruning
    /// that keeps the order). Throws otherwise.
    public func tokenLayout() throws -> TokenLayout {
        let image = imageRows
        guard let first = image.first else {
            return try TokenLayout(imageStart: hidden.rows, imageCount: 0, totalCount: hidden.rows)
        }
        guard image.last! - first + 1 == image.count else {
            throw ModelError("prefill state at layer \(layer): image rows are not contiguous (several images?); build the layout per image")
        }
        return try TokenLayout(imageStart: first, imageCount: image.count, totalCount: hidden.rows)
    }

    /// Recorded attention of layer `layer - 1` for one query row, `[heads, keys]` (e.g. the last
    /// row for FastV), or nil when that row was not recorded.
    public func recordedAttention(row: Int) throws -> Tensor? {
        guard let a = previousAttention, let slot = a.rows.firstIndex(of: row) else { return nil }
        let heads = a.values.shape[0], count = a.values.shape[1], keys = a.values.shape[2]
        var out = Tensor(zeros: [heads, keys])
        out.withUnsafeMutableBufferPointer { dst in
            a.values.withUnsafeBufferPointer { src in
                for h in 0..<heads {
                    for j in 0..<keys { dst[h * keys + j] = src[(h * count + slot) * keys + j] }
                }
            }
        }
        return out
    }
}

extension PruneDecision {
    /// The decision a method's `CompressionResult` asks for (nil for a no-op result).
    public init?(_ result: CompressionResult) {
        guard result.noOpReason == nil else { return nil }
        self.init(keptRows: result.kept.sorted(), positions: result.positionPolicy)
    }
}
