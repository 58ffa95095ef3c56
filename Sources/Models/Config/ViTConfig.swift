import Foundation
import ModelIO

/// `ViTConfig` / `DeiTConfig` of transformers and the classification head the architecture names.
///
/// Absent fields take the class defaults (`TransformersDefaults`, model types "vit" and "deit"). The
/// model is fixed-size: its position embeddings cover `image_size / patch_size` squared patches.
public struct ViTClassifierConfig: Sendable, Equatable {
    /// Which head reads the final rows.
    public enum Head: String, Sendable {
        /// `ViTForImageClassification`: a linear layer on the [CLS] row.
        case vit
        /// `DeiTForImageClassification`: [CLS] + distillation token in the sequence, head on [CLS].
        case deit
        /// `DeiTForImageClassificationWithTeacher`: heads on [CLS] and on the distillation token, averaged.
        case deitWithTeacher
    }

    public var head: Head
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layers: Int
    public var heads: Int
    public var imageSize: Int
    public var patchSize: Int
    public var channels: Int
    public var hiddenAct: String
    public var layerNormEps: Float
    public var qkvBias: Bool
    /// `id2label` in id order; empty when the config has none.
    public var labels: [String]

    public var headDim: Int { hiddenSize / heads }
    public var patchesPerSide: Int { imageSize / patchSize }
    public var patchCount: Int { patchesPerSide * patchesPerSide }
    /// Rows in front of the patches: [CLS] (ViT), [CLS] + distillation token (DeiT).
    public var specialTokens: Int { head == .vit ? 1 : 2 }
    /// Rows entering the first block.
    public var tokenCount: Int { patchCount + specialTokens }
    /// The `model_type` of the family ("vit" or "deit").
    public var modelType: String { head == .vit ? "vit" : "deit" }
    /// Key prefix of the backbone in the checkpoint ("vit." or "deit.").
    var backbonePrefix: String { head == .vit ? "vit." : "deit." }

    /// Architectures (`architectures[0]`) and the head each one has.
    public static let architectures: [String: Head] = [
        "ViTForImageClassification": .vit, "DeiTForImageClassification": .deit,
        "DeiTForImageClassificationWithTeacher": .deitWithTeacher,
    ]

    init(head: Head, reader file: ConfigReader) throws {
        self.head = head
        let family = head == .vit ? "vit" : "deit"
        let type = try file.string("model_type", default: family)
        guard type == family else {
            throw ModelError("\(file.context): model_type '\(type)' does not match the architecture (expected '\(family)')")
        }
        let r = file.withDefaults(of: family)
        hiddenSize = try r.positiveInt("hidden_size")
        intermediateSize = try r.positiveInt("intermediate_size")
        layers = try r.positiveInt("num_hidden_layers")
        heads = try r.positiveInt("num_attention_heads")
        imageSize = try r.positiveInt("image_size")
        patchSize = try r.positiveInt("patch_size")
        channels = try r.positiveInt("num_channels")
        hiddenAct = try r.string("hidden_act")
        layerNormEps = Float(try r.double("layer_norm_eps"))
        qkvBias = try r.bool("qkv_bias", default: true)
        labels = try Self.labels(r)
        try validate(context: r.context)
    }

    /// A config built in code (benchmarks, tests).
    public init(head: Head, hiddenSize: Int, intermediateSize: Int, layers: Int, heads: Int, imageSize: Int,
                patchSize: Int, hiddenAct: String = "gelu", layerNormEps: Float = 1e-12, qkvBias: Bool = true,
                labels: [String] = []) throws {
        self.head = head
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layers = layers
        self.heads = heads
        self.imageSize = imageSize
        self.patchSize = patchSize
        channels = 3
        self.hiddenAct = hiddenAct
        self.layerNormEps = layerNormEps
        self.qkvBias = qkvBias
        self.labels = labels
        try validate(context: "ViT config")
    }

    private func validate(context: String) throws {
        guard hiddenSize % heads == 0 else {
            throw ModelError("\(context): hidden_size \(hiddenSize) is not divisible by num_attention_heads \(heads)")
        }
        guard imageSize % patchSize == 0 else {
            throw ModelError("\(context): image_size \(imageSize) is not a multiple of patch_size \(patchSize)")
        }
        guard Activation(name: hiddenAct) != nil else {
            throw ModelError("\(context): hidden_act '\(hiddenAct)' is not supported (gelu, gelu_pytorch_tanh, gelu_new, quick_gelu, silu, relu)")
        }
    }

    /// `id2label` as a list: keys must be the ids 0..<n.
    private static func labels(_ r: ConfigReader) throws -> [String] {
        guard let v = r.json["id2label"], !v.isNull else { return [] }
        guard let object = v.objectValue else { throw ModelError("\(r.context): field 'id2label' must be an object, found \(v)") }
        var out = [String?](repeating: nil, count: object.count)
        for (key, value) in object {
            guard let id = Int(key), id >= 0, id < object.count, out[id] == nil, let name = value.stringValue else {
                throw ModelError("\(r.context): id2label must map the ids 0..<\(object.count) to names, found '\(key)': \(value)")
            }
            out[id] = name
        }
        return out.map { $0! }
    }

    /// Reads `folder/config.json` of a ViT or DeiT image classifier.
    public static func load(folder: String) throws -> ViTClassifierConfig {
        let file = try ModelConfigFile(folder: folder)
        try file.require(architectures.keys.sorted())
        return try ViTClassifierConfig(head: architectures[file.architecture]!, reader: file.reader)
    }
}

/// `CLIPTextConfig` of transformers: the causal text tower of CLIP.
public struct CLIPTextConfig: Sendable, Equatable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layers: Int
    public var heads: Int
    public var maxPositions: Int
    public var hiddenAct: String
    public var layerNormEps: Float
    /// Decides the pooled row: the first `eos_token_id` of each prompt, or, for the legacy value 2,
    /// the position of the largest id (transformers keeps that rule for old configs).
    public var eosTokenID: Int

    public var headDim: Int { hiddenSize / heads }

    init(reader: ConfigReader) throws {
        let r = reader.withDefaults(of: "clip_text_model")
        vocabSize = try r.positiveInt("vocab_size")
        hiddenSize = try r.positiveInt("hidden_size")
        intermediateSize = try r.positiveInt("intermediate_size")
        layers = try r.positiveInt("num_hidden_layers")
        heads = try r.positiveInt("num_attention_heads")
        maxPositions = try r.positiveInt("max_position_embeddings")
        hiddenAct = try r.string("hidden_act")
        layerNormEps = Float(try r.double("layer_norm_eps"))
        eosTokenID = try r.int("eos_token_id")
        guard hiddenSize % heads == 0 else {
            throw ModelError("\(r.context): hidden_size \(hiddenSize) is not divisible by num_attention_heads \(heads)")
        }
        guard Activation(name: hiddenAct) != nil else {
            throw ModelError("\(r.context): hidden_act '\(hiddenAct)' is not supported (gelu, gelu_pytorch_tanh, gelu_new, quick_gelu, silu, relu)")
        }
    }
}

/// `CLIPConfig` of transformers: both towers and the shared embedding width.
public struct CLIPConfig: Sendable, Equatable {
    public var vision: CLIPVisionConfig
    public var text: CLIPTextConfig
    public var projectionDim: Int

    init(reader r: ConfigReader) throws {
        let type = try r.string("model_type", default: "clip")
        guard type == "clip" else {
            throw ModelError("\(r.context): model_type '\(type)' is not supported for CLIPModel (expected 'clip')")
        }
        let top = r.withDefaults(of: "clip")
        projectionDim = try top.positiveInt("projection_dim")
        // Absent sections mean the class defaults (CLIPConfig() builds both towers from them).
        let empty = try ConfigReader(.object([:]), context: "\(r.context) (defaults)", error: { ModelError($0) })
        let vision = try r.child("vision_config", defaultsType: "clip_vision_model") ?? empty.withDefaults(of: "clip_vision_model")
        let visionType = try vision.string("model_type", default: "clip_vision_model")
        guard visionType == "clip_vision_model" else {
            throw ModelError("\(vision.context): vision model_type '\(visionType)' is not supported (expected clip_vision_model)")
        }
        self.vision = try CLIPVisionConfig(kind: .clip, reader: vision)
        text = try CLIPTextConfig(reader: try r.child("text_config", defaultsType: "clip_text_model") ?? empty)
    }

    /// Reads `folder/config.json` of a `CLIPModel`.
    public static func load(folder: String) throws -> CLIPConfig {
        let file = try ModelConfigFile(folder: folder)
        try file.require(["CLIPModel"])
        return try CLIPConfig(reader: file.reader)
    }
}
