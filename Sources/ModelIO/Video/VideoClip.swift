import Foundation

/// The frames of one video a run uses: decoded RGB frames at the indices sampled from the whole
/// video, with where they came from.
public struct VideoClip: Sendable, Equatable {
    public enum Source: String, Sendable { case file, frameFolder }

    /// The sampled frames, in video order.
    public var frames: [RGBImage]
    /// Index of each kept frame in the whole video (or in the folder's sorted frame list).
    public var indices: [Int]
    /// Frames in the whole video (or frame images in the folder).
    public var totalFrames: Int
    public var path: String
    public var source: Source
    /// Frame folder: the file name of each kept frame.
    public var frameNames: [String]

    public init(frames: [RGBImage], indices: [Int], totalFrames: Int, path: String, source: Source, frameNames: [String] = []) {
        self.frames = frames
        self.indices = indices
        self.totalFrames = totalFrames
        self.path = path
        self.source = source
        self.frameNames = frameNames
    }

    /// Reads `path`: a folder of frame images (sorted by name) or a video file decoded with FFmpeg.
    /// `frames` samples that many uniformly (`FrameSampling`); nil keeps every frame.
    public static func load(path: String, frames: Int? = nil, limits: VideoLimits = .standard) throws -> VideoClip {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw VideoError(path: path, "no such file or folder")
        }
        if isDir.boolValue { return try FrameFolder.load(path: path, frames: frames, limits: limits) }
        return try VideoDecoder.load(path: path, frames: frames, limits: limits)
    }
}
