import Foundation
import ModelIO

/// `DiTTransformer2DModel`'s config (diffusers), as in `transformer/config.json`.
///
/// The DiT checkpoints on the Hub (facebook/DiT-XL-2-256) were saved as `Transformer2DModel` with
/// `norm_type: "ada_norm_zero"`, which diffusers now routes to `DiTTransformer2DModel`; both names
/// are accepted. Absent fields take `DiTTransformer2DModel.__init__`'s defaults.
public struct DiTConfig: Sendable, Equatable, PatchTransformerShape {
    public var heads: Int
    public var headDim: Int
    public var inChannels: Int
    /// `2 · inChannels` with a learned variance (DiT's learned sigma), else `inChannels`.
    public var outChannels: Int
    public var layers: Int
    /// Latent height and width the position embedding is built for.
    public var sampleSize: Int
    public var patchSize: Int
    /// Class labels `0..<classCount`; index `classCount` of the embedding table is the null (unconditional) class.
    public var classCount: Int
    /// `gelu-approximate` (tanh, DiT) or `gelu` (erf).
    public var activation: String
    /// Epsilon of the LayerNorm before the MLP (`norm3`); the adaLN norms use 1e-6 as diffusers hard-codes.
    public var normEps: Float
    /// Whether `norm3` has a weight and bias.
    public var normElementwiseAffine: Bool
    public var attentionBias: Bool

    /// The label that selects the null class embedding (classifier-free guidance).
    public var nullClass: Int { classCount }

    public static let classNames = ["DiTTransformer2DModel", "Transformer2DModel"]

    public init(file: DiffusersConfigFile) throws {
        let context = file.path
        if let name = file.className, !Self.classNames.contains(name) {
            throw ModelError("\(context): _class_name '\(name)' is not a DiT transformer (expected \(Self.classNames.joined(separator: " or ")))")
        }
        let r = file.reader
        let normType = try r.string("norm_type", default: "ada_norm_zero")
        guard normType == "ada_norm_zero" else {
            throw ModelError("\(context): norm_type '\(normType)' is not supported (DiT uses 'ada_norm_zero'; PixArt's 'ada_norm_single' is not implemented yet)")
        }
        heads = try r.positiveInt("num_attention_heads", default: 16)
        headDim = try r.positiveInt("attention_head_dim", default: 72)
        inChannels = try r.positiveInt("in_channels", default: 4)
        outChannels = try r.positiveInt("out_channels", default: inChannels)
        layers = try r.positiveInt("num_layers", default: 28)
        sampleSize = try r.positiveInt("sample_size", default: 32)
        patchSize = try r.positiveInt("patch_size", default: 2)
        guard r.has("num_embeds_ada_norm") || !r.json.objectValue!.keys.contains("num_embeds_ada_norm") else {
            throw ModelError("\(context): num_embeds_ada_norm is null; DiT's adaLN-Zero needs the number of classes")
        }
        classCount = try r.positiveInt("num_embeds_ada_norm", default: 1000)
        activation = try r.string("activation_fn", default: "gelu-approximate")
        normEps = Float(try r.double("norm_eps", default: 1e-5))
        normElementwiseAffine = try r.bool("norm_elementwise_affine", default: false)
        attentionBias = try r.bool("attention_bias", default: true)
        try validate(context: context)
    }

    /// A config built in code (tests).
    public init(heads: Int, headDim: Int, inChannels: Int, outChannels: Int, layers: Int, sampleSize: Int, patchSize: Int,
                classCount: Int, activation: String = "gelu-approximate", normEps: Float = 1e-5,
                normElementwiseAffine: Bool = false, attentionBias: Bool = true) throws {
        self.heads = heads
        self.headDim = headDim
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.layers = layers
        self.sampleSize = sampleSize
        self.patchSize = patchSize
        self.classCount = classCount
        self.activation = activation
        self.normEps = normEps
        self.normElementwiseAffine = normElementwiseAffine
        self.attentionBias = attentionBias
        try validate(context: "DiT config")
    }

    private func validate(context: String) throws {
        guard sampleSize % patchSize == 0 else {
            throw ModelError("\(context): sample_size \(sampleSize) is not a multiple of patch_size \(patchSize)")
        }
        guard outChannels == inChannels || outChannels == 2 * inChannels else {
            throw ModelError("\(context): out_channels \(outChannels) must be in_channels (\(inChannels)) or twice it (learned sigma)")
        }
        guard ["gelu-approximate", "gelu"].contains(activation) else {
            throw ModelError("\(context): activation_fn '\(activation)' is not supported (expected 'gelu-approximate' or 'gelu')")
        }
        guard width % 4 == 0 else {
            throw ModelError("\(context): the width \(width) (heads × head dim) must be a multiple of 4 for the 2-D sin-cos position embedding")
        }
    }
}
