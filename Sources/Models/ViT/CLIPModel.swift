import Foundation
import ModelIO
import Tensors

/// Zero-shot classification of a batch of images against class prompts.
public struct CLIPZeroShotResult: Sendable {
    /// `[B, classes]`: softmax over the prompts of `logitsPerImage`.
    public var probabilities: Tensor
    /// `[B, classes]`: `exp(logit_scale)` × cosine similarity (transformers' `logits_per_image`).
    public var logitsPerImage: Tensor
    /// Rows each vision block ran on, per image.
    public var trace: ViTTokenTrace
}

/// A Hugging Face `CLIPModel` folder, unchanged: the vision tower (conv patches, [CLS], positions,
/// `pre_layrnorm`, pre-LN blocks, `post_layernorm` on [CLS], `visual_projection`), the causal text
/// tower (token + position embeddings, pre-LN blocks, `final_layer_norm`, the row of the first
/// `eos_token_id`, `text_projection`) and `logit_scale`, with the folder's tokenizer.json for prompts.
///
/// The vision side reads the same weights and config as `VisionTower` (`CLIPVisionConfig`), but runs a
/// batch and takes a `ViTBlockHook`, so token methods act in CLIP as in `ViTClassifier`.
public final class CLIPModel: @unchecked Sendable {
    public let config: CLIPConfig
    public let store: WeightStore
    /// The folder's tokenizer.json (nil when it has none: prompts must then be token ids).
    public let tokenizer: Tokenizer?
    let imageEmbedding: ImageEmbedding
    let preNorm, postNorm, finalNorm: NormWeights
    let visionEncoder, textEncoder: PreNormEncoder
    let visualProjection, textProjection: LinearWeight
    let tokenEmbedding, positionEmbedding, logitScale: String

    /// Loads a `CLIPModel` folder (config.json + safetensors, tokenizer.json when present).
    public static func load(folder: String, keepConverted: Bool = false) throws -> CLIPModel {
        let config = try CLIPConfig.load(folder: folder)
        let hasTokenizer = FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent("tokenizer.json"))
        return try CLIPModel(config: config, store: try WeightStore(folder: folder, keepConverted: keepConverted),
                             tokenizer: hasTokenizer ? try Tokenizer(folder: folder) : nil)
    }

    /// Binds the model to `store` (transformers' key names), checking every shape.
    public init(config: CLIPConfig, store: WeightStore, tokenizer: Tokenizer? = nil) throws {
        self.config = config
        self.store = store
        self.tokenizer = tokenizer
        let v = config.vision, t = config.text
        let anchor = "vision_model.embeddings.patch_embedding.weight"
        guard store.contains(anchor), store.contains("text_model.embeddings.token_embedding.weight") else {
            throw ModelError("\(store.location): no CLIPModel weights (looked for '\(anchor)' and 'text_model.embeddings.token_embedding.weight')")
        }
        imageEmbedding = try ImageEmbedding(store: store, patchWeight: anchor, patchBias: nil,
                                            classTokens: ["vision_model.embeddings.class_embedding"], classTokenShape: [v.hiddenSize],
                                            positions: "vision_model.embeddings.position_embedding.weight",
                                            positionShape: [v.tokenCount, v.hiddenSize], width: v.hiddenSize,
                                            channels: v.channels, imageSize: v.imageSize, patchSize: v.patchSize)
        preNorm = try NormWeights(store: store, prefix: "vision_model.pre_layrnorm", width: v.hiddenSize, eps: v.layerNormEps)
        postNorm = try NormWeights(store: store, prefix: "vision_model.post_layernorm", width: v.hiddenSize, eps: v.layerNormEps)
        visionEncoder = try PreNormEncoder(store: store, prefix: "vision_model.", layout: .clip, layers: v.layers, width: v.hiddenSize,
                                           intermediate: v.intermediateSize, heads: v.heads, hiddenAct: v.hiddenAct,
                                           eps: v.layerNormEps, qkvBias: true, causal: false)
        tokenEmbedding = try store.checked("text_model.embeddings.token_embedding.weight", shape: [t.vocabSize, t.hiddenSize])
        positionEmbedding = try store.checked("text_model.embeddings.position_embedding.weight", shape: [t.maxPositions, t.hiddenSize])
        textEncoder = try PreNormEncoder(store: store, prefix: "text_model.", layout: .clip, layers: t.layers, width: t.hiddenSize,
                                         intermediate: t.intermediateSize, heads: t.heads, hiddenAct: t.hiddenAct,
                                         eps: t.layerNormEps, qkvBias: true, causal: true)
        finalNorm = try NormWeights(store: store, prefix: "text_model.final_layer_norm", width: t.hiddenSize, eps: t.layerNormEps)
        visualProjection = try LinearWeight(store: store, prefix: "visual_projection", out: config.projectionDim, in: v.hiddenSize, bias: false)
        textProjection = try LinearWeight(store: store, prefix: "text_projection", out: config.projectionDim, in: t.hiddenSize, bias: false)
        let scale = try store.info("logit_scale")
        guard scale.elementCount == 1 else { throw ModelError("\(store.location): 'logit_scale' has shape \(scale.shape), expected a scalar") }
        logitScale = "logit_scale"
    }

    /// Image embeddings `[B, projection_dim]` before normalisation (transformers' `get_image_features`).
    public func imageFeatures(_ pixels: Tensor, hook: ViTBlockHook? = nil) throws -> (features: Tensor, trace: ViTTokenTrace) {
        var state = try OpProfile.measure("patch embedding") { try imageEmbedding(pixels, store: store) }
        state.hidden = try preNorm(state.hidden, store: store)
        var trace = ViTTokenTrace()
        try visionEncoder.run(&state, hook: hook, protectedRows: 1, patchCount: imageEmbedding.patchCount, trace: &trace)
        let pooled = try postNorm(try state.rowOfEach(0), store: store)
        return (try visualProjection(pooled, store: store), trace)
    }

    /// Token ids of each prompt through the folder's tokenizer (with its start and end tokens).
    public func tokenize(_ prompts: [String]) throws -> [[Int]] {
        guard let tokenizer else {
            throw ModelError("\(store.location): no tokenizer.json in the folder; pass token ids to textFeatures(tokenIDs:)")
        }
        return try prompts.map { try tokenizer.encode($0) }
    }

    /// Text embeddings `[prompts, projection_dim]` before normalisation (transformers' `get_text_features`).
    public func textFeatures(_ prompts: [String]) throws -> Tensor {
        try textFeatures(tokenIDs: try tokenize(prompts))
    }

    /// Text embeddings of unpadded token-id sequences. Each runs alone under the causal mask, which is
    /// what transformers computes for the rows up to the pooled one whatever the padding.
    public func textFeatures(tokenIDs: [[Int]]) throws -> Tensor {
        let t = config.text
        guard !tokenIDs.isEmpty else { throw ModelError("CLIP text: no prompts") }
        var parts: [Tensor] = []
        for (i, ids) in tokenIDs.enumerated() {
            guard !ids.isEmpty, ids.count <= t.maxPositions else {
                throw ModelError("CLIP text: prompt \(i) has \(ids.count) tokens, the model takes 1...\(t.maxPositions) (max_position_embeddings)")
            }
            var e = try store.rows(tokenEmbedding, ids)
            try e.addInPlace(try store.rows(positionEmbedding, Array(0..<ids.count)))
            parts.append(e)
        }
        var state = StackedRows(hidden: try Tensor.concatenateRows(parts), rows: tokenIDs.map(\.count))
        var trace = ViTTokenTrace()
        try textEncoder.run(&state, hook: nil, protectedRows: 0, patchCount: 0, trace: &trace)
        let offsets = state.offsets
        let rows = zip(offsets, tokenIDs).map { $0 + Self.pooledPosition(ids: $1, eosTokenID: t.eosTokenID) }
        let pooled = try finalNorm(try state.hidden.gatherRows(rows), store: store)
        return try textProjection(pooled, store: store)
    }

    /// The row transformers pools: the first `eos_token_id` (0 when there is none, as `argmax` of an
    /// all-false mask gives), or for the legacy `eos_token_id == 2` the first largest id.
    public static func pooledPosition(ids: [Int], eosTokenID: Int) -> Int {
        if eosTokenID == 2 {
            var best = 0
            for (i, id) in ids.enumerated() where id > ids[best] { best = i }
            return best
        }
        return ids.firstIndex(of: eosTokenID) ?? 0
    }

    /// `exp(logit_scale)`.
    public func scale() throws -> Float { exp(try store.tensor(logitScale)[flat: 0]) }

    /// Zero-shot probabilities of each image over `classPrompts` (e.g. "a photo of a cat.").
    public func zeroShot(images: Tensor, classPrompts: [String], hook: ViTBlockHook? = nil) throws -> CLIPZeroShotResult {
        try zeroShot(images: images, textFeatures: try textFeatures(classPrompts), hook: hook)
    }

    /// Zero-shot against text embeddings computed once (`textFeatures`), e.g. for many batches.
    public func zeroShot(images: Tensor, textFeatures text: Tensor, hook: ViTBlockHook? = nil) throws -> CLIPZeroShotResult {
        guard text.rank == 2, text.columns == config.projectionDim, text.rows > 0 else {
            throw ModelError("CLIP zero-shot: text features have shape \(text.shape), expected [classes, \(config.projectionDim)]")
        }
        let (image, trace) = try imageFeatures(images, hook: hook)
        let logits = try Self.l2Normalized(image).matmul(Self.l2Normalized(text).transposed()).scaled(by: try scale())
        return CLIPZeroShotResult(probabilities: logits.softmaxRows(), logitsPerImage: logits, trace: trace)
    }

    /// Each row divided by its Euclidean norm.
    static func l2Normalized(_ x: Tensor) -> Tensor {
        var out = x
        let w = x.columns
        out.withUnsafeMutableBufferPointer { p in
            for r in 0..<x.rows {
                var s: Float = 0
                for j in 0..<w { s += p[r * w + j] * p[r * w + j] }
                let inv = 1 / s.squareRoot()
                for j in 0..<w { p[r * w + j] *= inv }
            }
        }
        return out
    }
}
