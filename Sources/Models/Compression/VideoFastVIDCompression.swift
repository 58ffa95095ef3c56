import Foundation
import Tensors
import TokenCompression

/// FastVID inside LLaVA-OneVision (`VideoTokenHook`): `FastVID.compress` on each video's pooled
/// rows with its two signals from SigLIP's attention-pooling (MAP) head applied, per frame, to the
/// tower's selected features after `post_layernorm`: the head's output is the frame's global
/// feature, the probe's attention over the patches (mean over heads, as `nn.MultiheadAttention`
/// returns it) bilinear-pooled like the rows is the salience. Kept rows keep their ORIGINAL
/// positions (the code's `position_ids = keep_indices`), the newline after them at its own.
///
/// The head must be in the checkpoint (`vision_tower.vision_model.head.*`, `vision_use_head`);
/// llava-hf OneVision checkpoints leave it out, and then the method is a clear error. The budget
/// is ρ (per-frame b = int(N·ρ); a count k becomes ρ = k / (F·N)).
public enum VideoFastVIDCompression {
    public static let adapter = InModelAdapter(method: "fastvid", parameters: ["segments", "tau", "context_share", "anchor_stride", "beta"],
                                               build: make)

    static func make(budget: Budget, parameters p: MethodParameters) throws -> ModelCompression {
        let base = FastVID.Parameters()
        let template = FastVID.Parameters(segmentCount: try p.int("segments", default: base.segmentCount),
                                          segmentThreshold: try p.double("tau", default: base.segmentThreshold),
                                          contextShare: try p.double("context_share", default: base.contextShare),
                                          anchorStride: try p.int("anchor_stride", default: base.anchorStride),
                                          anchorWeight: try p.double("beta", default: base.anchorWeight))
        try template.validate()
        let hook = FastVIDHook(budget: budget) { video, target in
            guard let signals = video.poolingHead else {
                throw ModelError("fastvid: the model passed no pooling-head signals for video \(video.index)")
            }
            var parameters = template
            if case .ratio(let r) = budget { parameters.retentionRatio = r } else {
                parameters.retentionRatio = Double(target) / Double(video.layout.frameTokens)
            }
            let r = try FastVID.compress(videoTokens: video.tokens, frames: video.layout.frames, salience: signals.salience,
                                         globalFeatures: signals.global, parameters: parameters)
            return VideoChoice(rows: r.tokens, sources: r.compression.kept, policy: .keepOriginal, requested: r.compression.requestedCount,
                               notes: ["fastvid: video \(video.index) segments \(r.segmentSizes.map(String.init).joined(separator: " ")), \(r.salient.count) salient + \(r.context.count) anchor rows"])
        }
        return ModelCompression(info: FastVID.info, budget: budget, hook: hook)
    }
}

/// FastVID's hook: the shared video bookkeeping, asking the model for the pooling head's signals.
final class FastVIDHook: VideoCompressionHook {
    init(budget: Budget, choose: @escaping Choose) {
        super.init(method: "fastvid", policy: .keepOriginal, budget: budget, choose: choose)
    }

    override var wantsPoolingHeadSignals: Bool { true }
}

/// SigLIP's multi-head attention pooling head (`SiglipMultiheadAttentionPoolingHead`) after the
/// tower's `post_layernorm`: a learned probe attends over the patches (`nn.MultiheadAttention`),
/// then LayerNorm and the MLP with a residual.
struct SigLIPPoolingHead {
    let store: WeightStore
    let prefix: String
    let postNorm: (String, String)?
    let width: Int, heads: Int, eps: Float
    let act: Activation

    init(model: LlavaModel) throws {
        let store = model.store
        let roots = ["model.vision_tower.vision_model.", "model.vision_tower.", "vision_tower.vision_model.", "vision_tower."]
        guard let root = roots.first(where: { store.contains($0 + "head.probe") }) else {
            throw ModelError("fastvid needs SigLIP's attention-pooling head ('vision_tower.vision_model.head.*', vision_use_head); \(store.location) has none (llava-hf OneVision checkpoints leave it out)")
        }
        let v = model.config.vision
        guard let act = Activation(name: v.hiddenAct) else { throw ModelError("vision hidden_act '\(v.hiddenAct)' is not supported") }
        self.store = store
        prefix = root + "head."
        postNorm = store.contains(root + "post_layernorm.weight") ? (root + "post_layernorm.weight", root + "post_layernorm.bias") : nil
        width = v.hiddenSize
        heads = v.heads
        eps = v.layerNormEps
        self.act = act
        guard try store.info(prefix + "attention.in_proj_weight").shape == [3 * width, width] else {
            throw ModelError("\(store.location): '\(prefix)attention.in_proj_weight' is not [\(3 * width), \(width)]")
        }
    }

    private func t(_ name: String) throws -> Tensor { try store.tensor(prefix + name, alwaysCache: true) }

    /// Global features `[F, D]` and pooled salience `[F, pooledSide²]` of the frames' features.
    func signals(frames: [Tensor], pooledSide: Int) throws -> PoolingHeadSignals {
        var global: [Tensor] = [], salience: [Tensor] = []
        for f in frames {
            let (g, a) = try callAsFunction(f)
            global.append(g)
            let side = Int(Double(f.rows).squareRoot().rounded())
            guard side * side == f.rows else { throw ModelError("fastvid: \(f.rows) patch rows are not a square grid") }
            salience.append(try LlavaModel.bilinearResize(try a.reshaped([f.rows, 1]), height: side, width: side,
                                                          toHeight: pooledSide, toWidth: pooledSide).reshaped([1, pooledSide * pooledSide]))
        }
        return PoolingHeadSignals(global: try Tensor.concatenateRows(global), salience: try Tensor.concatenateRows(salience))
    }

    /// One frame: the head's output `[1, D]` and the probe's head-mean attention over the patches `[N]`.
    func callAsFunction(_ features: Tensor) throws -> (Tensor, Tensor) {
        let d = width, n = features.rows, h = heads, dh = d / h
        var x = features
        if let postNorm {
            x = try x.layerNorm(weight: try store.tensor(postNorm.0, alwaysCache: true), bias: try store.tensor(postNorm.1, alwaysCache: true), eps: eps)
        }
        let w = try t("attention.in_proj_weight"), b = try t("attention.in_proj_bias")
        let wq = try w.rows(0..<d), wk = try w.rows(d..<(2 * d)), wv = try w.rows((2 * d)..<(3 * d))
        let bq = try b.reshaped([3 * d]).values
        let probe = try t("probe").reshaped([1, d])
        let q = try probe.linear(weight: wq, bias: try Tensor(shape: [d], values: Array(bq[0..<d])))
        let k = try x.linear(weight: wk, bias: try Tensor(shape: [d], values: Array(bq[d..<(2 * d)])))
        let v = try x.linear(weight: wv, bias: try Tensor(shape: [d], values: Array(bq[(2 * d)..<(3 * d)])))
        var context = [Float](repeating: 0, count: d)
        var salience = [Float](repeating: 0, count: n)
        let scale = 1 / Float(dh).squareRoot()
        for head in 0..<h {
            var logits = [Float](repeating: 0, count: n)
            for j in 0..<n {
                var dot: Float = 0
                for c in 0..<dh { dot += q[0, head * dh + c] * k[j, head * dh + c] }
                logits[j] = dot * scale
            }
            let top = logits.max() ?? 0
            let e = logits.map { Foundation.exp($0 - top) }
            let sum = e.reduce(0, +)
            for j in 0..<n {
                let p = e[j] / sum
                salience[j] += p / Float(h)
                for c in 0..<dh { context[head * dh + c] += p * v[j, head * dh + c] }
            }
        }
        var out = try Tensor(shape: [1, d], values: context).linear(weight: try t("attention.out_proj.weight"), bias: try t("attention.out_proj.bias"))
        let y = try out.layerNorm(weight: try t("layernorm.weight"), bias: try t("layernorm.bias"), eps: eps)
        let hidden = try y.linear(weight: try t("mlp.fc1.weight"), bias: try t("mlp.fc1.bias")).activated(act)
        try out.addInPlace(try hidden.linear(weight: try t("mlp.fc2.weight"), bias: try t("mlp.fc2.bias")))
        return (out, try Tensor(shape: [n], values: salience))
    }
}
