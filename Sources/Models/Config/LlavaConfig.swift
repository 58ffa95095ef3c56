import Foundation
import ModelIO

/// `LlavaForConditionalGeneration` / `LlavaNextForConditionalGeneration` configuration.
public struct LlavaConfig: Sendable, Equatable {
    public enum Variant: String, Sendable { case llava15, next }
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
    /// NeXT: candidate resolutions, each `(height, width)`.
    public var gridPinpoints: [(height: Int, width: Int)]

    public static func == (a: LlavaConfig, b: LlavaConfig) -> Bool {
        a.variant == b.variant && a.text == b.text && a.vision == b.vision && a.visionFeatureLayers == b.visionFeatureLayers
            && a.visionFeatureStrategy == b.visionFeatureStrategy && a.imageTokenID == b.imageTokenID
            && a.projectorAct == b.projectorAct && a.imageSeqLength == b.imageSeqLength
            && a.gridPinpoints.map { [$0.height, $0.width] } == b.gridPinpoints.map { [$0.height, $0.width] }
    }

    /// Vision rows per image (one tile) after the feature strategy.
    public var featuresPerTile: Int {
        vision.tokenCount - (visionFeatureStrategy == .default && vision.hasClassToken ? 1 : 0)
    }

    public static func load(folder: String) throws -> LlavaConfig {
        let file = try ModelConfigFile(folder: folder)
        try file.require(["LlavaForConditionalGeneration", "LlavaNextForConditionalGeneration"])
        return try LlavaConfig(reader: file.reader, variant: file.architecture == "LlavaNextForConditionalGeneration" ? .next : .llava15)
    }

    init(reader r: ConfigReader, variant: Variant) throws {
        self.variant = variant
        guard let textReader = try r.child("text_config") else { throw ModelError("\(r.context): missing 'text_config'") }
        text = try LlamaConfig(reader: textReader, tieDefault: try r.bool("tie_word_embeddings", default: false))
        vision = try VisionTowerConfig(llavaVisionConfig: try r.child("vision_config"), context: r.context)
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
        if variant == .next {
            let defaults = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
            var pins: [(Int, Int)] = []
            if let raw = r.json["image_grid_pinpoints"], !raw.isNull {
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
}
