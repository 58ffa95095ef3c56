import Foundation
import Tensors

/// The images LLaVA-NeXT's processor feeds to the vision tower for one picture.
public struct AnyResImages: Sendable {
    /// The original image size (what the model receives as `image_sizes`).
    public var imageSize: PixelSize
    /// The chosen pinpoint.
    public var bestResolution: PixelSize
    /// The aspect-preserving resize of the image inside `bestResolution`, and where it sits.
    public var contentSize: PixelSize
    public var contentTop: Int
    public var contentLeft: Int
    /// The resized image centred on a black canvas of `bestResolution`.
    public var canvas: RGBImage
    /// The whole image resized to the processor's `size` (first in `pixelValues`).
    public var thumbnail: RGBImage
    /// Tiles of the canvas, row-major, each `tileSize` square (before the per-patch resize/crop).
    public var tiles: [RGBImage]
    public var tileRows: Int
    public var tileCols: Int
    /// [1 + tiles, 3, H, W]: thumbnail then tiles, each resized, cropped, rescaled, normalised.
    public var pixelValues: Tensor
}

extension ImagePreprocessor {
    /// The tile side LLaVA-NeXT splits the canvas into (`crop_size.height`).
    public var anyResTileSize: Int { cropSize.height }

    /// `size` as the (height, width) the thumbnail is resized to.
    var thumbnailSize: PixelSize {
        switch size {
        case .exact(let s): return s
        case .shortestEdge(let s): return PixelSize(height: s, width: s)
        }
    }

    /// LLaVA-NeXT AnyRes: best pinpoint, aspect-preserving resize, centred zero padding,
    /// tiles of `crop_size`, plus the thumbnail; then every patch goes through resize, crop,
    /// rescale and normalise as in `LlavaNextImageProcessor`.
    public func anyRes(_ image: RGBImage) throws -> AnyResImages {
        let original = PixelSize(height: image.height, width: image.width)
        let best = try AnyRes.selectBestResolution(imageSize: original, pinpoints: gridPinpoints)
        let fitted = AnyRes.fittedSize(imageSize: original, target: best)
        let resized = try image.resized(width: fitted.width, height: fitted.height, filter: resample)
        let offset = AnyRes.paddingOffsets(content: fitted, target: best)
        let canvas = resized.pasted(onCanvasWidth: best.width, height: best.height, left: offset.left, top: offset.top)
        let tile = anyResTileSize
        var tiles: [RGBImage] = []
        var rows = 0, cols = 0
        var y = 0
        while y < best.height {
            rows += 1
            cols = 0
            var x = 0
            while x < best.width {
                cols += 1
                tiles.append(try canvas.cropped(x: x, y: y, width: min(tile, best.width - x), height: min(tile, best.height - y)))
                x += tile
            }
            y += tile
        }
        let thumbSize = thumbnailSize
        let thumbnail = try image.resized(width: thumbSize.width, height: thumbSize.height, filter: resample)

        var patches: [Tensor] = []
        for patch in [thumbnail] + tiles {
            patches.append(try toTensor(try geometricPipeline(patch)))
        }
        let shape = patches[0].shape
        guard patches.allSatisfy({ $0.shape == shape }) else {
            throw ImageError(path: nil, "AnyRes patches have different sizes after preprocessing (enable do_center_crop or use tiles that divide the pinpoints)")
        }
        var stacked = Tensor(zeros: [patches.count] + shape)
        let each = patches[0].count
        stacked.withUnsafeMutableBufferPointer { out in
            for (i, p) in patches.enumerated() {
                p.withUnsafeBufferPointer { src in
                    for j in 0..<each { out[i * each + j] = src[j] }
                }
            }
        }
        return AnyResImages(imageSize: original, bestResolution: best, contentSize: fitted,
                            contentTop: offset.top, contentLeft: offset.left, canvas: canvas,
                            thumbnail: thumbnail, tiles: tiles, tileRows: rows, tileCols: cols,
                            pixelValues: stacked)
    }
}
