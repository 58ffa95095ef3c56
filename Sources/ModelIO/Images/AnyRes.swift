import Foundation

/// A size in pixels or in feature cells, height first (the order Hugging Face uses for
/// `image_sizes` and `image_grid_pinpoints`).
public struct PixelSize: Hashable, Sendable, CustomStringConvertible {
    public var height: Int
    public var width: Int
    public init(height: Int, width: Int) {
        self.height = height
        self.width = width
    }
    public var description: String { "\(height)x\(width) (HxW)" }
}

/// The part of a padded feature grid that `unpad_image` keeps: rows `top ..< top + height`,
/// columns `left ..< left + width`.
public struct UnpadRegion: Hashable, Sendable {
    public var top: Int
    public var left: Int
    public var height: Int
    public var width: Int
}

/// LLaVA-NeXT "AnyRes" geometry as pure functions on sizes, so the model assembly can count
/// tokens and place features without touching pixels. Each rule follows transformers'
/// function of the same purpose, including its float arithmetic and tie-breaking.
public enum AnyRes {
    /// `select_best_resolution`: the pinpoint that keeps the most image pixels after an
    /// aspect-preserving fit (capped at the original pixel count), ties broken by the least
    /// wasted area, then by the earlier pinpoint.
    public static func selectBestResolution(imageSize: PixelSize, pinpoints: [PixelSize]) throws -> PixelSize {
        guard imageSize.height > 0, imageSize.width > 0 else {
            throw ImageError(path: nil, "image size must be positive, got \(imageSize)")
        }
        guard !pinpoints.isEmpty, pinpoints.allSatisfy({ $0.height > 0 && $0.width > 0 }) else {
            throw ImageError(path: nil, "image_grid_pinpoints must be a non-empty list of positive [height, width] pairs")
        }
        let oh = Double(imageSize.height), ow = Double(imageSize.width)
        var best = pinpoints[0]
        var maxEffective = 0
        var minWasted = Int.max
        for p in pinpoints {
            let scale = min(Double(p.width) / ow, Double(p.height) / oh)
            let dw = Int(ow * scale), dh = Int(oh * scale)
            let effective = min(dw * dh, imageSize.width * imageSize.height)
            let wasted = p.width * p.height - effective
            if effective > maxEffective || (effective == maxEffective && wasted < minWasted) {
                maxEffective = effective
                minWasted = wasted
                best = p
            }
        }
        return best
    }

    /// `get_patch_output_size`: the aspect-preserving size of the image inside `target`
    /// (the side that limits is exact, the other is rounded up and capped).
    public static func fittedSize(imageSize: PixelSize, target: PixelSize) -> PixelSize {
        let scaleW = Double(target.width) / Double(imageSize.width)
        let scaleH = Double(target.height) / Double(imageSize.height)
        if scaleW < scaleH {
            return PixelSize(height: min(Int((Double(imageSize.height) * scaleW).rounded(.up)), target.height),
                             width: target.width)
        }
        return PixelSize(height: target.height,
                         width: min(Int((Double(imageSize.width) * scaleH).rounded(.up)), target.width))
    }

    /// Top/left padding that centres `content` in `target` (the odd pixel goes bottom/right).
    public static func paddingOffsets(content: PixelSize, target: PixelSize) -> (top: Int, left: Int) {
        ((target.height - content.height) / 2, (target.width - content.width) / 2)
    }

    /// `get_anyres_image_grid_shape`: tiles per column and per row of the best resolution.
    public static func gridShape(imageSize: PixelSize, pinpoints: [PixelSize], tileSize: Int) throws -> (rows: Int, cols: Int) {
        guard tileSize > 0 else { throw ImageError(path: nil, "tile size must be positive") }
        let best = try selectBestResolution(imageSize: imageSize, pinpoints: pinpoints)
        return (best.height / tileSize, best.width / tileSize)
    }

    /// `image_size_to_num_patches`: the tiles covering the best resolution plus the thumbnail.
    public static func numPatches(imageSize: PixelSize, pinpoints: [PixelSize], tileSize: Int) throws -> Int {
        guard tileSize > 0 else { throw ImageError(path: nil, "tile size must be positive") }
        let best = try selectBestResolution(imageSize: imageSize, pinpoints: pinpoints)
        let rows = (best.height + tileSize - 1) / tileSize, cols = (best.width + tileSize - 1) / tileSize
        return rows * cols + 1
    }

    /// Python's `int(round(x, 7))` for x >= 0: rounds away float noise such as 335.99999999
    /// before truncating.
    static func roundedToSevenThenTruncated(_ x: Double) -> Int {
        let r = (x * 1e7).rounded(.toNearestOrEven) / 1e7
        return Int(r)
    }

    /// `unpad_image` on a feature grid of `featureSize` cells built from an image of
    /// `imageSize` pixels: removes the rows (or columns) that only cover padding.
    public static func unpadRegion(imageSize: PixelSize, featureSize: PixelSize) -> UnpadRegion {
        let oh = Double(imageSize.height), ow = Double(imageSize.width)
        let ch = featureSize.height, cw = featureSize.width
        if ow / oh > Double(cw) / Double(ch) {
            let newH = roundedToSevenThenTruncated(oh * (Double(cw) / ow))
            let pad = (ch - newH) / 2
            return UnpadRegion(top: pad, left: 0, height: max(0, ch - 2 * pad), width: cw)
        }
        let newW = roundedToSevenThenTruncated(ow * (Double(ch) / oh))
        let pad = (cw - newW) / 2
        return UnpadRegion(top: 0, left: pad, height: ch, width: max(0, cw - 2 * pad))
    }

    /// The full token layout of one AnyRes image: `patchesPerSide`² base (thumbnail) tokens,
    /// then the unpadded grid of the tiles with one newline token after each row when
    /// `newlines` is set (LLaVA-NeXT's `image_newline`).
    public static func layout(imageSize: PixelSize, pinpoints: [PixelSize], tileSize: Int,
                              patchSize: Int, newlines: Bool = true) throws -> AnyResLayout {
        // Patches per tile side are floored like the stride-`patchSize` convolution (384 / 14 = 27).
        guard patchSize > 0, patchSize <= tileSize else {
            throw ImageError(path: nil, "patch size \(patchSize) must be positive and at most the tile size \(tileSize)")
        }
        let grid = try gridShape(imageSize: imageSize, pinpoints: pinpoints, tileSize: tileSize)
        let side = tileSize / patchSize
        let full = PixelSize(height: grid.rows * side, width: grid.cols * side)
        return AnyResLayout(imageSize: imageSize,
                            bestResolution: try selectBestResolution(imageSize: imageSize, pinpoints: pinpoints),
                            tileRows: grid.rows, tileCols: grid.cols, patchesPerSide: side,
                            unpad: unpadRegion(imageSize: imageSize, featureSize: full), newlines: newlines)
    }

    /// Image tokens for one AnyRes image (base + unpadded + newlines), as LlavaNextProcessor
    /// counts them with `num_additional_image_tokens = 0` (the "default" feature strategy).
    public static func numImageTokens(imageSize: PixelSize, pinpoints: [PixelSize], tileSize: Int,
                                      patchSize: Int, newlines: Bool = true) throws -> Int {
        try layout(imageSize: imageSize, pinpoints: pinpoints, tileSize: tileSize,
                   patchSize: patchSize, newlines: newlines).tokenCount
    }
}

/// Where each token of an AnyRes image comes from (see `AnyRes.layout`).
public struct AnyResLayout: Hashable, Sendable {
    public var imageSize: PixelSize
    public var bestResolution: PixelSize
    public var tileRows: Int
    public var tileCols: Int
    /// Feature cells per tile side (tile size / ViT patch size).
    public var patchesPerSide: Int
    /// The kept part of the (tileRows·side) x (tileCols·side) feature grid.
    public var unpad: UnpadRegion
    public var newlines: Bool

    public var baseTokenCount: Int { patchesPerSide * patchesPerSide }
    public var gridTokenCount: Int { unpad.height * unpad.width + (newlines ? unpad.height : 0) }
    public var tokenCount: Int { baseTokenCount + gridTokenCount }

    /// What token `index` shows: a base cell, a cell of the full tile grid, or a newline.
    public enum Token: Hashable, Sendable {
        case base(row: Int, col: Int)
        case tile(row: Int, col: Int)
        case newline(row: Int)
    }

    public func token(_ index: Int) -> Token? {
        guard index >= 0, index < tokenCount else { return nil }
        if index < baseTokenCount { return .base(row: index / patchesPerSide, col: index % patchesPerSide) }
        let k = index - baseTokenCount
        let rowLength = unpad.width + (newlines ? 1 : 0)
        let r = k / rowLength, c = k % rowLength
        if c == unpad.width { return .newline(row: unpad.top + r) }
        return .tile(row: unpad.top + r, col: unpad.left + c)
    }
}
