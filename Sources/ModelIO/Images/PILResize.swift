import Foundation

/// Resampling filters with Pillow's numbering (`resample` in preprocessor_config.json).
public enum ResampleFilter: Int, Sendable {
    case nearest = 0, lanczos = 1, bilinear = 2, bicubic = 3, box = 4, hamming = 5

    /// The filter's support at scale 1 (in source pixels, each side of the centre).
    var support: Double {
        switch self {
        case .nearest, .box: return 0.5
        case .bilinear, .hamming: return 1.0
        case .bicubic: return 2.0
        case .lanczos: return 3.0
        }
    }

    /// The filter kernel, written from Pillow's definitions (bicubic uses a = -0.5).
    func weight(_ t: Double) -> Double {
        let x = abs(t)
        switch self {
        case .nearest, .box:
            return t > -0.5 && t <= 0.5 ? 1.0 : 0.0
        case .bilinear:
            return x < 1.0 ? 1.0 - x : 0.0
        case .hamming:
            if x == 0 { return 1.0 }
            if x >= 1.0 { return 0.0 }
            let px = x * Double.pi
            return sin(px) / px * (0.54 + 0.46 * cos(px))
        case .bicubic:
            let a = -0.5
            if x < 1.0 { return ((a + 2.0) * x - (a + 3.0)) * x * x + 1 }
            if x < 2.0 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0.0
        case .lanczos:
            if x >= 3.0 { return 0.0 }
            return Self.sinc(t) * Self.sinc(t / 3.0)
        }
    }

    private static func sinc(_ x: Double) -> Double {
        if x == 0 { return 1.0 }
        let px = x * Double.pi
        return sin(px) / px
    }
}

/// Pillow's convolution resize for 8-bit images (`Image.resize` without `reducing_gap`).
///
/// Hugging Face's PIL image processors resize with Pillow, so matching its output bit for bit
/// decides whether our pixel tensors equal theirs. Pillow's rules, reproduced here:
/// - separable: two 1-D passes (order below), each skipped when that dimension does not
///   change; the intermediate is rounded to uint8;
/// - when shrinking, the kernel is stretched by the scale (antialiasing), so its support grows;
/// - weights are computed in double, normalised per output pixel, then converted to fixed point
///   with 22 fractional bits, accumulated in 32-bit integers from a 0.5 bias and clipped to 0...255.
enum PILResize {
    static let precisionBits = 22

    /// Per output pixel: first source index, tap count, and fixed-point weights (`taps` per pixel).
    struct Coefficients {
        var start: [Int]
        var count: [Int]
        var taps: Int
        var weights: [Int32]
    }

    static func coefficients(inSize: Int, outSize: Int, filter: ResampleFilter) -> Coefficients {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1.0)
        let support = filter.support * filterScale
        let taps = Int(support.rounded(.up)) * 2 + 1
        var start = [Int](repeating: 0, count: outSize)
        var count = [Int](repeating: 0, count: outSize)
        var weights = [Int32](repeating: 0, count: outSize * taps)
        var k = [Double](repeating: 0, count: taps)
        let inverse = 1.0 / filterScale
        for xx in 0..<outSize {
            let center = (Double(xx) + 0.5) * scale
            var xmin = Int(center - support + 0.5)  // truncation toward zero, as C's (int)
            if xmin < 0 { xmin = 0 }
            var xmax = Int(center + support + 0.5)
            if xmax > inSize { xmax = inSize }
            xmax -= xmin
            var total = 0.0
            for x in 0..<xmax {
                let w = filter.weight((Double(x + xmin) - center + 0.5) * inverse)
                k[x] = w
                total += w
            }
            for x in 0..<taps {
                var w = x < xmax ? k[x] : 0
                if x < xmax, total != 0 { w /= total }
                let fixed = w * Double(1 << precisionBits)
                weights[xx * taps + x] = Int32(w < 0 ? Int(-0.5 + fixed) : Int(0.5 + fixed))
            }
            start[xx] = xmin
            count[xx] = xmax
        }
        return Coefficients(start: start, count: count, taps: taps, weights: weights)
    }

    @inline(__always) static func clip8(_ v: Int32) -> UInt8 {
        let shifted = v >> Int32(precisionBits)
        if shifted <= 0 { return 0 }
        if shifted >= 255 { return 255 }
        return UInt8(shifted)
    }

    /// Resizes interleaved 8-bit pixels with `channels` per pixel.
    ///
    /// Pass order follows Pillow 13: the vertical pass runs first when it shrinks the image by
    /// more than twice as many pixels as the horizontal pass does (`inH - outH > 2·(inW - outW)`,
    /// found by comparing against Pillow on hundreds of size pairs); otherwise horizontal first.
    /// The order matters because the intermediate image is rounded to uint8.
    static func resize(_ pixels: [UInt8], width: Int, height: Int, channels: Int,
                       toWidth outW: Int, toHeight outH: Int, filter: ResampleFilter) -> [UInt8] {
        if outW == width && outH == height { return pixels }
        let verticalFirst = outW != width && height - outH > 0 && height - outH > 2 * (width - outW)
        if verticalFirst {
            let v = vertical(pixels, width: width, height: height, channels: channels, toHeight: outH, filter: filter)
            return horizontal(v, width: width, height: outH, channels: channels, toWidth: outW, filter: filter)
        }
        var current = pixels
        if outW != width {
            current = horizontal(current, width: width, height: height, channels: channels, toWidth: outW, filter: filter)
        }
        if outH != height {
            current = vertical(current, width: outW, height: height, channels: channels, toHeight: outH, filter: filter)
        }
        return current
    }

    static func horizontal(_ pixels: [UInt8], width: Int, height: Int, channels: Int,
                           toWidth outW: Int, filter: ResampleFilter) -> [UInt8] {
        let bias = Int32(1 << (precisionBits - 1))
        let c = coefficients(inSize: width, outSize: outW, filter: filter)
        var out = [UInt8](repeating: 0, count: outW * height * channels)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<height {
                    let row = y * width * channels
                    for xx in 0..<outW {
                        let base = xx * c.taps
                        let s = c.start[xx]
                        for ch in 0..<channels {
                            var acc = bias
                            for t in 0..<c.count[xx] {
                                acc &+= Int32(src[row + (s + t) * channels + ch]) &* c.weights[base + t]
                            }
                            dst[(y * outW + xx) * channels + ch] = clip8(acc)
                        }
                    }
                }
            }
        }
        return out
    }

    static func vertical(_ pixels: [UInt8], width: Int, height: Int, channels: Int,
                         toHeight outH: Int, filter: ResampleFilter) -> [UInt8] {
        let bias = Int32(1 << (precisionBits - 1))
        let c = coefficients(inSize: height, outSize: outH, filter: filter)
        let rowLength = width * channels
        var out = [UInt8](repeating: 0, count: rowLength * outH)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for yy in 0..<outH {
                    let base = yy * c.taps
                    let s = c.start[yy]
                    for i in 0..<rowLength {
                        var acc = bias
                        for t in 0..<c.count[yy] {
                            acc &+= Int32(src[(s + t) * rowLength + i]) &* c.weights[base + t]
                        }
                        dst[yy * rowLength + i] = clip8(acc)
                    }
                }
            }
        }
        return out
    }
}

extension RGBImage {
    /// The image resized with Pillow's algorithm (see `PILResize`); nearest is not supported.
    public func resized(width newWidth: Int, height newHeight: Int, filter: ResampleFilter = .bicubic) throws -> RGBImage {
        guard newWidth > 0, newHeight > 0 else {
            throw ImageError(path: nil, "cannot resize \(width)x\(height) to \(newWidth)x\(newHeight)")
        }
        guard filter != .nearest else {
            throw ImageError(path: nil, "nearest-neighbour resampling (resample=0) is not supported; use bilinear (2) or bicubic (3)")
        }
        let out = PILResize.resize(pixels, width: width, height: height, channels: 3,
                                   toWidth: newWidth, toHeight: newHeight, filter: filter)
        return try RGBImage(width: newWidth, height: newHeight, pixels: out)
    }
}
