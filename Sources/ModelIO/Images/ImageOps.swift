import Foundation
import Tensors

/// Geometry and tensor conversions that Hugging Face image processors apply after resizing.
extension RGBImage {
    /// The `width` x `height` region whose top-left corner is (`x`, `y`); it must lie inside.
    public func cropped(x: Int, y: Int, width w: Int, height h: Int) throws -> RGBImage {
        guard x >= 0, y >= 0, w > 0, h > 0, x + w <= width, y + h <= height else {
            throw ImageError(path: nil, "crop \(w)x\(h) at (\(x), \(y)) is outside the \(width)x\(height) image")
        }
        var out = [UInt8](repeating: 0, count: w * h * 3)
        for row in 0..<h {
            let src = ((y + row) * width + x) * 3
            out.replaceSubrange((row * w * 3)..<((row + 1) * w * 3), with: pixels[src..<(src + w * 3)])
        }
        return try RGBImage(width: w, height: h, pixels: out)
    }

    /// A canvas of `canvasWidth` x `canvasHeight` filled with `fill`, with this image pasted at
    /// (`left`, `top`); parts falling outside the canvas are cut off.
    public func pasted(onCanvasWidth canvasWidth: Int, height canvasHeight: Int, left: Int, top: Int,
                       fill: (UInt8, UInt8, UInt8) = (0, 0, 0)) -> RGBImage {
        var canvas = RGBImage(width: canvasWidth, height: canvasHeight, fill: fill)
        let x0 = max(0, left), x1 = min(canvasWidth, left + width)
        guard x1 > x0 else { return canvas }
        for cy in max(0, top)..<min(canvasHeight, top + height) {
            let sy = cy - top
            let dst = (cy * canvasWidth + x0) * 3
            let src = (sy * width + (x0 - left)) * 3
            canvas.pixels.replaceSubrange(dst..<(dst + (x1 - x0) * 3), with: pixels[src..<(src + (x1 - x0) * 3)])
        }
        return canvas
    }

    /// transformers' `center_crop`: the centred `width` x `height` window, with offsets rounded
    /// down; where the image is smaller than the window it is first zero-padded, centred with
    /// the extra pixel of an odd difference going to the bottom/right.
    public func centerCropped(width cropW: Int, height cropH: Int) throws -> RGBImage {
        guard cropW > 0, cropH > 0 else { throw ImageError(path: nil, "center crop size must be positive, got \(cropW)x\(cropH)") }
        var top = (height - cropH) / 2 - ((height - cropH) < 0 && (height - cropH) % 2 != 0 ? 1 : 0)
        var left = (width - cropW) / 2 - ((width - cropW) < 0 && (width - cropW) % 2 != 0 ? 1 : 0)
        if top >= 0, left >= 0, top + cropH <= height, left + cropW <= width {
            return try cropped(x: left, y: top, width: cropW, height: cropH)
        }
        let newH = max(cropH, height), newW = max(cropW, width)
        let topPad = (newH - height + 1) / 2, leftPad = (newW - width + 1) / 2
        let padded = pasted(onCanvasWidth: newW, height: newH, left: leftPad, top: topPad)
        top += topPad
        left += leftPad
        let y0 = max(0, top), y1 = min(newH, top + cropH)
        let x0 = max(0, left), x1 = min(newW, left + cropW)
        return try padded.cropped(x: x0, y: y0, width: x1 - x0, height: y1 - y0)
    }

    /// LLaVA-1.5's `expand2square`: pads the shorter side to a square with `fill`, the image
    /// centred (offset rounded down).
    public func expandedToSquare(fill: (UInt8, UInt8, UInt8)) -> RGBImage {
        if width == height { return self }
        let side = max(width, height)
        return pasted(onCanvasWidth: side, height: side,
                      left: width > height ? 0 : (side - width) / 2,
                      top: width > height ? (side - height) / 2 : 0, fill: fill)
    }

    /// Channels-first Float32 pixels [3, H, W]: each value is `Float(Double(v) * rescale)` (as
    /// numpy's float64 rescale then float32 cast), then `(x - mean) / std` in Float32 arithmetic.
    /// Pass nil to skip a step.
    public func normalizedTensor(rescale: Double?, mean: [Double]?, std: [Double]?) throws -> Tensor {
        if let mean, mean.count != 3 { throw ImageError(path: nil, "image_mean must have 3 values, got \(mean.count)") }
        if let std, std.count != 3 { throw ImageError(path: nil, "image_std must have 3 values, got \(std.count)") }
        if let std, std.contains(0) { throw ImageError(path: nil, "image_std must not contain 0") }
        var table = [[Float]](repeating: [Float](repeating: 0, count: 256), count: 3)
        for c in 0..<3 {
            for v in 0..<256 {
                var x = rescale.map { Float(Double(v) * $0) } ?? Float(v)
                if let mean, let std { x = (x - Float(mean[c])) / Float(std[c]) }
                table[c][v] = x
            }
        }
        var t = Tensor(zeros: [3, height, width])
        let plane = width * height
        t.withUnsafeMutableBufferPointer { out in
            for i in 0..<plane {
                out[i] = table[0][Int(pixels[3 * i])]
                out[plane + i] = table[1][Int(pixels[3 * i + 1])]
                out[2 * plane + i] = table[2][Int(pixels[3 * i + 2])]
            }
        }
        return t
    }
}
