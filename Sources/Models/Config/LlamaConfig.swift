import Foundation
import ModelIO

/// Decoder-only LM configuration (LLaMA family; Qwen2 = LLaMA with q/k/v biases).
public struct LlamaConfig: Sendable, Equatable {
    public enum Family: String, Sendable { case llama, qwen2 }
    public var family: Family
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layers: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var rmsNormEps: Float
    public var ropeTheta: Double
    public var tieWordEmbeddings: Bool
    /// Bias on q/k/v projections (Qwen2 always; LLaMA when `attention_bias`); o_proj follows `attention_bias` only.
    public var qkvBias: Bool
    public var outputBias: Bool
    public var mlpBias: Bool
    public var maxPositionEmbeddings: Int
    public var bosTokenID: Int?
    public var eosTokenIDs: [Int]

    /// Parses a `config.json` (or a LLaVA `text_config`) with transformers' defaults for absent fields;
    /// `defaultFamily` is the family a config without `model_type` is (LLaVA: llama, OneVision: qwen2).
    init(reader file: ConfigReader, tieDefault: Bool? = nil, defaultFamily: Family = .llama) throws {
        let type = try file.string("model_type", default: defaultFamily.rawValue)
        guard let family = Family(rawValue: type) else {
            throw ModelError("\(file.context): unsupported text model_type '\(type)' (supported: llama, qwen2)")
        }
        let r = file.withDefaults(of: family.rawValue)
        self.family = family
        let isQwen = family == .qwen2
        vocabSize = try r.positiveInt("vocab_size")
        hiddenSize = try r.positiveInt("hidden_size")
        intermediateSize = try r.positiveInt("intermediate_size")
        layers = try r.positiveInt("num_hidden_layers")
        heads = try r.positiveInt("num_attention_heads")
        kvHeads = try r.positiveInt("num_key_value_heads", default: heads)
        guard heads % kvHeads == 0 else {
            throw ModelError("\(r.context): num_attention_heads \(heads) is not a multiple of num_key_value_heads \(kvHeads)")
        }
        if r.has("head_dim") {
            headDim = try r.positiveInt("head_dim")
        } else {
            guard hiddenSize % heads == 0 else {
                throw ModelError("\(r.context): hidden_size \(hiddenSize) is not divisible by num_attention_heads \(heads) and no head_dim is given")
            }
            headDim = hiddenSize / heads
        }
        rmsNormEps = Float(try r.double("rms_norm_eps"))
        // transformers 5 writes `rope_parameters`; older configs `rope_theta` + `rope_scaling`.
        var theta = try r.double("rope_theta")
        var ropeType = "default"
        if let rp = try r.child("rope_parameters") {
            theta = try rp.double("rope_theta", default: theta)
            ropeType = try rp.string("rope_type", default: "default")
        }
        if let rs = try r.child("rope_scaling") {
            ropeType = try rs.string("rope_type", default: try rs.string("type", default: "default"))
        }
        guard ropeType == "default" else {
            throw ModelError("\(r.context): rope type '\(ropeType)' is not supported (only plain RoPE)")
        }
        ropeTheta = theta
        tieWordEmbeddings = try r.bool("tie_word_embeddings", default: tieDefault ?? false)
        let attentionBias = try r.bool("attention_bias", default: false)
        qkvBias = isQwen || attentionBias
        outputBias = !isQwen && attentionBias
        mlpBias = try r.bool("mlp_bias", default: false)
        let act = try r.string("hidden_act")
        guard act == "silu" || act == "swish" else {
            throw ModelError("\(r.context): hidden_act '\(act)' is not supported for the decoder (only silu)")
        }
        if try r.bool("use_sliding_window", default: false) {
            throw ModelError("\(r.context): use_sliding_window is true; sliding-window attention is not supported")
        }
        maxPositionEmbeddings = try r.positiveInt("max_position_embeddings")
        bosTokenID = try r.intList("bos_token_id")?.first
        eosTokenIDs = try r.intList("eos_token_id") ?? []
    }

    /// Reads `folder/config.json` of a `LlamaForCausalLM` or `Qwen2ForCausalLM`.
    public static func load(folder: String) throws -> LlamaConfig {
        let file = try ModelConfigFile(folder: folder)
        try file.require(["LlamaForCausalLM", "Qwen2ForCausalLM"])
        return try LlamaConfig(reader: file.reader)
    }

    /// A config built in code (benchmarks, tests).
    public init(family: Family = .llama, vocabSize: Int, hiddenSize: Int, intermediateSize: Int, layers: Int,
                heads: Int, kvHeads: Int? = nil, ropeTheta: Double = 10000, rmsNormEps: Float = 1e-6) {
        self.family = family
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layers = layers
        self.heads = heads
        self.kvHeads = kvHeads ?? heads
        self.headDim = hiddenSize / heads
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        tieWordEmbeddings = false
        qkvBias = family == .qwen2
        outputBias = false
        mlpBias = false
        maxPositionEmbeddings = 1 << 20
        bosTokenID = nil
        eosTokenIDs = []
    }
}
