import Foundation
#if canImport(CImageCodecs)
import CImageCodecs
#endif

/// A PNG encoder (8-bit RGB, filter 0). The image data is deflated with zlib where the image
/// codecs are linked (Linux: a 720×480 plot goes from 1 MB to ~20 KB), and written as stored
/// deflate blocks elsewhere — readable everywhere, just not small.
enum PNGWriter {
    /// `deflate: false` writes stored blocks even where zlib is available (tests of that path).
    static func encode(_ image: RGBImage, deflate: Bool = true) -> Data {
        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        var ihdr: [UInt8] = []
        appendBigEndian(&ihdr, UInt32(image.width))
        appendBigEndian(&ihdr, UInt32(image.height))
        ihdr += [8, 2, 0, 0, 0]  // depth 8, colour type RGB, deflate, filter 0, no interlace
        appendChunk(&out, "IHDR", ihdr)

        let stride = image.width * 3
        var raw = [UInt8]()
        raw.reserveCapacity((stride + 1) * image.height)
        for y in 0..<image.height {
            raw.append(0)
            raw += image.pixels[(y * stride)..<((y + 1) * stride)]
        }
        appendChunk(&out, "IDAT", (deflate ? deflated(raw) : nil) ?? stored(raw))
        appendChunk(&out, "IEND", [])
        return Data(out)
    }

    /// A zlib stream of `raw` at the default level, or nil without zlib (or if it fails).
    static func deflated(_ raw: [UInt8]) -> [UInt8]? {
        #if canImport(CImageCodecs)
        var length = compressBound(uLong(raw.count))
        var out = [UInt8](repeating: 0, count: Int(length))
        let rc = compress2(&out, &length, raw, uLong(raw.count), Z_DEFAULT_COMPRESSION)
        guard rc == Z_OK else { return nil }
        return Array(out[..<Int(length)])
        #else
        return nil
        #endif
    }

    /// A zlib stream of `raw` in stored (uncompressed) deflate blocks.
    static func stored(_ raw: [UInt8]) -> [UInt8] {
        var z: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let n = min(65535, raw.count - offset)
            let final: UInt8 = offset + n == raw.count ? 1 : 0
            z.append(final)
            z += [UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            z += raw[offset..<(offset + n)]
            offset += n
        } while offset < raw.count
        appendBigEndian(&z, adler32(raw))
        return z
    }

    private static func appendBigEndian(_ a: inout [UInt8], _ v: UInt32) {
        a += [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
    }

    private static func appendChunk(_ out: inout [UInt8], _ type: String, _ body: [UInt8]) {
        appendBigEndian(&out, UInt32(body.count))
        let typed = Array(type.utf8) + body
        out += typed
        appendBigEndian(&out, crc32(typed))
    }

    private static let crcTable: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        var i = 0
        while i < bytes.count {
            let end = min(i + 5552, bytes.count)
            while i < end { a += UInt32(bytes[i]); b += a; i += 1 }
            a %= 65521; b %= 65521
        }
        return (b << 16) | a
    }
}
