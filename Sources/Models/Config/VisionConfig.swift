import Foundation
import ModelIO

/// Shape and activation of a ViT vision tower, common to CLIP and SigLIP.
public struct VisionTowerConfig: Sendable, Equatable {
    public enum Kind: String, Sendable { case clip, siglip }
    public var kind: Kind
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layers: Int
    public var heads: Int
    public var imageSize: Int
    public var patchSize: Int
    public var channels: Int
    public var hiddenAct: String
    public var layerNormEps: Float

    public var patchesPerSide: Int { imageSize / patchSize }
    public var patchCount: Int { patchesPerSide * patchesPerSide }
    /// Tokens the encoder sees: patches plus [CLS] for CLIP.
    public var tokenCount: Int { patchCount + (hasClassToken ? 1 : 0) }
    public var hasClassToken: Bool { kind == .clip }
    public var headDim: Int { hiddenSize / heads }

    init(kind: Kind, reader file: ConfigReader) throws {
        self.kind = kind
        let r = file.withDefaults(of: kind == .clip ? "clip_vision_model" : "siglip_vision_model")
        hiddenSize = try r.positiveInt("hidden_size")
        intermediateSize = try r.positiveInt("intermediate_size")
        layers = try r.positiveInt("num_hidden_layers")
        heads = try r.positiveInt("num_attention_heads")
        imageSize = try r.positiveInt("image_size")
        patchSize = try r.positiveInt("patch_size")
        channels = try r.positiveInt("num_channels")
        hiddenAct = try r.string("hidden_act")
        layerNormEps = Float(try r.double("layer_norm_eps"))
        try validate(context: r.context)
    }

    /// A config built in code (benchmarks, tests).
    public init(kind: Kind, hiddenSize: Int, intermediateSize: Int, layers: Int, heads: Int,
                imageSize: Int, patchSize: Int, hiddenAct: String? = nil, layerNormEps: Float = 1e-5) throws {
        self.kind = kind
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layers = layers
        self.heads = heads
        self.imageSize = imageSize
        self.patchSize = patchSize
        channels = 3
        self.hiddenAct = hiddenAct ?? (kind == .clip ? "quick_gelu" : "gelu_pytorch_tanh")
        self.layerNormEps = layerNormEps
        try validate(context: "vision config")
    }

    private func validate(context: String) throws {
        guard hiddenSize % heads == 0 else {
            throw ModelError("\(context): hidden_size \(hiddenSize) is not divisible by num_attention_heads \(heads)")
        }
        // Like the stride-`patch_size` convolution, a remainder of the image is left out: SigLIP
        // so400m (LLaVA-OneVision) has image_size 384 and patch_size 14, i.e. 27×27 patches.
        guard patchSize <= imageSize else {
            throw ModelError("\(context): patch_size \(patchSize) is larger than image_size \(imageSize)")
        }
        guard Activation(name: hiddenAct) != nil else {
            throw ModelError("\(context): hidden_act '\(hiddenAct)' is not supported (gelu, gelu_pytorch_tanh, gelu_new, quick_gelu, silu, relu)")
        }
    }

    /// Reads `folder/config.json` of a `CLIPVisionModel` or `SiglipVisionModel`.
    public static func load(folder: String) throws -> VisionTowerConfig {
        let file = try ModelConfigFile(folder: folder)
        try file.require(["CLIPVisionModel", "SiglipVisionModel"])
        return try VisionTowerConfig(kind: file.architecture == "CLIPVisionModel" ? .clip : .siglip, reader: file.reader)
    }

    /// From a LLaVA `vision_config` (`defaultType` unless `model_type` says otherwise: CLIP for
    /// LLaVA and NeXT, SigLIP for OneVision).
    init(llavaVisionConfig r: ConfigReader?, context: String, defaultType: String = "clip_vision_model") throws {
        guard let r else {
            throw ModelError("\(context): missing 'vision_config'")
        }
        let type = try r.string("model_type", default: defaultType)
        switch type {
        case "clip_vision_model", "clip": try self.init(kind: .clip, reader: r)
        case "siglip_vision_model", "siglip": try self.init(kind: .siglip, reader: r)
        default: throw ModelError("\(r.context): unsupported vision model_type '\(type)' (supported: clip_vision_model, siglip_vision_model)")
        }
    }
}

/// `CLIPVisionConfig` of transformers: a `VisionTowerConfig` of kind `.clip`.
public typealias CLIPVisionConfig = VisionTowerConfig
/// `SiglipVisionConfig` of transformers: a `VisionTowerConfig` of kind `.siglip`.
public typealias SiglipVisionConfig = VisionTowerConfig

/// Activation functions named in configs.
public enum Activation: Sendable, Equatable {
    case gelu, geluTanh, quickGelu, silu, relu

    public init?(name: String) {
        switch name {
        case "gelu": self = .gelu
        case "gelu_pytorch_tanh", "gelu_new", "gelu_fast": self = .geluTanh
        case "quick_gelu": self = .quickGelu
        case "silu", "swish": self = .silu
        case "relu": self = .relu
        default: return nil
        }
    }
}
