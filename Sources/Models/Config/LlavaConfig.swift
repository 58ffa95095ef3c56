import Foundation
import ModelIO

/// `LlavaForConditionalGeneration` / `LlavaNextForConditionalGeneration` /
/// `LlavaOnevisionForConditionalGeneration` configuration.
public struct LlavaConfig: Sendable, Equatable {
    public enum Variant: String, Sendable { case llava15, next, onevision }
    public enum FeatureStrategy: String, Sendable {
        /// Drop the [CLS] row (CLIP towers).
        case `default`
        /// Keep every row.
        case full
    }
    public var variant: Variant
    public var text: LlamaConfig
    public var vision: VisionTowerConfig
    /// `hidden_states` indices (0 = embeddings, negative from the end) concatenated along features.
    public var visionFeatureLayers: [Int]
    public var visionFeatureStrategy: FeatureStrategy
    public var imageTokenID: Int
    public var projectorAct: Activation
    public var projectorBias: Bool
    /// Tokens one image expands to in LLaVA-1.5 (`image_seq_length`).
    public var imageSeqLength: Int
    /// NeXT and OneVision: candidate resolutions, each `(height, width)`.
    public var gridPinpoints: [(height: Int, width: Int)]
    /// OneVision: the `<video>` token id (`video_token_index`); nil for the other variants.
    public var videoTokenID: Int?
    /// OneVision: N of `vision_aspect_ratio` "anyres_max_N", the most tiles' worth of features an
    /// unpadded AnyRes grid keeps before it is downscaled; nil for the other variants.
    public var anyResMaxTiles: Int?

    /// Whether images go through AnyRes with `image_newline` (NeXT and OneVision).
    public var usesAnyRes: Bool { variant != .llava15 }

    public static func == (a: LlavaConfig, b: LlavaConfig) -> Bool {
        a.variant == b.variant && a.text == b.text && a.vision == b.vision && a.visionFeatureLayers == b.visionFeatureLayers
            && a.visionFeatureStrategy == b.visionFeatureStrategy && a.imageTokenID == b.imageTokenID
            && a.projectorAct == b.projectorAct && a.imageSeqLength == b.imageSeqLength
            && a.gridPinpoints.map { [$0.height, $0.width] } == b.gridPinpoints.map { [$0.height, $0.width] }
            && a.videoTokenID == b.videoTokenID && a.anyResMaxTiles == b.anyResMaxTiles
    }

    /// Vision rows per image (one tile) after the feature strategy.
    public var featuresPerTile: Int {
        vision.tokenCount - (visionFeatureStrategy == .default && vision.hasClassToken ? 1 : 0)
    }

    public static func load(folder: String) throws -> LlavaConfig {
        let file = try ModelConfigFile(folder: folder)
        try file.require(["LlavaForConditionalGeneration", "LlavaNextForConditionalGeneration", "LlavaOnevisionForConditionalGeneration"])
        let variant: Variant = switch file.architecture {
        case "LlavaNextForConditionalGeneration": .next
        case "LlavaOnevisionForConditionalGeneration": .onevision
        default: .llava15
        }
        return try LlavaConfig(reader: file.reader, variant: variant)
    }

    init(reader r: ConfigReader, variant: Variant) throws {
        self.variant = variant
        let onevision = variant == .onevision
        guard let textReader = try r.child("text_config") else { throw ModelError("\(r.context): missing 'text_config'") }
        let topTie = try r.bool("tie_word_embeddings", default: false)
        text = try LlamaConfig(reader: textReader, tieDefault: topTie, defaultFamily: onevision ? .qwen2 : .llama)
        // LlavaOnevisionConfig ties when either level asks (`__post_init__` copies the text config's flag up).
        if onevision && topTie { text.tieWordEmbeddings = true }
        vision = try VisionTowerConfig(llavaVisionConfig: try r.child("vision_config"), context: r.context,
                                       defaultType: onevision ? "siglip_vision_model" : "clip_vision_model")
        visionFeatureLayers = try r.intList("vision_feature_layer") ?? [-2]
        guard !visionFeatureLayers.isEmpty else { throw ModelError("\(r.context): 'vision_feature_layer' is an empty list") }
        for l in visionFeatureLayers where l > vision.layers || l < -(vision.layers + 1) {
            throw ModelError("\(r.context): vision_feature_layer \(l) is out of range for \(vision.layers) vision layers (hidden_states has \(vision.layers + 1) entries)")
        }
        let strategy = try r.string("vision_feature_select_strategy", default: "default")
        guard let s = FeatureStrategy(rawValue: strategy) else {
            throw ModelError("\(r.context): vision_feature_select_strategy '\(strategy)' is not 'default' or 'full'")
        }
        if s == .default && !vision.hasClassToken {
            throw ModelError("\(r.context): vision_feature_select_strategy 'default' drops a [CLS] row but the SigLIP tower has none; use 'full'")
        }
        visionFeatureStrategy = s
        imageTokenID = try r.int("image_token_index", default: try r.int("image_token_id", default: 32000))
        let act = try r.string("projector_hidden_act", default: "gelu")
        guard let pa = Activation(name: act) else { throw ModelError("\(r.context): projector_hidden_act '\(act)' is not supported") }
        projectorAct = pa
        projectorBias = try r.bool("multimodal_projector_bias", default: true)
        imageSeqLength = try r.positiveInt("image_seq_length", default: 576)
        if onevision {
            videoTokenID = try r.int("video_token_index", default: try r.int("video_token_id", default: 151647))
            let ratio = try r.string("vision_aspect_ratio", default: "anyres_max_9")
            anyResMaxTiles = try Self.maxTiles(aspectRatio: ratio, context: r.context)
            guard imageTokenID != videoTokenID else {
                throw ModelError("\(r.context): image_token_index and video_token_index are both \(imageTokenID)")
            }
        } else {
            videoTokenID = nil
            anyResMaxTiles = nil
        }
        if variant != .llava15 {
            let defaults = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
            var pins: [(Int, Int)] = []
            if let raw = r.value("image_grid_pinpoints"), !raw.isNull {
                guard let list = raw.arrayValue else { throw ModelError("\(r.context): image_grid_pinpoints must be a list of [height, width]") }
                for p in list {
                    guard let pair = p.arrayValue?.compactMap(\.intValue), pair.count == 2, pair[0] > 0, pair[1] > 0 else {
                        throw ModelError("\(r.context): image_grid_pinpoints entry \(p) is not [height, width]")
                    }
                    guard pair[0] % vision.imageSize == 0, pair[1] % vision.imageSize == 0 else {
                        throw ModelError("\(r.context): image_grid_pinpoints entry \(p) is not a multiple of the vision image size \(vision.imageSize)")
                    }
                    pins.append((pair[0], pair[1]))
                }
            } else {
                pins = defaults.map { ($0[0], $0[1]) }
            }
            guard !pins.isEmpty else { throw ModelError("\(r.context): image_grid_pinpoints is empty") }
            gridPinpoints = pins.map { (height: $0.0, width: $0.1) }
        } else {
            gridPinpoints = []
        }
    }

    /// N of `vision_aspect_ratio`, as transformers reads it: `int(ratio.strip("anyres_max_"))`
    /// (`strip` removes any of those characters from both ends). Anything that does not leave a
    /// positive integer is refused (transformers fails on it while packing).
    static func maxTiles(aspectRatio: String, context: String) throws -> Int {
        let strip = Set("anyres_max_")
        var chars = Substring(aspectRatio)
        while let f = chars.first, strip.contains(f) { chars = chars.dropFirst() }
        while let l = chars.last, strip.contains(l) { chars = chars.dropLast() }
        guard !chars.isEmpty, chars.allSatisfy(\.isASCII), chars.allSatisfy(\.isNumber), let n = Int(chars), n > 0 else {
            throw ModelError("\(context): vision_aspect_ratio '\(aspectRatio)' is not supported (expected 'anyres_max_N' with N > 0)")
        }
        return n
    }
}
