import Foundation
import Testing
@testable import ModelIO

/// The committed video fixtures (tools/fixtures/make_video_fixtures.py).
let videoFixtureDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/videos").path

func videoFixture(_ name: String) -> String { videoFixtureDirectory + "/" + name }

/// Frame `i` of a U8 `[frames, H, W, 3]` reference tensor as bytes.
func videoReferenceFrame(_ name: String, _ i: Int) throws -> [UInt8] {
    let file = try SafetensorsFile(path: videoFixture("reference.safetensors"))
    let info = try file.info(name)
    #expect(info.dtype == .U8 && info.shape.count == 4 && info.shape[3] == 3)
    let per = info.shape[1] * info.shape[2] * 3
    return Array(try file.rawBytes(name)[(i * per)..<((i + 1) * per)])
}

func videoMaxDifference(_ a: [UInt8], _ b: [UInt8]) -> Int {
    zip(a, b).reduce(0) { max($0, abs(Int($1.0) - Int($1.1))) }
}

/// A fresh temporary folder.
func videoTemporaryFolder() throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tokc-video-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

/// Expects `body` to throw a VideoError naming `path` whose text contains `fragment`.
func videoExpectError(_ path: String, _ fragment: String, _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected an error for \(path)")
    } catch let error as VideoError {
        #expect(error.path == path)
        #expect(error.description.contains(fragment), "\(error)")
    } catch {
        Issue.record("unexpected error type \(error)")
    }
}

@Suite struct VideoDecodeTests {
    /// Every container and codec of the fixtures decodes to the ffmpeg command line's rgb24 frames
    /// (same libswscale flags). The decoders are bit-exact; up to 3 levels are allowed for another
    /// FFmpeg build's YUV→RGB rounding.
    @Test(arguments: ["mp4", "mkv", "avi", "webm"])
    func decodesLikeTheFFmpegCommandLine(_ ext: String) throws {
        let clip = try VideoClip.load(path: videoFixture("clip.\(ext)"))
        #expect(clip.source == .file && clip.totalFrames == 6 && clip.indices == Array(0..<6))
        #expect(clip.frames.count == 6 && clip.frames.allSatisfy { $0.width == 32 && $0.height == 24 })
        for (i, frame) in clip.frames.enumerated() {
            let d = videoMaxDifference(frame.pixels, try videoReferenceFrame(ext, i))
            #expect(d <= 3, "\(ext) frame \(i) differs from ffmpeg's rgb24 by \(d)")
        }
        // Not a copy of one frame: consecutive frames differ (the square moves), as in the source.
        #expect(clip.frames[0].pixels != clip.frames[5].pixels)
        #expect(try VideoDecoder.frameCount(path: videoFixture("clip.\(ext)")) == 6)
    }

    /// GIF is lossless: the decoded frames are exactly the palette colours Pillow wrote.
    @Test func gifDecodesExactly() throws {
        let clip = try VideoClip.load(path: videoFixture("clip.gif"))
        #expect(clip.totalFrames == 6 && clip.frames.count == 6)
        for (i, frame) in clip.frames.enumerated() {
            #expect(frame.pixels == (try videoReferenceFrame("gif", i)), "GIF frame \(i)")
        }
    }

    /// Sampling keeps the frames at the sampled display indices (the MP4 has B-frames, so decode
    /// order is not display order).
    @Test(arguments: ["mp4", "gif"])
    func sampledFramesAreTheFramesAtTheirIndices(_ ext: String) throws {
        let all = try VideoClip.load(path: videoFixture("clip.\(ext)"))
        for n in [1, 2, 4, 5] {
            let clip = try VideoClip.load(path: videoFixture("clip.\(ext)"), frames: n)
            #expect(clip.indices == (try FrameSampling.indices(total: 6, count: n)))
            #expect(clip.totalFrames == 6)
            #expect(clip.frames == clip.indices.map { all.frames[$0] })
        }
    }

    @Test func frameFolderReadsImagesInNameOrder() throws {
        let clip = try VideoClip.load(path: videoFixture("frames"))
        #expect(clip.source == .frameFolder && clip.totalFrames == 6)
        #expect(clip.frameNames == (0..<6).map { String(format: "frame_%02d.png", $0) }, "notes.txt is skipped")
        for (i, frame) in clip.frames.enumerated() {
            #expect(frame.pixels == (try videoReferenceFrame("source", i)))
        }
        let sampled = try VideoClip.load(path: videoFixture("frames"), frames: 3)
        #expect(sampled.indices == [0, 2, 5] && sampled.frameNames == ["frame_00.png", "frame_02.png", "frame_05.png"])
        #expect(sampled.frames == [clip.frames[0], clip.frames[2], clip.frames[5]])
        // Name order is byte order: "10" sorts before "9" unless padded.
        let dir = try videoTemporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (name, i) in [("b9.png", 0), ("b10.png", 1), ("a.png", 2)] {
            try clip.frames[i].writePNG(path: dir + "/" + name)
        }
        let ordered = try VideoClip.load(path: dir)
        #expect(ordered.frameNames == ["a.png", "b10.png", "b9.png"])
        #expect(ordered.frames == [clip.frames[2], clip.frames[1], clip.frames[0]])
    }

    @Test func badFilesAreClearErrors() throws {
        let dir = try videoTemporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let missing = dir + "/missing.mp4"
        videoExpectError(missing, "no such file") { _ = try VideoClip.load(path: missing) }
        let garbage = dir + "/garbage.mp4"
        try Data("not a video at all".utf8).write(to: URL(fileURLWithPath: garbage))
        videoExpectError(garbage, "cannot open the video file") { _ = try VideoClip.load(path: garbage) }
        let empty = dir + "/empty.webm"
        try Data().write(to: URL(fileURLWithPath: empty))
        videoExpectError(empty, "cannot open") { _ = try VideoClip.load(path: empty) }
        // Container intact, every frame's data overwritten: nothing decodes.
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: videoFixture("clip.mp4"))))
        for i in 300..<1800 { bytes[i] = UInt8(truncatingIfNeeded: i &* 37) }
        let corrupt = dir + "/corrupt.mp4"
        try Data(bytes).write(to: URL(fileURLWithPath: corrupt))
        videoExpectError(corrupt, "no frame could be decoded") { _ = try VideoClip.load(path: corrupt) }
        // A GIF whose screen claims 65535x65535: refused before any frame buffer is made.
        var gif = Array("GIF89a".utf8) + [0xFF, 0xFF, 0xFF, 0xFF, 0x80, 0, 0, 0, 0, 0, 255, 255, 255]
        gif += [0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3B]
        let huge = dir + "/huge.gif"
        try Data(gif).write(to: URL(fileURLWithPath: huge))
        videoExpectError(huge, "frame size") { _ = try VideoClip.load(path: huge) }
        // FFmpeg opens a single PNG file as a one-frame video.
        let png = videoFixture("frames/frame_03.png")
        let one = try VideoClip.load(path: png)
        let source = try videoReferenceFrame("source", 3)
        #expect(one.totalFrames == 1 && one.frames[0].pixels == source)
        videoExpectError(png, "asked for 2 frames but the video has only 1") { _ = try VideoClip.load(path: png, frames: 2) }
    }

    @Test func frameCountsOutsideTheVideoAreErrors() throws {
        let mp4 = videoFixture("clip.mp4")
        videoExpectError(mp4, "asked for 7 frames but the video has only 6") { _ = try VideoClip.load(path: mp4, frames: 7) }
        videoExpectError(mp4, "at least 1") { _ = try VideoClip.load(path: mp4, frames: 0) }
        let folder = videoFixture("frames")
        videoExpectError(folder, "asked for 9 frames but the video has only 6") { _ = try VideoClip.load(path: folder, frames: 9) }
        #expect(try VideoClip.load(path: folder, frames: 6).indices == Array(0..<6), "exactly N frames: all of them")
    }

    @Test func badFrameFoldersAreClearErrors() throws {
        let dir = try videoTemporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        videoExpectError(dir, "has no frame images") { _ = try VideoClip.load(path: dir) }
        try Data("text".utf8).write(to: URL(fileURLWithPath: dir + "/readme.txt"))
        videoExpectError(dir, "has no frame images") { _ = try VideoClip.load(path: dir) }
        let frame = try VideoClip.load(path: videoFixture("frames"), frames: 1).frames[0]
        try frame.writePNG(path: dir + "/f0.png")
        try RGBImage(width: 10, height: 10, fill: (1, 2, 3)).writePNG(path: dir + "/f1.png")
        try frame.writePNG(path: dir + "/f2.png")
        videoExpectError(dir, "frame 'f1.png' is 10x10 but 'f0.png' is 32x24") { _ = try VideoClip.load(path: dir) }
        // The mismatch is found even when the odd frame is not sampled.
        videoExpectError(dir, "'f1.png'") { _ = try VideoClip.load(path: dir, frames: 2) }
        try Data("not a png".utf8).write(to: URL(fileURLWithPath: dir + "/f1.png"))
        videoExpectError(dir, "cannot decode frame 'f1.png'") { _ = try VideoClip.load(path: dir) }
    }

    /// Declared sizes and kept bytes beyond the limits are refused before frames are decoded.
    @Test func limitsBoundMemory() throws {
        let mp4 = videoFixture("clip.mp4")
        videoExpectError(mp4, "larger than the limit") { _ = try VideoClip.load(path: mp4, limits: VideoLimits(maxSide: 16)) }
        videoExpectError(mp4, "larger than the limit") { _ = try VideoClip.load(path: mp4, limits: VideoLimits(maxPixelsPerFrame: 700)) }
        let small = VideoLimits(maxKeptBytes: 3 * 32 * 24 * 3)
        videoExpectError(mp4, "sample fewer frames") { _ = try VideoClip.load(path: mp4, limits: small) }
        #expect(try VideoClip.load(path: mp4, frames: 3, limits: small).frames.count == 3)
        let folder = videoFixture("frames")
        videoExpectError(folder, "larger than the limit") { _ = try VideoClip.load(path: folder, limits: VideoLimits(maxSide: 16)) }
        videoExpectError(folder, "sample fewer frames") { _ = try VideoClip.load(path: folder, limits: small) }
    }
}
