import Foundation

/// A video given as a folder of frame images (PNG or JPEG), one frame per file, in the order of
/// their names (byte-wise, as Python's `sorted(os.listdir(...))`, so zero-pad the numbers).
///
/// Every frame image is decoded so that a frame of another size is found wherever it sits (the
/// error names it); only the sampled frames are kept.
public enum FrameFolder {
    public static let extensions: Set<String> = ["png", "jpg", "jpeg"]

    /// The frame files of `path`, sorted by name; hidden files and other extensions are skipped.
    public static func frameFiles(path: String) throws -> [String] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            throw VideoError(path: path, "cannot list the frame folder: \(error.localizedDescription)")
        }
        return names.filter { !$0.hasPrefix(".") && extensions.contains(($0 as NSString).pathExtension.lowercased()) }
            .sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }

    public static func load(path: String, frames: Int?, limits: VideoLimits = .standard) throws -> VideoClip {
        let files = try frameFiles(path: path)
        guard !files.isEmpty else {
            throw VideoError(path: path, "the frame folder has no frame images (\(extensions.sorted().joined(separator: ", ")))")
        }
        let indices = try FrameSampling.indices(total: files.count, count: frames, path: path)
        let wanted = Set(indices)
        var kept: [RGBImage] = []
        var size: (width: Int, height: Int, file: String)?
        for (i, name) in files.enumerated() {
            let file = (path as NSString).appendingPathComponent(name)
            let image: RGBImage
            do {
                image = try RGBImage.load(path: file)
            } catch {
                throw VideoError(path: path, "cannot decode frame '\(name)': \(error)")
            }
            if let size {
                guard image.width == size.width, image.height == size.height else {
                    throw VideoError(path: path, "frame '\(name)' is \(image.width)x\(image.height) but '\(size.file)' is \(size.width)x\(size.height): all frames must have one size")
                }
            } else {
                try limits.check(width: image.width, height: image.height, path: path, what: "frame '\(name)'")
                try limits.check(keeping: indices.count, width: image.width, height: image.height, path: path)
                size = (image.width, image.height, name)
            }
            if wanted.contains(i) { kept.append(image) }
        }
        return VideoClip(frames: kept, indices: indices, totalFrames: files.count, path: path, source: .frameFolder,
                         frameNames: indices.map { files[$0] })
    }
}
