#if canImport(CImageCodecs) && canImport(Glibc)
import CImageCodecs
import Glibc
#endif

/// JPEG decoding with libjpeg(-turbo) using the same settings as PIL (islow IDCT, fancy
/// upsampling, output converted to RGB by libjpeg; gray replicated). A file that ends early is an
/// error, as in PIL (libjpeg itself would only warn and pad the image with gray).
enum JPEGDecoder {
    static let maxPixels = 1 << 28

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
            if state.run.warning == nil { state.run.warning = JPEGReadState.message(common!) }
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
                run.failure = "unsupported image size \(w)x\(h)"; return
            }
            cinfo.pointee.out_color_space = JCS_RGB
            cinfo.pointee.dct_method = JDCT_ISLOW
            cinfo.pointee.do_fancy_upsampling = 1
            guard jpeg_start_decompress(cinfo) != 0 else { run.failure = "libjpeg could not start decoding"; return }
            guard cinfo.pointee.output_components == 3,
                  Int(cinfo.pointee.output_width) == w, Int(cinfo.pointee.output_height) == h else {
                run.failure = "unexpected libjpeg output layout"; return
            }
            width = w
            height = h
            pixels = [UInt8](repeating: 0, count: w * h * 3)
            pixels.withUnsafeMutableBufferPointer { out in
                while cinfo.pointee.output_scanline < cinfo.pointee.output_height {
                    var row: JSAMPROW? = out.baseAddress! + Int(cinfo.pointee.output_scanline) * w * 3
                    if jpeg_read_scanlines(cinfo, &row, 1) != 1 { break }
                }
            }
            _ = jpeg_finish_decompress(cinfo)
        }
    }

    /// Frees libjpeg's memory on the caller's thread once the codec thread has ended.
    func destroy() {
        if created { jpeg_destroy_decompress(cinfo) }
        cinfo.deallocate()
        errorManager.deallocate()
    }
}
#endif
