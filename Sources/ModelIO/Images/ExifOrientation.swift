import Foundation

/// EXIF orientation, applied the way transformers' `load_image` does
/// (`PIL.ImageOps.exif_transpose` before `convert("RGB")`): phone photos store pixels sideways
/// and rely on this tag, so ignoring it would feed the model a rotated picture.
public enum ExifOrientation: Int, Sendable {
    case normal = 1, mirrored = 2, rotated180 = 3, flippedVertically = 4
    case transposed = 5, rotatedClockwise = 6, transversed = 7, rotatedCounterClockwise = 8

    /// The orientation tag (0x0112) of a JPEG's APP1 Exif block or a PNG's eXIf chunk;
    /// nil when absent or unreadable (a damaged tag is ignored, as PIL does).
    static func read(from bytes: [UInt8]) -> ExifOrientation? {
        guard let tiff = tiffBlock(bytes) else { return nil }
        return orientation(inTIFF: tiff)
    }

    private static func tiffBlock(_ b: [UInt8]) -> ArraySlice<UInt8>? {
        func be32(_ i: Int) -> Int { Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3]) }
        let exifHeader: [UInt8] = [0x45, 0x78, 0x69, 0x66, 0, 0]  // "Exif\0\0"
        if b.count > 8, b[0] == 0x89, b[1] == 0x50 {  // PNG: walk the chunks
            var i = 8
            while i + 8 <= b.count {
                let length = be32(i)
                let type = String(decoding: b[(i + 4)..<(i + 8)], as: UTF8.self)
                let start = i + 8
                guard length >= 0, start + length <= b.count else { return nil }
                if type == "eXIf" {
                    let data = b[start..<(start + length)]
                    return data.starts(with: exifHeader) ? data.dropFirst(6) : data
                }
                if type == "IEND" { return nil }
                i = start + length + 4
            }
            return nil
        }
        if b.count > 4, b[0] == 0xFF, b[1] == 0xD8 {  // JPEG: walk the marker segments up to SOS
            var i = 2
            while i + 4 <= b.count {
                guard b[i] == 0xFF else { return nil }
                let marker = b[i + 1]
                if marker == 0xFF { i += 1; continue }
                if marker == 0xD8 || (0xD0...0xD7).contains(marker) || marker == 0x01 { i += 2; continue }
                if marker == 0xDA || marker == 0xD9 { return nil }
                let length = Int(b[i + 2]) << 8 | Int(b[i + 3])
                guard length >= 2, i + 2 + length <= b.count else { return nil }
                let payload = b[(i + 4)..<(i + 2 + length)]
                if marker == 0xE1, payload.starts(with: exifHeader) { return payload.dropFirst(6) }
                i += 2 + length
            }
        }
        return nil
    }

    private static func orientation(inTIFF t: ArraySlice<UInt8>) -> ExifOrientation? {
        let b = Array(t)
        guard b.count >= 8 else { return nil }
        let little: Bool
        if b[0] == 0x49, b[1] == 0x49 { little = true } else if b[0] == 0x4D, b[1] == 0x4D { little = false } else { return nil }
        func u16(_ i: Int) -> Int? {
            guard i >= 0, i + 2 <= b.count else { return nil }
            return little ? Int(b[i]) | Int(b[i + 1]) << 8 : Int(b[i]) << 8 | Int(b[i + 1])
        }
        func u32(_ i: Int) -> Int? {
            guard let lo = u16(little ? i : i + 2), let hi = u16(little ? i + 2 : i) else { return nil }
            return hi << 16 | lo
        }
        guard let ifd = u32(4), let count = u16(ifd) else { return nil }
        for e in 0..<count {
            let entry = ifd + 2 + e * 12
            guard let tag = u16(entry), let type = u16(entry + 2) else { return nil }
            if tag == 0x0112 {
                guard type == 3, let value = u16(entry + 8) else { return nil }
                return ExifOrientation(rawValue: value)
            }
        }
        return nil
    }
}

extension RGBImage {
    /// The image turned upright for `orientation` (PIL's `exif_transpose` transforms).
    public func applying(_ orientation: ExifOrientation) -> RGBImage {
        if orientation == .normal { return self }
        let w = width, h = height
        let swaps = orientation.rawValue >= 5
        let outW = swaps ? h : w, outH = swaps ? w : h
        var out = [UInt8](repeating: 0, count: pixels.count)
        for y in 0..<outH {
            for x in 0..<outW {
                let (sx, sy): (Int, Int)
                switch orientation {
                case .normal: (sx, sy) = (x, y)
                case .mirrored: (sx, sy) = (w - 1 - x, y)
                case .rotated180: (sx, sy) = (w - 1 - x, h - 1 - y)
                case .flippedVertically: (sx, sy) = (x, h - 1 - y)
                case .transposed: (sx, sy) = (y, x)
                case .rotatedClockwise: (sx, sy) = (y, h - 1 - x)
                case .transversed: (sx, sy) = (w - 1 - y, h - 1 - x)
                case .rotatedCounterClockwise: (sx, sy) = (w - 1 - y, x)
                }
                let o = (y * outW + x) * 3, s = (sy * w + sx) * 3
                out[o] = pixels[s]; out[o + 1] = pixels[s + 1]; out[o + 2] = pixels[s + 2]
            }
        }
        return RGBImage(unchecked: outW, outH, out)
    }

    init(unchecked width: Int, _ height: Int, _ pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}
