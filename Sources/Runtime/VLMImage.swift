import Foundation
import ModelIO
import Models
import Tensors

/// One picture ready for a LLaVA run: the decoded original, the tensors the model takes and what a
/// keep map is drawn on (the model-input picture for LLaVA-1.5, thumbnail and tiles for NeXT).
public struct VLMPreparedImage: @unchecked Sendable {
    public var original: RGBImage
    public var llava: LlavaImage
    /// LLaVA-1.5: the uint8 picture the tower sees (after pad/resize/crop).
    public var modelInput: RGBImage?
    /// LLaVA-NeXT: thumbnail, canvas and tiles.
    public var anyRes: AnyResImages?
}

extension VLMRunner {
    /// Decodes an image file; failures name the file.
    public static func loadImage(path: String) throws -> RGBImage {
        guard FileManager.default.fileExists(atPath: path) else { throw VLMRunError("image '\(path)' does not exist") }
        do {
            return try RGBImage.load(path: path)
        } catch {
            throw VLMRunError("cannot decode image '\(path)': \(error)")
        }
    }

    /// Runs the checkpoint's preprocessing (AnyRes tiles for NeXT).
    public func prepare(_ image: RGBImage) throws -> VLMPreparedImage {
        switch model.config.variant {
        case .llava15:
            let pixels = try preprocessor(image)
            let side = model.config.vision.imageSize
            guard pixels.shape == [3, side, side] else {
                throw VLMRunError("preprocessor gives pixel values \(pixels.shape), the vision tower takes [3, \(side), \(side)] (check preprocessor_config.json)")
            }
            return VLMPreparedImage(original: image, llava: .single(pixels), modelInput: try preprocessor.modelInputImage(image), anyRes: nil)
        case .next, .onevision:
            let a = try preprocessor.anyRes(image)
            let shape = a.pixelValues.shape
            guard shape.count == 4, shape[1] == 3, shape[2] == model.config.vision.imageSize, shape[3] == model.config.vision.imageSize else {
                throw VLMRunError("preprocessor gives AnyRes pixel values \(shape), the vision tower takes [tiles, 3, \(model.config.vision.imageSize), \(model.config.vision.imageSize)]")
            }
            let per = shape[1] * shape[2] * shape[3]
            let flat = try a.pixelValues.reshaped([shape[0], per])
            let tiles = try (0..<shape[0]).map { try flat.rows($0..<($0 + 1)).reshaped([shape[1], shape[2], shape[3]]) }
            return VLMPreparedImage(original: image, llava: .anyRes(tiles: tiles, imageHeight: image.height, imageWidth: image.width),
                                    modelInput: nil, anyRes: a)
        }
    }

    /// Visual tokens the image takes in the prompt without compression.
    public func visualTokenCount(_ image: VLMPreparedImage) throws -> Int { try model.imageTokenCount(image.llava) }

    /// Draws the keep map of a run: dropped visual tokens dimmed on the model-input picture
    /// (NeXT: thumbnail and tile canvas). `kept` indexes the image's visual tokens.
    public func keepMap(kept: [Int], image: VLMPreparedImage, dim: Float = 0.3) throws -> RGBImage {
        let side = model.config.vision.patchesPerSide
        switch model.config.variant {
        case .llava15:
            guard let picture = image.modelInput else { throw VLMRunError("keep map: no model-input picture") }
            // With the "full" strategy the first visual token is [CLS]: it has no patch.
            let shift = model.config.featuresPerTile - side * side
            let cells = Set(kept.map { $0 - shift }.filter { $0 >= 0 && $0 < side * side })
            return try KeepMap.draw(image: picture, grid: (side, side), kept: cells, dim: dim)
        case .next, .onevision:
            guard let a = image.anyRes else { throw VLMRunError("keep map: no AnyRes images") }
            let layout = try AnyRes.layout(imageSize: PixelSize(height: image.original.height, width: image.original.width),
                                           pinpoints: model.config.gridPinpoints.map { PixelSize(height: $0.height, width: $0.width) },
                                           tileSize: model.config.vision.imageSize, patchSize: model.config.vision.patchSize)
            if model.config.variant == .onevision,
               try model.onevisionGridSize(height: layout.unpad.height, width: layout.unpad.width).downscaled {
                throw VLMRunError("keep map: this image's OneVision grid is downscaled (anyres_max_\(model.config.anyResMaxTiles ?? 0)), so its tokens are interpolated cells, not patches; no keep map is drawn")
            }
            return try KeepMap.drawAnyRes(a, layout: layout, kept: Set(kept.filter { $0 >= 0 && $0 < layout.tokenCount }), dim: dim)
        }
    }
}
