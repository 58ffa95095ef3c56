#if canImport(CImageCodecs) && canImport(Glibc)
import CImageCodecs
import Glibc
#endif

/// PNG decoding with libpng, to 8-bit RGB the way PIL's `Image.open(...).convert("RGB")` does:
/// 16-bit samples keep their high byte, palettes are looked up (transparency ignored), 1/2/4-bit
/// gray is scaled to 0...255, gray is replicated and alpha is dropped without compositing.
/// No gamma correction is applied (PIL ignores gAMA/iCCP).
///
/// One PIL quirk is kept on purpose: 16-bit gray without alpha opens as mode "I;16", and
/// `convert("RGB")` clips those values to 255 rather than scaling them; Hugging Face processors
/// see that clipped image, so we produce it too.
enum PNGDecoder {
    /// Refuse images that would need more than this many pixels (a corrupt header is the usual cause).
    static let maxPixels = 1 << 28
    /// The most a deflate stream can expand (258-byte matches coded in 2 bits).
    static let maxDeflateRatio = 1032

    static func decode(_ bytes: [UInt8], path: String?, alpha: AlphaHandling = .drop) throws -> RGBImage {
        #if canImport(CImageCodecs) && canImport(Glibc)
        let state = PNGReadState(bytes)
        state.compositeOnWhite = alpha == .compositeOnWhite
        defer { state.destroy() }
        let run = CodecRun()
        state.run = run
        _ = run.run { state.read() }
        if let failure = run.failure { throw ImageError(path: path, "PNG decoding failed: \(failure)") }
        return try RGBImage(width: state.width, height: state.height, pixels: state.pixels)
        #else
        throw ImageError(path: path, "PNG decoding is not supported on this platform (needs libpng)")
        #endif
    }
}

#if canImport(CImageCodecs) && canImport(Glibc)
/// Everything one decode touches; lives on the caller's side so it survives an abandoned thread.
private final class PNGReadState {
    let input: [UInt8]
    var position = 0
    var run: CodecRun!
    var png: png_structp?
    var info: png_infop?
    var width = 0
    var height = 0
    var pixels: [UInt8] = []
    var compositeOnWhite = false
    var rowBuffer: UnsafeMutableBufferPointer<UInt8>?
    var rowPointers: UnsafeMutableBufferPointer<png_bytep?>?

    init(_ input: [UInt8]) { self.input = input }

    /// Runs on the codec thread: header, transforms, then all rows.
    func read() {
        let me = Unmanaged.passUnretained(self).toOpaque()
        png = png_create_read_struct(PNG_LIBPNG_VER_STRING, me, { png, message in
            let state = Unmanaged<PNGReadState>.fromOpaque(png_get_error_ptr(png)!).takeUnretainedValue()
            CodecRun.abandon(state.run, message.map { String(cString: $0) } ?? "libpng error")
        }, { _, _ in })
        guard let png else { run.failure = "libpng could not allocate its reader"; return }
        info = png_create_info_struct(png)
        guard let info else { run.failure = "libpng could not allocate its info struct"; return }
        png_set_read_fn(png, me) { png, out, length in
            let state = Unmanaged<PNGReadState>.fromOpaque(png_get_io_ptr(png)!).takeUnretainedValue()
            guard state.position + length <= state.input.count else {
                CodecRun.abandon(state.run, "the file is truncated (unexpected end of data)")
            }
            state.input.withUnsafeBufferPointer { src in
                out!.update(from: src.baseAddress! + state.position, count: length)
            }
            state.position += length
        }
        png_read_info(png, info)
        var w: png_uint_32 = 0, h: png_uint_32 = 0
        var depth: Int32 = 0, colorType: Int32 = 0, interlace: Int32 = 0
        png_get_IHDR(png, info, &w, &h, &depth, &colorType, &interlace, nil, nil)
        guard w > 0, h > 0, Int(w) * Int(h) <= PNGDecoder.maxPixels else {
            run.failure = "unsupported image size \(w)x\(h) (at most \(PNGDecoder.maxPixels) pixels)"; return
        }
        // Deflate expands its input at most 1032-fold, so a header whose pixel data could not fit in
        // the bytes left is truncated or lying: refuse it before allocating rows for it. (Minus one byte
        // of padding per row: interlaced passes may pack sub-byte rows tighter than whole rows do.)
        let storedBytes = Int(h) * Int(png_get_rowbytes(png, info))
        let left = input.count - position
        guard storedBytes - Int(h) <= PNGDecoder.maxDeflateRatio * left + 1024 else {
            run.failure = "the header claims \(w)x\(h) pixels (\(storedBytes) bytes of pixel data) but only \(left) bytes follow it; deflate cannot expand them that far (truncated or corrupt file)"
            return
        }
        let clipped16BitGray = depth == 16 && colorType == PNG_COLOR_TYPE_GRAY
        if clipped16BitGray {
            readClipped16BitGray(png, info, width: Int(w), height: Int(h))
            return
        }
        let hasTRNS = png_get_valid(png, info, png_uint_32(PNG_INFO_tRNS)) != 0
        let composite = compositeOnWhite && (colorType & PNG_COLOR_MASK_ALPHA != 0 || hasTRNS)
        if depth == 16 { png_set_strip_16(png) }
        if colorType == PNG_COLOR_TYPE_PALETTE { png_set_palette_to_rgb(png) }
        if composite && hasTRNS { png_set_tRNS_to_alpha(png) }
        if colorType == PNG_COLOR_TYPE_GRAY || colorType == PNG_COLOR_TYPE_GRAY_ALPHA {
            if depth < 8 { png_set_expand_gray_1_2_4_to_8(png) }
            png_set_gray_to_rgb(png)
        }
        // Palette expansion also turns tRNS into alpha, so strip whenever transparency exists.
        if !composite && (colorType & PNG_COLOR_MASK_ALPHA != 0 || hasTRNS) { png_set_strip_alpha(png) }
        _ = png_set_interlace_handling(png)
        png_read_update_info(png, info)
        let rowBytes = Int(png_get_rowbytes(png, info))
        if composite {
            readCompositedOnWhite(png, info, width: Int(w), height: Int(h), rowBytes: rowBytes)
            return
        }
        guard rowBytes == Int(w) * 3 else {
            run.failure = "unexpected row size \(rowBytes) after conversion to RGB (colour type \(colorType), depth \(depth))"
            return
        }
        width = Int(w)
        height = Int(h)
        pixels = Array(readRows(png, rowBytes: rowBytes, height: height))
        releaseRows()
    }

    /// Every row of the (already configured) image, then the end of the stream.
    ///
    /// The rows and their pointers live in buffers this state owns (freed by `destroy()`): libpng
    /// abandons the thread on a truncated or corrupt file, and a Swift array lent to it through
    /// `withUnsafeMutableBufferPointer` would then leak whole (hundreds of MB for a large claimed size).
    private func readRows(_ png: png_structp, rowBytes: Int, height: Int) -> UnsafeMutableBufferPointer<UInt8> {
        let rows = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: rowBytes * height)
        rows.initialize(repeating: 0)
        rowBuffer = rows
        rowPointers = .allocate(capacity: height)
        for y in 0..<height { rowPointers![y] = rows.baseAddress! + y * rowBytes }
        png_read_image(png, rowPointers!.baseAddress)
        png_read_end(png, nil)
        return rows
    }

    /// Frees the rows once their pixels are copied out, so the peak stays near one decoded image.
    private func releaseRows() {
        rowBuffer?.deallocate(); rowBuffer = nil
        rowPointers?.deallocate(); rowPointers = nil
    }

    /// RGBA rows alpha-composited onto opaque white with Pillow's integer `alpha_composite`
    /// (7 fractional bits, divisions by 255 done as two shifts), as transformers'
    /// `convert_to_rgb` does for images that carry transparency.
    private func readCompositedOnWhite(_ png: png_structp, _ info: png_infop, width w: Int, height h: Int, rowBytes: Int) {
        guard rowBytes == w * 4 else { run.failure = "unexpected RGBA row size \(rowBytes)"; return }
        let raw = readRows(png, rowBytes: rowBytes, height: h)
        width = w
        height = h
        pixels = [UInt8](repeating: 255, count: w * h * 3)
        for i in 0..<(w * h) {
            let a = UInt32(raw[4 * i + 3])
            guard a != 0 else { continue }
            for c in 0..<3 {
                let t = 128 * (UInt32(raw[4 * i + c]) * a + 255 * (255 - a)) + (0x80 << 7)
                pixels[3 * i + c] = UInt8((((t >> 8) + t) >> 8) >> 7)
            }
        }
        releaseRows()
    }

    /// 16-bit gray the way PIL's "I;16" to "RGB" conversion sees it: min(value, 255), replicated.
    private func readClipped16BitGray(_ png: png_structp, _ info: png_infop, width w: Int, height h: Int) {
        _ = png_set_interlace_handling(png)
        png_read_update_info(png, info)
        let rowBytes = Int(png_get_rowbytes(png, info))
        guard rowBytes == w * 2 else { run.failure = "unexpected 16-bit gray row size \(rowBytes)"; return }
        let raw = readRows(png, rowBytes: rowBytes, height: h)
        width = w
        height = h
        pixels = [UInt8](repeating: 0, count: w * h * 3)
        for i in 0..<(w * h) {
            let v = raw[2 * i] != 0 ? 255 : raw[2 * i + 1]
            pixels[3 * i] = v; pixels[3 * i + 1] = v; pixels[3 * i + 2] = v
        }
        releaseRows()
    }

    /// Frees libpng's structs (on the caller's thread, after the codec thread has ended).
    func destroy() {
        if png != nil { png_destroy_read_struct(&png, &info, nil) }
        rowBuffer?.deallocate()
        rowPointers?.deallocate()
    }
}
#endif
