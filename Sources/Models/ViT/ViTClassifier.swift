import Foundation
import ModelIO
import Tensors

/// What a classifier forward pass returns.
public struct ViTClassifierOutput: Sendable {
    /// `[B, classes]` (DeiT with teacher: the mean of the two heads).
    public var logits: Tensor
    /// DeiT with teacher: the [CLS] head and the distillation head, `[B, classes]` each.
    public var clsLogits: Tensor?
    public var distillationLogits: Tensor?
    /// Rows each block ran on, per image.
    public var trace: ViTTokenTrace
    /// `[B, hidden]`: the [CLS] rows after the final layer norm, what the ([CLS]) head reads (a method
    /// that brings its own head, such as Sparse-Tuning's, reads them too).
    public var classFeatures: Tensor
}

/// An image classifier from a Hugging Face folder, unchanged: `ViTForImageClassification`
/// (google/vit-base-patch16-224 layout), `DeiTForImageClassification` and
/// `DeiTForImageClassificationWithTeacher` ([CLS] + distillation token, two heads averaged).
///
/// Pre-LN blocks (`layernorm_before`, attention, residual, `layernorm_after`, MLP, residual), a
/// final `layernorm`, heads on the class-token rows. Runs a batch `[B, 3, H, W]` at the fixed
/// `image_size` (no position-embedding interpolation); token methods plug in through `ViTBlockHook`.
public final class ViTClassifier: @unchecked Sendable {
    public let config: ViTClassifierConfig
    public let store: WeightStore
    /// Number of classes (rows of the classifier weight).
    public let classCount: Int
    let embedding: ImageEmbedding
    let encoder: PreNormEncoder
    let finalNorm: NormWeights
    /// One head ([CLS]) or two ([CLS], distillation).
    let heads: [LinearWeight]

    /// Loads a ViT or DeiT image-classification folder (config.json + safetensors, F32/F16/BF16).
    public static func load(folder: String, keepConverted: Bool = false) throws -> ViTClassifier {
        let config = try ViTClassifierConfig.load(folder: folder)
        return try ViTClassifier(config: config, store: try WeightStore(folder: folder, keepConverted: keepConverted))
    }

    /// Binds the model to `store` (Hub key names), checking every shape.
    public init(config: ViTClassifierConfig, store: WeightStore) throws {
        self.config = config
        self.store = store
        let p = config.backbonePrefix, d = config.hiddenSize
        let anchor = p + "embeddings.patch_embeddings.projection.weight"
        guard store.contains(anchor) else {
            throw ModelError("\(store.location): no \(config.modelType.uppercased()) weights (looked for '\(anchor)')")
        }
        var specials = [p + "embeddings.cls_token"]
        if config.head != .vit { specials.append(p + "embeddings.distillation_token") }
        embedding = try ImageEmbedding(store: store, patchWeight: anchor, patchBias: p + "embeddings.patch_embeddings.projection.bias",
                                       classTokens: specials, classTokenShape: [1, 1, d],
                                       positions: p + "embeddings.position_embeddings", positionShape: [1, config.tokenCount, d],
                                       width: d, channels: config.channels, imageSize: config.imageSize, patchSize: config.patchSize)
        encoder = try PreNormEncoder(store: store, prefix: p, layout: .vit, layers: config.layers, width: d,
                                     intermediate: config.intermediateSize, heads: config.heads, hiddenAct: config.hiddenAct,
                                     eps: config.layerNormEps, qkvBias: config.qkvBias, causal: false)
        finalNorm = try NormWeights(store: store, prefix: p + "layernorm", width: d, eps: config.layerNormEps)
        let headNames = config.head == .deitWithTeacher ? ["cls_classifier", "distillation_classifier"] : ["classifier"]
        let first = try store.info(headNames[0] + ".weight")
        guard first.shape.count == 2, first.shape[1] == d, first.shape[0] > 0 else {
            throw ModelError("\(store.location): '\(headNames[0]).weight' has shape \(first.shape), expected [classes, \(d)]")
        }
        let classes = first.shape[0]
        if !config.labels.isEmpty && config.labels.count != classes {
            throw ModelError("\(store.location): the classifier has \(classes) classes, id2label names \(config.labels.count)")
        }
        classCount = classes
        heads = try headNames.map { try LinearWeight(store: store, prefix: $0, out: classes, in: d, bias: true) }
    }

    /// Class names in class order (`id2label`), empty when the config has none.
    public var labels: [String] { config.labels }

    /// Logits for a batch of preprocessed images `[B, channels, image_size, image_size]`.
    /// - Parameter hook: a token method inside the blocks (nil: the model as published).
    public func forward(_ pixels: Tensor, hook: ViTBlockHook? = nil) throws -> ViTClassifierOutput {
        var state = try OpProfile.measure("patch embedding") { try embedding(pixels, store: store) }
        var trace = ViTTokenTrace()
        try encoder.run(&state, hook: hook, protectedRows: config.specialTokens, patchCount: config.patchCount, trace: &trace)
        // The final layer norm is per row: only the rows the heads read are normalised.
        let features = try finalNorm(try state.rowOfEach(0), store: store)
        let cls = try heads[0](features, store: store)
        guard heads.count == 2 else { return ViTClassifierOutput(logits: cls, trace: trace, classFeatures: features) }
        let dist = try heads[1](try finalNorm(try state.rowOfEach(1), store: store), store: store)
        let mean = try (cls + dist).scaled(by: 0.5)
        return ViTClassifierOutput(logits: mean, clsLogits: cls, distillationLogits: dist, trace: trace, classFeatures: features)
    }
}
