import Foundation
import ModelIO

/// `PixArtTransformer2DModel`'s config (diffusers), as in `transformer/config.json` (PixArt-α).
///
/// Absent fields take `PixArtTransformer2DModel.__init__`'s defaults. The micro-conditions of the
/// 1024-pixel model (`use_additional_conditions`, on by default when `sample_size == 128`) are not
/// implemented: such a config is an error naming the field.
public struct PixArtConfig: Sendable, Equatable, PatchTransformerShape {
    public var heads: Int
    public var headDim: Int
    public var inChannels: Int
    public var outChannels: Int
    public var layers: Int
    public var sampleSize: Int
    public var patchSize: Int
    /// Width of the caption embeddings the model reads (T5-XXL: 4096), projected to the model width.
    public var captionChannels: Int
    /// Width of the keys and values of the cross-attention (the projected captions: the model width).
    public var crossAttentionDim: Int
    public var activation: String
    public var normEps: Float
    public var attentionBias: Bool
    /// Position scale: `index / interpolation_scale` (default `max(sample_size / 64, 1)`).
    public var interpolationScale: Double


    public init(file: DiffusersConfigFile) throws {
        let context = file.path
        if let name = file.className, name != "PixArtTransformer2DModel" {
            throw ModelError("\(context): _class_name '\(name)' is not a PixArt transformer (expected PixArtTransformer2DModel)")
        }
        let r = file.reader
        let normType = try r.string("norm_type", default: "ada_norm_single")
        guard normType == "ada_norm_single" else {
            throw ModelError("\(context): norm_type '\(normType)' is not supported for PixArt (expected 'ada_norm_single')")
        }
        heads = try r.positiveInt("num_attention_heads", default: 16)
        headDim = try r.positiveInt("attention_head_dim", default: 72)
        inChannels = try r.positiveInt("in_channels", default: 4)
        outChannels = try r.positiveInt("out_channels", default: 8)
        layers = try r.positiveInt("num_layers", default: 28)
        sampleSize = try r.positiveInt("sample_size", default: 128)
        patchSize = try r.positiveInt("patch_size", default: 2)
        guard r.has("caption_channels") else {
            throw ModelError("\(context): caption_channels is missing or null; the caption projection needs the text encoder's width")
        }
        captionChannels = try r.positiveInt("caption_channels")
        crossAttentionDim = try r.positiveInt("cross_attention_dim", default: 1152)
        activation = try r.string("activation_fn", default: "gelu-approximate")
        normEps = Float(try r.double("norm_eps", default: 1e-6))
        attentionBias = try r.bool("attention_bias", default: true)
        interpolationScale = try r.double("interpolation_scale", default: Double(max(sampleSize / 64, 1)))
        let additional = r.has("use_additional_conditions") ? try r.bool("use_additional_conditions", default: false) : sampleSize == 128
        guard !additional else {
            throw ModelError("\(context): use_additional_conditions (resolution / aspect-ratio micro-conditions, PixArt-α 1024) is not supported yet")
        }
        if try r.bool("norm_elementwise_affine", default: false) {
            throw ModelError("\(context): norm_elementwise_affine = true is not supported (PixArt-α's norms have no affine parameters)")
        }
        let attentionType = try r.string("attention_type", default: "default")
        guard attentionType == "default" else { throw ModelError("\(context): attention_type '\(attentionType)' is not supported (default)") }
        guard sampleSize % patchSize == 0 else {
            throw ModelError("\(context): sample_size \(sampleSize) is not a multiple of patch_size \(patchSize)")
        }
        guard outChannels == inChannels || outChannels == 2 * inChannels else {
            throw ModelError("\(context): out_channels \(outChannels) must be in_channels (\(inChannels)) or twice it (learned sigma)")
        }
        guard crossAttentionDim == width else {
            throw ModelError("\(context): cross_attention_dim \(crossAttentionDim) must equal the width \(width) (the captions are projected to it)")
        }
        guard ["gelu-approximate", "gelu"].contains(activation) else {
            throw ModelError("\(context): activation_fn '\(activation)' is not supported (expected 'gelu-approximate' or 'gelu')")
        }
        guard width % 4 == 0, interpolationScale > 0 else {
            throw ModelError("\(context): the width \(width) must be a multiple of 4 and interpolation_scale positive")
        }
    }
}
