import Foundation
import Tensors

/// The frame preprocessing of a Hugging Face video processor, read from
/// `video_preprocessor_config.json` (`LlavaOnevisionVideoProcessor`): every frame is resized to
/// `size`, then rescaled and normalised, giving `[frames, 3, H, W]`.
///
/// Frames are the frames given: sampling them from a file (`do_sample_frames`, fps, count) is the
/// decoder's job, not this type's. The arithmetic after the resize is transformers'
/// `rescale_and_normalize` of the torchvision backend: with both steps on, mean and std are divided
/// by the rescale factor once and each value is `(v - mean/r) / (std/r)` in Float32.
///
/// Resize: transformers resizes uint8 frames with torchvision, whose CPU kernel for bicubic is
/// torch's native uint8 antialiased one; its fixed-point weights depend on the CPU (AVX2, AVX512,
/// generic) and differ from Pillow's by about one level on some pixels. This type resizes with
/// Pillow's filter (`PILResize`, the one the image processors use), bit-exact with
/// `PIL.Image.resize`; the parity fixture bounds the gap to torch's result.
public struct VideoPreprocessor: Sendable {
    public enum Kind: String, Sendable { case llavaOnevision }

    public var kind: Kind
    public var doResize: Bool
    /// Output frame size (height, width).
    public var size: PixelSize
    public var resample: ResampleFilter
    public var doRescale: Bool
    public var rescaleFactor: Double
    public var doNormalize: Bool
    public var imageMean: [Double]
    public var imageStd: [Double]
    /// Whether the config asks the processor to sample frames itself (noted by callers; frames given
    /// here are used as they are).
    public var doSampleFrames: Bool

    /// Reads a parsed `video_preprocessor_config.json`; absent keys take the class defaults.
    public init(config: JSONValue) throws {
        guard config.objectValue != nil else { throw ImageError(path: nil, "video preprocessor config must be a JSON object") }
        let type = config["video_processor_type"]?.stringValue ?? "LlavaOnevisionVideoProcessor"
        guard type == "LlavaOnevisionVideoProcessor" else {
            throw ImageError(path: nil, "unsupported video_processor_type '\(type)' (supported: LlavaOnevisionVideoProcessor)")
        }
        kind = .llavaOnevision
        let fields = ProcessorConfigFields(config: config, kind: "video preprocessor config")
        func bool(_ key: String, _ fallback: Bool) throws -> Bool { try fields.bool(key, fallback) }
        func triple(_ key: String, _ fallback: [Double]) throws -> [Double] { try fields.triple(key, fallback) }
        doResize = try bool("do_resize", true)
        doRescale = try bool("do_rescale", true)
        doNormalize = try bool("do_normalize", true)
        doSampleFrames = try bool("do_sample_frames", false)
        if try bool("do_center_crop", false) {
            throw ImageError(path: nil, "video preprocessor config: do_center_crop is not supported for LlavaOnevisionVideoProcessor frames")
        }
        if let r = config["resample"], !r.isNull {
            guard let code = r.intValue, let filter = ResampleFilter(rawValue: code), filter != .nearest else {
                throw ImageError(path: nil, "video preprocessor config 'resample' must be a Pillow filter code 1...5, got \(r)")
            }
            resample = filter
        } else {
            resample = .bicubic
        }
        if let f = config["rescale_factor"], !f.isNull {
            guard let d = f.doubleValue, d > 0 else {
                throw ImageError(path: nil, "video preprocessor config 'rescale_factor' must be a positive number, got \(f)")
            }
            rescaleFactor = d
        } else {
            rescaleFactor = 1.0 / 255.0
        }
        imageMean = try triple("image_mean", ImagePreprocessor.openAIClipMean)
        imageStd = try triple("image_std", ImagePreprocessor.openAIClipStd)
        guard !imageStd.contains(0) else { throw ImageError(path: nil, "video preprocessor config 'image_std' must not contain 0") }
        switch try ImagePreprocessor.parseSize(config["size"], fallback: .exact(PixelSize(height: 384, width: 384))) {
        case .exact(let s): size = s
        case .shortestEdge:
            throw ImageError(path: nil, "video preprocessor config 'size' \(config["size"]!) is not supported (only {height, width})")
        }
    }

    /// Reads `folder/video_preprocessor_config.json`.
    public static func load(folder: String) throws -> VideoPreprocessor {
        let path = URL(fileURLWithPath: folder).appendingPathComponent("video_preprocessor_config.json").path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ImageError(path: path, "no video_preprocessor_config.json")
        }
        do {
            return try VideoPreprocessor(config: try JSONValue.parse(data))
        } catch let e as ImageError {
            throw ImageError(path: path, e.message)
        }
    }

    /// The uint8 frame after the resize (what the rescale and normalisation turn into numbers).
    public func resizedFrame(_ frame: RGBImage) throws -> RGBImage {
        guard doResize else { return frame }
        return try frame.resized(width: size.width, height: size.height, filter: resample)
    }

    /// One frame as `[3, H, W]` Float32.
    public func frameTensor(_ frame: RGBImage) throws -> Tensor {
        let img = try resizedFrame(frame)
        var table = [[Float]](repeating: [Float](repeating: 0, count: 256), count: 3)
        for c in 0..<3 {
            let mean = Float(imageMean[c]), std = Float(imageStd[c])
            for v in 0..<256 {
                let x = Float(v)
                if doNormalize && doRescale {
                    let scale = Float(1.0 / rescaleFactor)
                    table[c][v] = (x - mean * scale) / (std * scale)
                } else if doNormalize {
                    table[c][v] = (x - mean) / std
                } else if doRescale {
                    table[c][v] = x * Float(rescaleFactor)
                } else {
                    table[c][v] = x
                }
            }
        }
        let plane = img.width * img.height
        var t = Tensor(zeros: [3, img.height, img.width])
        img.pixels.withUnsafeBufferPointer { px in
            t.withUnsafeMutableBufferPointer { out in
                for i in 0..<plane {
                    out[i] = table[0][Int(px[3 * i])]
                    out[plane + i] = table[1][Int(px[3 * i + 1])]
                    out[2 * plane + i] = table[2][Int(px[3 * i + 2])]
                }
            }
        }
        return t
    }

    /// All frames, each `[3, H, W]` (what `LlavaVideo` takes).
    public func callAsFunction(_ frames: [RGBImage]) throws -> [Tensor] {
        guard !frames.isEmpty else { throw ImageError(path: nil, "a video needs at least one frame") }
        let first = (frames[0].width, frames[0].height)
        if !doResize, let odd = frames.first(where: { ($0.width, $0.height) != first }) {
            throw ImageError(path: nil, "frames differ in size (\(first.0)x\(first.1) and \(odd.width)x\(odd.height)) and do_resize is false")
        }
        return try frames.map(frameTensor)
    }
}
