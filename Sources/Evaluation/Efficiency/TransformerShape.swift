import Foundation

/// The dimensions of one transformer stack that analytic FLOPs and KV-cache sizes depend on.
///
/// Only shapes, never weights: `tokc flops` must answer for real 7B/13B configurations on a
/// machine that has none of their checkpoints.
public struct TransformerShape: Sendable, Equatable, Codable {
    public var layers: Int
    /// Model width d.
    public var hidden: Int
    public var heads: Int
    /// Key/value heads (GQA); equal to `heads` for LLaMA-1/Vicuna-style models.
    public var kvHeads: Int
    public var headDim: Int
    /// MLP (FFN) intermediate width m.
    public var mlpWidth: Int
    /// SwiGLU-style gate + up + down (3 matrices) versus up + down (2 matrices, ViTs).
    public var gatedMLP: Bool
    /// Output vocabulary (LM head); 0 for encoders without one.
    public var vocab: Int

    public init(layers: Int, hidden: Int, heads: Int, kvHeads: Int? = nil, headDim: Int? = nil,
                mlpWidth: Int, gatedMLP: Bool, vocab: Int = 0) {
        self.layers = layers
        self.hidden = hidden
        self.heads = heads
        self.kvHeads = kvHeads ?? heads
        self.headDim = headDim ?? (heads > 0 ? hidden / heads : 0)
        self.mlpWidth = mlpWidth
        self.gatedMLP = gatedMLP
        self.vocab = vocab
    }

    /// Width of the K and V projections, d_kv = kv heads · head dim.
    public var kvWidth: Int { kvHeads * headDim }

    /// Rejects shapes the formulas would silently turn into nonsense (zero or negative sizes,
    /// heads that do not divide into KV groups).
    public func validate(_ what: String) throws {
        let fields = [("layers", layers), ("hidden", hidden), ("heads", heads), ("kv heads", kvHeads),
                      ("head dim", headDim), ("MLP width", mlpWidth)]
        for (name, value) in fields where value <= 0 {
            throw FlopsError.invalidShape("\(what): \(name) must be positive, got \(value)")
        }
        guard heads % kvHeads == 0 else {
            throw FlopsError.invalidShape("\(what): \(heads) attention heads are not a multiple of \(kvHeads) KV heads")
        }
        guard vocab >= 0 else { throw FlopsError.invalidShape("\(what): vocab \(vocab) is negative") }
    }
}

/// The image side of a vision-language model: encoder, how images become tokens, projector.
public struct VisionTowerShape: Sendable, Equatable, Codable {
    public var encoder: TransformerShape
    /// Side of a square patch in pixels and input channels (patch embedding cost).
    public var patchSize: Int
    public var channels: Int
    /// Pixels per patch fed to the embedding (Qwen2-VL embeds 2 frames × 14² × 3 per patch).
    public var temporalPatch: Int
    /// Patch tokens of one encoder pass (e.g. 576 for CLIP-L/336); 0 when it depends on the image
    /// (Qwen2-VL's native resolution), in which case the LLM's visual tokens set it.
    public var patchesPerPass: Int
    /// True when the encoder carries an extra [CLS] token in every pass (CLIP).
    public var hasCLS: Bool
    /// Encoder patches merged into one LLM token (Qwen2-VL 2×2 merge = 4; LLaVA = 1).
    public var mergeFactor: Int
    /// Widths of the projector's linear layers, input first: `[1024, 4096, 4096]` is a two-layer
    /// MLP 1024→4096→4096.
    public var projector: [Int]

    public init(encoder: TransformerShape, patchSize: Int, channels: Int = 3, temporalPatch: Int = 1,
                patchesPerPass: Int, hasCLS: Bool, mergeFactor: Int = 1, projector: [Int]) {
        self.encoder = encoder
        self.patchSize = patchSize
        self.channels = channels
        self.temporalPatch = temporalPatch
        self.patchesPerPass = patchesPerPass
        self.hasCLS = hasCLS
        self.mergeFactor = mergeFactor
        self.projector = projector
    }

    /// LLM visual tokens one encoder pass yields (0 when image-dependent).
    public var tokensPerPass: Int { patchesPerPass / max(mergeFactor, 1) }
}

/// A whole model as far as FLOPs care: the language model and, for a VLM, its vision tower.
public struct ModelShape: Sendable, Equatable, Codable {
    public var name: String
    public var llm: TransformerShape
    public var vision: VisionTowerShape?
    /// Visual tokens of the model's usual single-image input (the CLI default).
    public var defaultVisualTokens: Int
    /// LLM tokens one video frame becomes after the model's pooling (LLaVA-OneVision: the 2×2
    /// bilinear pooling of each frame's patch grid, ⌈27/2⌉² = 196 on the 7B); nil: no video path.
    public var videoTokensPerFrame: Int?

    public init(name: String, llm: TransformerShape, vision: VisionTowerShape?, defaultVisualTokens: Int, videoTokensPerFrame: Int? = nil) {
        self.name = name
        self.llm = llm
        self.vision = vision
        self.defaultVisualTokens = defaultVisualTokens
        self.videoTokensPerFrame = videoTokensPerFrame
    }

    /// OneVision's pooled tokens per frame for a square patch grid of `patches` patches: ⌈side/2⌉².
    public static func onevisionPooledTokens(patchesPerFrame patches: Int) -> Int {
        let side = Int(Double(patches).squareRoot().rounded())
        return ((side + 1) / 2) * ((side + 1) / 2)
    }
}

/// Why a FLOPs question could not be answered.
public enum FlopsError: Error, Equatable, CustomStringConvertible {
    case invalidShape(String)
    case config(String)
    case unknownPreset(String)
    case unknownMethod(String)
    case invalidRequest(String)

    public var description: String {
        switch self {
        case .invalidShape(let m): return "invalid shape: \(m)"
        case .config(let m): return "config.json: \(m)"
        case .unknownPreset(let m): return m
        case .unknownMethod(let m): return m
        case .invalidRequest(let m): return m
        }
    }
}
