/// LLaVA-NeXT AnyRes geometry, following transformers' rules (`select_best_resolution`,
/// `get_anyres_image_grid_shape`, `unpad_image`). Internal: the image helper has its own copy for
/// preprocessing; the model only needs the grid and the unpadding crop.
enum AnyResGeometry {
    /// The pinpoint `(height, width)` that keeps the most image pixels, then wastes the fewest.
    static func bestResolution(imageHeight: Int, imageWidth: Int, pinpoints: [(height: Int, width: Int)]) -> (height: Int, width: Int) {
        var best = pinpoints[0]
        var bestEffective = 0
        var bestWasted = Int.max
        let (oh, ow) = (Double(imageHeight), Double(imageWidth))
        for p in pinpoints {
            let scale = min(Double(p.width) / ow, Double(p.height) / oh)
            let dw = Int(ow * scale), dh = Int(oh * scale)
            let effective = min(dw * dh, imageWidth * imageHeight)
            let wasted = p.width * p.height - effective
            if effective > bestEffective || (effective == bestEffective && wasted < bestWasted) {
                bestEffective = effective
                bestWasted = wasted
                best = p
            }
        }
        return best
    }

    /// Tiles down and across for an image (the thumbnail excluded).
    static func grid(imageHeight: Int, imageWidth: Int, pinpoints: [(height: Int, width: Int)], tileSize: Int) -> (rows: Int, cols: Int) {
        let b = bestResolution(imageHeight: imageHeight, imageWidth: imageWidth, pinpoints: pinpoints)
        return (b.height / tileSize, b.width / tileSize)
    }

    /// `int(round(x, 7))` as Python computes it for the unpadding sizes.
    private static func roundedInt(_ x: Double) -> Int { Int((x * 1e7).rounded() / 1e7) }

    /// Rows and columns of the `[height, width]` feature grid that survive unpadding.
    static func unpaddedRanges(height: Int, width: Int, imageHeight: Int, imageWidth: Int) -> (rows: Range<Int>, cols: Range<Int>) {
        let originalAspect = Double(imageWidth) / Double(imageHeight)
        let currentAspect = Double(width) / Double(height)
        if originalAspect > currentAspect {
            let scale = Double(width) / Double(imageWidth)
            let newHeight = roundedInt(Double(imageHeight) * scale)
            let padding = (height - newHeight) / 2
            return (padding..<(height - padding), 0..<width)
        } else {
            let scale = Double(height) / Double(imageHeight)
            let newWidth = roundedInt(Double(imageWidth) * scale)
            let padding = (width - newWidth) / 2
            return (0..<height, padding..<(width - padding))
        }
    }
}
