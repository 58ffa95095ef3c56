import Foundation
#if canImport(CFFmpeg)
import CFFmpeg
#endif

/// Decodes a video file (MP4, WebM, MKV, AVI, GIF: any container and codec the system's FFmpeg
/// reads) into RGB frames with FFmpeg's libraries.
///
/// Frames are counted first by demuxing the video stream's packets (no decoding), the indices are
/// sampled from that count, and then the stream is decoded once, converting only the sampled
/// frames to RGB. Should the decoder put out a different number of frames than there were packets
/// (a codec that drops or packs frames), the decoded count is the truth: sampling is redone over
/// it and the stream decoded again.
///
/// RGB conversion is libswscale's (bicubic, accurate rounding, full chroma interpolation) with the
/// stream's own colour matrix and range (BT.601 limited range when unspecified), as the ffmpeg
/// command line converts to `rgb24` with the same flags. The declared frame size is checked
/// against `VideoLimits` before the decoder opens.
public enum VideoDecoder {
    /// Frames in the file's best video stream (by decoding it).
    public static func frameCount(path: String, limits: VideoLimits = .standard) throws -> Int {
        #if canImport(CFFmpeg)
        let stream = try OpenVideoStream(path: path, limits: limits)
        return try stream.decode(convert: []).total
        #else
        throw VideoError(path: path, "decoding video files needs FFmpeg's libraries (a Linux build with libavformat); use a folder of frame images instead")
        #endif
    }

    public static func load(path: String, frames: Int?, limits: VideoLimits = .standard) throws -> VideoClip {
        #if canImport(CFFmpeg)
        let packets = try OpenVideoStream(path: path, limits: limits).countPackets()
        guard packets > 0 else { throw VideoError(path: path, "the video stream has no frames") }
        var total = packets
        for _ in 0..<2 {
            let indices = try FrameSampling.indices(total: total, count: frames, path: path)
            let stream = try OpenVideoStream(path: path, limits: limits)
            try limits.check(keeping: indices.count, width: stream.width, height: stream.height, path: path)
            let decoded = try stream.decode(convert: indices)
            guard decoded.total > 0 else { throw VideoError(path: path, "no frame could be decoded\(decoded.firstError.map { " (\($0))" } ?? "")") }
            if decoded.total == total {
                return VideoClip(frames: decoded.frames, indices: indices, totalFrames: total, path: path, source: .file)
            }
            total = decoded.total
        }
        throw VideoError(path: path, "the decoder gave a different number of frames on each pass (\(total) last time)")
        #else
        throw VideoError(path: path, "decoding video files needs FFmpeg's libraries (a Linux build with libavformat); use a folder of frame images instead")
        #endif
    }
}

#if canImport(CFFmpeg)
/// FFmpeg's message for an error code.
func ffmpegMessage(_ code: Int32) -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    if av_strerror(code, &buffer, buffer.count) < 0 { return "FFmpeg error \(code)" }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// One opened file with its best video stream and an opened decoder; everything is freed on deinit.
final class OpenVideoStream {
    let path: String
    var format: UnsafeMutablePointer<AVFormatContext>?
    var codec: UnsafeMutablePointer<AVCodecContext>?
    // Every stored property has a value before the first `throw`, so a failed init still runs
    // deinit and frees what it opened.
    private(set) var streamIndex: Int32 = -1
    private(set) var width = 0, height = 0
    let limits: VideoLimits

    init(path: String, limits: VideoLimits) throws {
        // FFmpeg prints its own diagnostics to stderr; errors here carry the message instead.
        av_log_set_level(AV_LOG_QUIET)
        self.path = path
        self.limits = limits
        var rc = avformat_open_input(&format, path, nil, nil)
        guard rc >= 0, let format else {
            throw VideoError(path: path, "cannot open the video file: \(ffmpegMessage(rc))")
        }
        rc = avformat_find_stream_info(format, nil)
        guard rc >= 0 else { throw VideoError(path: path, "cannot read the stream information: \(ffmpegMessage(rc))") }
        var decoder: UnsafePointer<AVCodec>?
        rc = av_find_best_stream(format, AVMEDIA_TYPE_VIDEO, -1, -1, &decoder, 0)
        guard rc >= 0 else {
            throw VideoError(path: path, rc == cffmpeg_error_decoder_not_found()
                ? "its video stream's codec has no decoder in this FFmpeg"
                : "the file has no video stream (\(ffmpegMessage(rc)))")
        }
        streamIndex = rc
        guard let decoder, let parameters = format.pointee.streams[Int(rc)]?.pointee.codecpar else {
            throw VideoError(path: path, "its video stream's codec has no decoder in this FFmpeg")
        }
        width = Int(parameters.pointee.width)
        height = Int(parameters.pointee.height)
        try limits.check(width: width, height: height, path: path, what: "the video stream")
        codec = avcodec_alloc_context3(decoder)
        guard let codec else { throw VideoError(path: path, "cannot allocate a decoder") }
        rc = avcodec_parameters_to_context(codec, parameters)
        guard rc >= 0 else { throw VideoError(path: path, "cannot configure the decoder: \(ffmpegMessage(rc))") }
        rc = avcodec_open2(codec, decoder, nil)
        guard rc >= 0 else { throw VideoError(path: path, "cannot open the \(String(cString: decoder.pointee.name)) decoder: \(ffmpegMessage(rc))") }
    }

    deinit {
        avcodec_free_context(&codec)
        avformat_close_input(&format)
    }

    /// Packets of the video stream up to the end or the first read error (demuxing only).
    func countPackets() throws -> Int {
        var packet = av_packet_alloc()
        defer { av_packet_free(&packet) }
        guard let packet else { throw VideoError(path: path, "cannot allocate a packet") }
        var count = 0
        while true {
            let rc = av_read_frame(format, packet)
            // A read error ends the stream here as it ends decoding (a damaged tail loses its frames).
            if rc < 0 { break }
            if packet.pointee.stream_index == streamIndex { count += 1 }
            av_packet_unref(packet)
        }
        return count
    }

    /// Decodes the whole stream; frames whose index is in `convert` are converted to RGB.
    /// `firstError`: the first decoding error met (decoding goes on past damaged packets, as the
    /// ffmpeg command line does).
    func decode(convert: [Int]) throws -> (frames: [RGBImage], total: Int, firstError: String?) {
        var packet = av_packet_alloc(), frame = av_frame_alloc()
        defer { av_packet_free(&packet); av_frame_free(&frame) }
        guard let packet, let frame else { throw VideoError(path: path, "cannot allocate a frame") }
        let wanted = Set(convert)
        var out: [RGBImage] = []
        var total = 0
        var firstError: String?
        var converter = RGBConverter(path: path)

        func drain() throws {
            while true {
                let rc = avcodec_receive_frame(codec, frame)
                if rc == cffmpeg_error_eagain() || rc == cffmpeg_error_eof() { return }
                guard rc >= 0 else {
                    if firstError == nil { firstError = "frame \(total): \(ffmpegMessage(rc))" }
                    return
                }
                if wanted.contains(total) {
                    try limits.check(width: Int(frame.pointee.width), height: Int(frame.pointee.height), path: path, what: "frame \(total)")
                    out.append(try converter.rgb(frame))
                }
                total += 1
                av_frame_unref(frame)
            }
        }
        while true {
            let rc = av_read_frame(format, packet)
            if rc == cffmpeg_error_eof() { break }
            guard rc >= 0 else {
                if firstError == nil { firstError = "reading after \(total) frames: \(ffmpegMessage(rc))" }
                break
            }
            if packet.pointee.stream_index == streamIndex {
                let sent = avcodec_send_packet(codec, packet)
                if sent < 0, sent != cffmpeg_error_eagain(), firstError == nil { firstError = "frame \(total): \(ffmpegMessage(sent))" }
                try drain()
            }
            av_packet_unref(packet)
        }
        avcodec_send_packet(codec, nil)
        try drain()
        return (out, total, firstError)
    }
}

/// Converts decoded frames of any pixel format to packed RGB with libswscale, keeping one
/// conversion context while the frames' size, format and colour description stay the same.
struct RGBConverter {
    let path: String
    var context: OpaquePointer?
    var key: [Int32] = []

    init(path: String) { self.path = path }

    mutating func rgb(_ frame: UnsafeMutablePointer<AVFrame>) throws -> RGBImage {
        let w = frame.pointee.width, h = frame.pointee.height
        let f = frame.pointee
        let k = [w, h, f.format, Int32(f.colorspace.rawValue), Int32(f.color_range.rawValue)]
        if k != key {
            sws_freeContext(context)
            let flags = Int32(SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT)
            context = sws_getContext(w, h, AVPixelFormat(f.format), w, h, AV_PIX_FMT_RGB24, flags, nil, nil, nil)
            guard let context else {
                let name = av_get_pix_fmt_name(AVPixelFormat(f.format)).map { String(cString: $0) } ?? "\(f.format)"
                throw VideoError(path: path, "cannot convert \(name) frames of \(w)x\(h) to RGB")
            }
            // The stream's colour matrix and range (swscale's defaults are BT.601, limited range).
            let fullRange: Int32 = f.color_range == AVCOL_RANGE_JPEG ? 1 : 0
            let matrix = sws_getCoefficients(Int32(f.colorspace.rawValue))
            sws_setColorspaceDetails(context, matrix, fullRange, sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16)
            key = k
        }
        var rgbFrame = av_frame_alloc()
        defer { av_frame_free(&rgbFrame) }
        guard let rgbFrame else { throw VideoError(path: path, "cannot allocate a frame") }
        rgbFrame.pointee.width = w
        rgbFrame.pointee.height = h
        rgbFrame.pointee.format = AV_PIX_FMT_RGB24.rawValue
        var rc = av_frame_get_buffer(rgbFrame, 0)
        guard rc >= 0 else { throw VideoError(path: path, "cannot allocate a \(w)x\(h) RGB frame: \(ffmpegMessage(rc))") }
        rc = sws_scale_frame(context, rgbFrame, frame)
        guard rc >= 0 else { throw VideoError(path: path, "cannot convert a frame to RGB: \(ffmpegMessage(rc))") }
        let width = Int(w), height = Int(h), stride = Int(rgbFrame.pointee.linesize.0)
        guard let base = rgbFrame.pointee.data.0 else { throw VideoError(path: path, "RGB conversion gave no pixels") }
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        pixels.withUnsafeMutableBufferPointer { dst in
            for y in 0..<height {
                memcpy(dst.baseAddress! + y * width * 3, base + y * stride, width * 3)
            }
        }
        return try RGBImage(width: width, height: height, pixels: pixels)
    }
}
#endif
