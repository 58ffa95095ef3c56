import Foundation
import Tensors

/// The image preprocessing of a Hugging Face checkpoint, read from preprocessor_config.json and
/// reproducing the PIL-backed processors bit for bit (resize with Pillow's filters, transformers'
/// centre crop, float64 rescale cast to float32, float32 normalisation).
///
/// Kinds: CLIP (`CLIPImageProcessor`: shortest-edge resize, centre crop), SigLIP (fixed-size
/// resize, no crop, mean/std 0.5), LLaVA (`LlavaImageProcessor`: CLIP plus optional pad to
/// square), LLaVA-NeXT (`LlavaNextImageProcessor`: AnyRes tiles plus thumbnail) and LLaVA-OneVision
/// (`LlavaOnevisionImageProcessor`: the same AnyRes tiling at a fixed `size`, no crop; tiles of
/// `size`; several images in one prompt are padded to a square instead, see `onevisionSingleTile`),
/// ViT (`ViTImageProcessor`: square resize, bilinear, mean/std 0.5, no crop) and DeiT
/// (`DeiTImageProcessor`: square resize to 256, bicubic, centre crop 224). The older
/// `feature_extractor_type` names (`ViTFeatureExtractor`, …) are read as their processors.
/// Keys missing from the config take the processor class's defaults, as in transformers.
public struct ImagePreprocessor: Sendable {
    public enum Kind: String, Sendable { case clip, siglip, llava, llavaNext, llavaOnevision, vit, deit }

    /// How `size` is interpreted.
    public enum Size: Hashable, Sendable {
        case shortestEdge(Int)
        case exact(PixelSize)
    }

    public var kind: Kind
    public var doResize: Bool
    public var size: Size
    public var resample: ResampleFilter
    public var doCenterCrop: Bool
    public var cropSize: PixelSize
    public var doRescale: Bool
    public var rescaleFactor: Double
    public var doNormalize: Bool
    public var imageMean: [Double]
    public var imageStd: [Double]
    /// LLaVA-1.5's `expand2square` before everything else (background = int(mean·255)).
    public var padToSquare: Bool
    /// LLaVA-NeXT's candidate resolutions, (height, width).
    public var gridPinpoints: [PixelSize]

    public static let openAIClipMean = [0.48145466, 0.4578275, 0.40821073]
    public static let openAIClipStd = [0.26862954, 0.26130258, 0.27577711]
    public static let defaultPinpoints = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
        .map { PixelSize(height: $0[0], width: $0[1]) }

    /// - Parameter defaultType: the processor class when the config names none (an image classifier's
    ///   folder: `ViTImageProcessor`).
    public init(config: JSONValue, defaultType: String = "CLIPImageProcessor") throws {
        guard config.objectValue != nil else { throw ImageError(path: nil, "preprocessor config must be a JSON object") }
        var type = config["image_processor_type"]?.stringValue ?? defaultType
        if config["image_processor_type"]?.stringValue == nil, let legacy = config["feature_extractor_type"]?.stringValue,
           legacy.hasSuffix("FeatureExtractor") {
            type = String(legacy.dropLast("FeatureExtractor".count)) + "ImageProcessor"
        }
        let base = type.hasSuffix("Fast") ? String(type.dropLast(4)) : (type.hasSuffix("Pil") ? String(type.dropLast(3)) : type)
        switch base {
        case "CLIPImageProcessor": kind = .clip
        case "SiglipImageProcessor": kind = .siglip
        case "LlavaImageProcessor": kind = .llava
        case "LlavaNextImageProcessor": kind = .llavaNext
        case "LlavaOnevisionImageProcessor": kind = .llavaOnevision
        case "ViTImageProcessor": kind = .vit
        case "DeiTImageProcessor": kind = .deit
        default:
            throw ImageError(path: nil, "unsupported image_processor_type '\(type)' (supported: CLIPImageProcessor, SiglipImageProcessor, LlavaImageProcessor, LlavaNextImageProcessor, LlavaOnevisionImageProcessor, ViTImageProcessor, DeiTImageProcessor)")
        }
        let isSiglip = kind == .siglip
        let isOnevision = kind == .llavaOnevision
        // ViT and DeiT: IMAGENET_STANDARD mean/std (0.5) and square sizes (`default_to_square`).
        let isClassifier = kind == .vit || kind == .deit

        let fields = ProcessorConfigFields(config: config, kind: "preprocessor config")
        func bool(_ key: String, _ fallback: Bool) throws -> Bool { try fields.bool(key, fallback) }
        func triple(_ key: String, _ fallback: [Double]) throws -> [Double] { try fields.triple(key, fallback) }

        doResize = try bool("do_resize", true)
        doCenterCrop = try bool("do_center_crop", !isSiglip && !isOnevision && kind != .vit)
        doRescale = try bool("do_rescale", true)
        doNormalize = try bool("do_normalize", true)
        padToSquare = kind == .llava ? try bool("do_pad", false) : false

        if let r = config["resample"], !r.isNull {
            guard let code = r.intValue, let filter = ResampleFilter(rawValue: code) else {
                throw ImageError(path: nil, "preprocessor config 'resample' must be a Pillow filter code 0...5, got \(r)")
            }
            resample = filter
        } else {
            resample = kind == .vit ? .bilinear : .bicubic  // ViT: BILINEAR; every other supported class: BICUBIC
        }
        if let f = config["rescale_factor"], !f.isNull {
            guard let d = f.doubleValue, d > 0 else { throw ImageError(path: nil, "preprocessor config 'rescale_factor' must be a positive number, got \(f)") }
            rescaleFactor = d
        } else {
            rescaleFactor = 1.0 / 255.0
        }
        imageMean = try triple("image_mean", isSiglip || isClassifier ? [0.5, 0.5, 0.5] : Self.openAIClipMean)
        imageStd = try triple("image_std", isSiglip || isClassifier ? [0.5, 0.5, 0.5] : Self.openAIClipStd)
        guard !imageStd.contains(0) else { throw ImageError(path: nil, "preprocessor config 'image_std' must not contain 0") }

        size = try Self.parseSize(config["size"],
                                  fallback: isSiglip || kind == .vit ? .exact(PixelSize(height: 224, width: 224))
                                      : kind == .deit ? .exact(PixelSize(height: 256, width: 256))
                                      : isOnevision ? .exact(PixelSize(height: 384, width: 384)) : .shortestEdge(224),
                                  defaultToSquare: isClassifier)
        if isOnevision, config["crop_size"] == nil || config["crop_size"]!.isNull {
            // OneVision's tile side is `crop_size.height` when given, else `size`'s height (or shortest edge).
            switch size {
            case .exact(let s): cropSize = PixelSize(height: s.height, width: s.height)
            case .shortestEdge(let e): cropSize = PixelSize(height: e, width: e)
            }
        } else {
            cropSize = try Self.parseCrop(config["crop_size"], fallback: PixelSize(height: 224, width: 224))
        }

        if let p = config["image_grid_pinpoints"], !p.isNull {
            guard let list = p.arrayValue, !list.isEmpty else {
                throw ImageError(path: nil, "preprocessor config 'image_grid_pinpoints' must be a non-empty list of [height, width]")
            }
            gridPinpoints = try list.map { item in
                guard let pair = item.arrayValue, pair.count == 2, let h = pair[0].intValue, let w = pair[1].intValue, h > 0, w > 0 else {
                    throw ImageError(path: nil, "preprocessor config 'image_grid_pinpoints' entry \(item) is not [height, width]")
                }
                return PixelSize(height: h, width: w)
            }
        } else {
            gridPinpoints = isOnevision ? Self.onevisionPinpoints : Self.defaultPinpoints
        }
    }

    /// `LlavaOnevisionImageProcessor`'s default pinpoints: both sides in 384, 768, …, 2304.
    public static let onevisionPinpoints = (1...6).flatMap { h in (1...6).map { w in PixelSize(height: 384 * h, width: 384 * w) } }

    /// An integer `size` means the shortest edge for the classes with `default_to_square = False` (CLIP,
    /// LLaVA, …) and a square for those with `True` (ViT, DeiT), as `get_size_dict` reads it.
    static func parseSize(_ v: JSONValue?, fallback: Size, defaultToSquare: Bool = false) throws -> Size {
        guard let v, !v.isNull else { return fallback }
        if let n = v.intValue, n > 0 { return defaultToSquare ? .exact(PixelSize(height: n, width: n)) : .shortestEdge(n) }
        if let o = v.objectValue {
            if o["longest_edge"] != nil || o["max_height"] != nil {
                throw ImageError(path: nil, "preprocessor config 'size' \(v) is not supported (only shortest_edge or height/width)")
            }
            if let s = o["shortest_edge"]?.intValue, s > 0 { return .shortestEdge(s) }
            if let h = o["height"]?.intValue, let w = o["width"]?.intValue, h > 0, w > 0 {
                return .exact(PixelSize(height: h, width: w))
            }
        }
        throw ImageError(path: nil, "preprocessor config 'size' must be an integer, {shortest_edge} or {height, width}, got \(v)")
    }

    static func parseCrop(_ v: JSONValue?, fallback: PixelSize) throws -> PixelSize {
        guard let v, !v.isNull else { return fallback }
        if let n = v.intValue, n > 0 { return PixelSize(height: n, width: n) }
        if let h = v["height"]?.intValue, let w = v["width"]?.intValue, h > 0, w > 0 { return PixelSize(height: h, width: w) }
        throw ImageError(path: nil, "preprocessor config 'crop_size' must be an integer or {height, width}, got \(v)")
    }

    /// The fill colour of LLaVA-1.5's pad to square: `int(x * 255)` of each mean.
    public var padColor: (UInt8, UInt8, UInt8) {
        func c(_ x: Double) -> UInt8 { UInt8(clamping: Int(x * 255)) }
        return (c(imageMean[0]), c(imageMean[1]), c(imageMean[2]))
    }

    /// transformers' output size for `size` (shortest edge: the long side is `int(s·long/short)`).
    public func resizeTarget(for image: PixelSize) -> PixelSize {
        switch size {
        case .exact(let s): return s
        case .shortestEdge(let s):
            let short = min(image.width, image.height), long = max(image.width, image.height)
            let newLong = Int(Double(s * long) / Double(short))
            return image.width <= image.height ? PixelSize(height: newLong, width: s) : PixelSize(height: s, width: newLong)
        }
    }

    /// Resize, centre crop: the uint8 image that rescale/normalise turns into the tensor.
    public func geometricPipeline(_ image: RGBImage) throws -> RGBImage {
        var img = image
        if doResize {
            let t = resizeTarget(for: PixelSize(height: img.height, width: img.width))
            img = try img.resized(width: t.width, height: t.height, filter: resample)
        }
        if doCenterCrop { img = try img.centerCropped(width: cropSize.width, height: cropSize.height) }
        return img
    }

    func toTensor(_ image: RGBImage) throws -> Tensor {
        try image.normalizedTensor(rescale: doRescale ? rescaleFactor : nil,
                                   mean: doNormalize ? imageMean : nil, std: doNormalize ? imageStd : nil)
    }

    /// Pixel values for the vision tower: [3, H, W] for CLIP, SigLIP and LLaVA;
    /// [1 + tiles, 3, H, W] (thumbnail first) for LLaVA-NeXT and LLaVA-OneVision (one image per prompt).
    public func callAsFunction(_ image: RGBImage) throws -> Tensor {
        if kind == .llavaNext || kind == .llavaOnevision { return try anyRes(image).pixelValues }
        let source = padToSquare ? image.expandedToSquare(fill: padColor) : image
        return try toTensor(try geometricPipeline(source))
    }
}

extension ImagePreprocessor {
    /// LLaVA-OneVision with several images in one prompt (`batch_num_images` > 1): no AnyRes; the
    /// image is padded to a square with `int(mean·255)` (centred, offset rounded down), then resized,
    /// rescaled and normalised like a tile: `[3, H, W]`.
    public func onevisionSingleTile(_ image: RGBImage) throws -> Tensor {
        guard kind == .llavaOnevision else {
            throw ImageError(path: nil, "onevisionSingleTile needs a LlavaOnevisionImageProcessor config, this one is \(kind.rawValue)")
        }
        return try toTensor(try geometricPipeline(image.expandedToSquare(fill: padColor)))
    }
}
