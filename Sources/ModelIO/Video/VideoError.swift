import Foundation

/// A video (file or frame folder) that cannot be read, decoded or sampled as asked; names the path.
public struct VideoError: Error, CustomStringConvertible, Equatable {
    public let path: String?
    public let message: String
    public init(path: String?, _ message: String) {
        self.path = path
        self.message = message
    }
    public var description: String {
        if let path { return "video \(path): \(message)" }
        return "video: \(message)"
    }
}

/// Bounds a video must stay within before anything large is allocated, so that a file declaring
/// absurd dimensions (or a request for too many frames) is refused with its numbers instead of
/// exhausting memory.
public struct VideoLimits: Sendable, Equatable {
    /// Largest width or height of one frame.
    public var maxSide: Int
    /// Largest pixel count of one frame (an 8K UHD frame is 33.2 M).
    public var maxPixelsPerFrame: Int
    /// Largest RGB bytes of all the frames kept together (sampled frames × width × height × 3).
    public var maxKeptBytes: Int

    public init(maxSide: Int = 16_384, maxPixelsPerFrame: Int = 40_000_000, maxKeptBytes: Int = 4 << 30) {
        self.maxSide = maxSide
        self.maxPixelsPerFrame = maxPixelsPerFrame
        self.maxKeptBytes = maxKeptBytes
    }

    public static let standard = VideoLimits()

    /// Refuses a frame size outside the bounds (`what` names the frame in the message).
    func check(width: Int, height: Int, path: String?, what: String) throws {
        guard width > 0, height > 0 else {
            throw VideoError(path: path, "\(what) declares a \(width)x\(height) frame size (no usable dimensions)")
        }
        guard width <= maxSide, height <= maxSide, width.multipliedReportingOverflow(by: height).partialValue <= maxPixelsPerFrame else {
            throw VideoError(path: path, "\(what) declares \(width)x\(height) frames, larger than the limit (\(maxSide) px a side, \(maxPixelsPerFrame) pixels a frame)")
        }
    }

    /// Refuses keeping `count` RGB frames of `width`×`height` when they would pass `maxKeptBytes`.
    func check(keeping count: Int, width: Int, height: Int, path: String?) throws {
        let bytes = count.multipliedReportingOverflow(by: width * height * 3)
        guard !bytes.overflow, bytes.partialValue <= maxKeptBytes else {
            throw VideoError(path: path, "keeping \(count) RGB frames of \(width)x\(height) needs more than the \(maxKeptBytes >> 20) MiB limit: sample fewer frames (--frames N)")
        }
    }
}
