import Foundation

/// An 8-bit RGB image, pixels interleaved row by row (`[r, g, b, r, g, b, ...]`).
///
/// This is the form every vision preprocessor starts from: Hugging Face image processors call
/// PIL's `convert("RGB")` first, which drops alpha (no compositing), looks palettes up and
/// replicates gray. Decoders here reproduce exactly that, so pixel tensors match the Python side.
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// Interleaved RGB bytes, `width * height * 3` of them (set only inside ModelIO, to keep that invariant).
    public internal(set) var pixels: [UInt8]

    /// Builds an image; `pixels` must hold `width * height * 3` bytes.
    public init(width: Int, height: Int, pixels: [UInt8]) throws {
        guard width > 0, height > 0 else {
            throw ImageError(path: nil, "image size must be positive, got \(width)x\(height)")
        }
        guard pixels.count == width * height * 3 else {
            throw ImageError(path: nil, "\(width)x\(height) RGB image needs \(width * height * 3) bytes, got \(pixels.count)")
        }
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// An image filled with one colour.
    public init(width: Int, height: Int, fill: (UInt8, UInt8, UInt8)) {
        self.width = max(width, 0)
        self.height = max(height, 0)
        var p = [UInt8](repeating: 0, count: self.width * self.height * 3)
        var i = 0
        while i < p.count { p[i] = fill.0; p[i + 1] = fill.1; p[i + 2] = fill.2; i += 3 }
        self.pixels = p
    }

    /// The (r, g, b) at column `x`, row `y`.
    public func pixel(x: Int, y: Int) -> (UInt8, UInt8, UInt8) {
        let o = (y * width + x) * 3
        return (pixels[o], pixels[o + 1], pixels[o + 2])
    }

    /// Decodes a PNG or JPEG file (recognised by its signature, not its extension).
    ///
    /// With `applyExifOrientation` (the default) the EXIF orientation tag is honoured, as
    /// transformers' `load_image` does; pass false to get PIL's `Image.open(...).convert("RGB")`.
    /// `alpha` chooses between PIL's `convert("RGB")` (drop, the default, what `load_image`
    /// gives) and transformers' `convert_to_rgb` on an image that still has transparency
    /// (composite onto white, what a processor does with `Image.open(path)` directly).
    public static func load(path: String, applyExifOrientation: Bool = true, alpha: AlphaHandling = .drop) throws -> RGBImage {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ImageError(path: path, "cannot read the file (missing or unreadable)")
        }
        return try decode(data: data, path: path, applyExifOrientation: applyExifOrientation, alpha: alpha)
    }

    /// Decodes PNG or JPEG bytes; `path` only labels errors.
    public static func decode(data: Data, path: String? = nil, applyExifOrientation: Bool = true,
                              alpha: AlphaHandling = .drop) throws -> RGBImage {
        let bytes = [UInt8](data)
        let image = try decodeRaw(bytes, path: path, alpha: alpha)
        if applyExifOrientation, let orientation = ExifOrientation.read(from: bytes) {
            return image.applying(orientation)
        }
        return image
    }

    private static func decodeRaw(_ bytes: [UInt8], path: String?, alpha: AlphaHandling) throws -> RGBImage {
        if bytes.count >= 8, bytes[0..<8].elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            return try PNGDecoder.decode(bytes, path: path, alpha: alpha)
        }
        if bytes.count >= 3, bytes[0] == 0xFF, bytes[1] == 0xD8, bytes[2] == 0xFF {
            return try JPEGDecoder.decode(bytes, path: path)
        }
        if bytes.isEmpty { throw ImageError(path: path, "the file is empty") }
        throw ImageError(path: path, "unknown image format (neither a PNG nor a JPEG signature)")
    }

    /// The image as 8-bit RGB PNG bytes (e.g. to inline into an HTML report).
    public func pngData() -> Data { PNGWriter.encode(self) }

    /// Writes the image as an 8-bit RGB PNG.
    public func writePNG(path: String) throws {
        let data = PNGWriter.encode(self)
        do {
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw ImageError(path: path, "cannot write the PNG: \(error.localizedDescription)")
        }
    }
}

/// What to do with transparency when reducing an image to RGB.
public enum AlphaHandling: Sendable {
    /// Ignore alpha and tRNS (PIL's `convert("RGB")`, transformers' `load_image`).
    case drop
    /// Composite onto opaque white (transformers' `convert_to_rgb` on an image with alpha).
    case compositeOnWhite
}

/// An image that could not be read, decoded, written or processed; names the file when known.
public struct ImageError: Error, CustomStringConvertible {
    public let path: String?
    public let message: String
    public init(path: String?, _ message: String) {
        self.path = path
        self.message = message
    }
    public var description: String {
        if let path { return "image \(path): \(message)" }
        return "image: \(message)"
    }
}
