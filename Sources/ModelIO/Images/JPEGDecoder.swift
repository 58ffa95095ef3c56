#if canImport(CImageCodecs) && canImport(Glibc)
import CImageCodecs
import Glibc
#endif

/// JPEG decoding with libjpeg(-turbo) using the same settings as PIL (islow IDCT, fancy
/// upsampling, output converted to RGB by libjpeg; gray replicated). A file that ends early is an
/// error, as in PIL (libjpeg itself would only warn and pad the image with gray).
enum JPEGDecoder {
    static let maxPixels = 1 << 28
    /// libjpeg's working memory cap (a progressive file at the pixel cap needs about 1.6 GB of coefficients).
    static let maxCodecMemory = 1 << 30
    /// Rows are decoded into strips of about this many bytes.
    static let stripBytes = 1 << 22

    static func decode(_ bytes: [UInt8], path: String?) throws -> RGBImage {
        #if canImport(CImageCodecs) && canImport(Glibc)
        let state = JPEGReadState(bytes)
        defer { state.destroy() }
        let run = CodecRun()
        state.run = run
        _ = run.run { state.read() }
        if let failure = run.failure { throw ImageError(path: path, "JPEG decoding failed: \(failure)") }
        if let warning = run.warning, warning.contains("Premature end") {
            throw ImageError(path: path, "the JPEG file is truncated (\(warning))")
        }
        return try RGBImage(width: state.width, height: state.height, pixels: state.pixels)
        #else
        throw ImageError(path: path, "JPEG decoding is not supported on this platform (needs libjpeg)")
        #endif
    }
}

#if canImport(CImageCodecs) && canImport(Glibc)
private final class JPEGReadState {
    let input: [UInt8]
    var run: CodecRun!
    let cinfo = UnsafeMutablePointer<jpeg_decompress_struct>.allocate(capacity: 1)
    let errorManager = UnsafeMutablePointer<jpeg_error_mgr>.allocate(capacity: 1)
    var created = false
    var width = 0
    var height = 0
    var pixels: [UInt8] = []
    var strips: [UnsafeMutableBufferPointer<UInt8>] = []

    init(_ input: [UInt8]) {
        self.input = input
        cinfo.initialize(to: jpeg_decompress_struct())
        errorManager.initialize(to: jpeg_error_mgr())
    }

    /// libjpeg's message text for the error or warning it just raised.
    static func message(_ common: j_common_ptr) -> String {
        var buffer = [CChar](repeating: 0, count: Int(JMSG_LENGTH_MAX) + 1)
        common.pointee.err.pointee.format_message(common, &buffer)
        return String(cString: buffer)
    }

    /// Runs on the codec thread.
    func read() {
        cinfo.pointee.err = jpeg_std_error(errorManager)
        errorManager.pointee.error_exit = { common in
            let state = Unmanaged<JPEGReadState>.fromOpaque(common!.pointee.client_data!).takeUnretainedValue()
            CodecRun.abandon(state.run, JPEGReadState.message(common!))
        }
        errorManager.pointee.emit_message = { common, level in
            guard level < 0 else { return }  // trace messages
            let state = Unmanaged<JPEGReadState>.fromOpaque(common!.pointee.client_data!).takeUnretainedValue()
            common!.pointee.err.pointee.num_warnings += 1
            let message = JPEGReadState.message(common!)
            if state.run.warning == nil { state.run.warning = message }
            // The data ran out: libjpeg would pad the rest of the image with gray, which `decode` refuses
            // anyway, so stop now instead of decoding (and touching memory for) rows that are not there.
            if message.hasPrefix("Premature end of JPEG file") {
                CodecRun.abandon(state.run, "the JPEG file is truncated (\(message))")
            }
        }
        errorManager.pointee.output_message = { _ in }
        jpeg_CreateDecompress(cinfo, JPEG_LIB_VERSION, MemoryLayout<jpeg_decompress_struct>.size)
        created = true
        cinfo.pointee.client_data = Unmanaged.passUnretained(self).toOpaque()
        input.withUnsafeBufferPointer { src in
            jpeg_mem_src(cinfo, src.baseAddress, UInt(src.count))
            guard jpeg_read_header(cinfo, 1) == JPEG_HEADER_OK else {
                run.failure = "no image in the JPEG stream"; return
            }
            let space = cinfo.pointee.jpeg_color_space
            guard space == JCS_GRAYSCALE || space == JCS_YCbCr || space == JCS_RGB else {
                run.failure = "unsupported JPEG colour space \(space.rawValue) (CMYK/YCCK are not supported)"
                return
            }
            let w = Int(cinfo.pointee.image_width), h = Int(cinfo.pointee.image_height)
            guard w > 0, h > 0, w * h <= JPEGDecoder.maxPixels else {
                run.failure = "unsupported image size \(w)x\(h) (at most \(JPEGDecoder.maxPixels) pixels)"; return
            }
            // libjpeg's own working memory (whole-image coefficient buffers of progressive files) is
            // capped too; past it libjpeg fails cleanly, as it has no backing store on Linux.
            cinfo.pointee.mem.pointee.max_memory_to_use = JPEGDecoder.maxCodecMemory
            cinfo.pointee.out_color_space = JCS_RGB
            cinfo.pointee.dct_method = JDCT_ISLOW
            cinfo.pointee.do_fancy_upsampling = 1
            guard jpeg_start_decompress(cinfo) != 0 else { run.failure = "libjpeg could not start decoding"; return }
            guard cinfo.pointee.output_components == 3,
                  Int(cinfo.pointee.output_width) == w, Int(cinfo.pointee.output_height) == h else {
                run.failure = "unexpected libjpeg output layout"; return
            }
            // Rows go to strips of about 4 MB that this state owns (freed by `destroy()`): a fatal libjpeg
            // error abandons this thread, and a Swift array lent to libjpeg through
            // `withUnsafeMutableBufferPointer` would leak whole. A file that ends early stops at its end
            // (see `emit_message`), so it costs the strips decoded so far, not the size its header claims.
            let rowBytes = w * 3
            let stripRows = max(1, JPEGDecoder.stripBytes / rowBytes)
            var stripStart = 0
            while cinfo.pointee.output_scanline < cinfo.pointee.output_height {
                let y = Int(cinfo.pointee.output_scanline)
                if strips.isEmpty || y - stripStart == strips[strips.count - 1].count / rowBytes {
                    let strip = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: min(stripRows, h - y) * rowBytes)
                    strip.initialize(repeating: 0)
                    strips.append(strip)
                    stripStart = y
                }
                var row: JSAMPROW? = strips[strips.count - 1].baseAddress! + (y - stripStart) * rowBytes
                if jpeg_read_scanlines(cinfo, &row, 1) != 1 { break }
            }
            _ = jpeg_finish_decompress(cinfo)
            width = w
            height = h
            // Strips freed as they are copied: the peak stays about one image.
            let total = w * h * 3
            pixels = [UInt8](unsafeUninitializedCapacity: total) { buffer, count in
                var offset = 0
                for strip in strips {
                    _ = UnsafeMutableBufferPointer(rebasing: buffer[offset..<(offset + strip.count)]).initialize(from: strip)
                    offset += strip.count
                    strip.deallocate()
                }
                strips = []
                // Rows libjpeg never wrote (it stopped early without an error) stay black.
                buffer[offset...].initialize(repeating: 0)
                count = total
            }
        }
    }

    /// Frees libjpeg's memory on the caller's thread once the codec thread has ended.
    func destroy() {
        if created { jpeg_destroy_decompress(cinfo) }
        for strip in strips { strip.deallocate() }
        cinfo.deallocate()
        errorManager.deallocate()
    }
}
#endif
