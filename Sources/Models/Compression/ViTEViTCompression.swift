import Foundation
import Tensors
import TokenCompression

/// EViT inside a ViT (`evit.py`): at its pruning blocks, between attention and MLP, `EViT.reorganize`
/// keeps the tokens the [CLS] row attends to most (head mean of the block's own softmax row, recorded
/// for row 0 only) and fuses the rest into one token appended last.
///
/// Parameters: `keep_rate` (default 0.7), `blocks` (default 3, 6, 9 scaled to the depth:
/// `EViT.pruningBlocks`), `fuse` (default true). DeiT's distillation token stays second and is not a
/// candidate (the authors' code, written for [CLS] alone, would score it as a patch; the model's second
/// head needs it), so the rule runs on [CLS] and the patches.
public enum ViTEViTCompression {
    public static let adapter = ViTAdapter(method: "evit", parameters: ["keep_rate", "blocks", "fuse"],
                                           sweep: ViTSweep(parameter: "keep_rate", values: ["0.9", "0.7", "0.5"]), build: build)

    static func build(_ p: MethodParameters, _ shape: ViTModelShape) throws -> ViTCompression {
        let keep = try ViTAdapterParameters.keepRate(p, default: EViT.Parameters().keepRate)
        let blocks = try ViTAdapterParameters.blocks(p, shape: shape, default: EViT.pruningBlocks(depth: shape.layers))
        let parameters = EViT.Parameters(keepRate: keep, fuseToken: try p.bool("fuse", default: true))
        var setting = "keep_rate=\(ViTAdapterParameters.rateText(keep))"
        if p.has("blocks") { setting += " blocks=\(blocks.map(String.init).joined(separator: ","))" }
        if !parameters.fuseToken { setting += " no-fuse" }
        let hook = try EViTViTHook(method: "evit", shape: shape, blocks: blocks, parameters: parameters)
        return ViTCompression(info: EViT.info, shape: shape, setting: setting, hook: hook)
    }
}

/// EViT's reorganisation at its blocks, per image, with the source map (a fused token holds every
/// patch it absorbed). Sparse-Tuning subclasses it for its adapters.
class EViTViTHook: ViTMethodHook {
    let blocks: Set<Int>
    let parameters: EViT.Parameters

    init(method: String, shape: ViTModelShape, blocks: [Int], parameters: EViT.Parameters) throws {
        try parameters.validate()
        guard shape.classTokens >= 1, shape.classTokens <= 2 else {
            throw ModelCompressionError.invalidParameter("\(method): needs a [CLS] token (and at most a distillation token); the model has \(shape.classTokens) class tokens")
        }
        self.blocks = Set(blocks)
        self.parameters = parameters
        super.init(method: method, shape: shape)
        if blocks.isEmpty { startNotes.append("no pruning block in a \(shape.layers)-block model; runs uncompressed") }
    }

    override func attentionRecord(block: Int) -> AttentionRecord { blocks.contains(block) ? .probabilities(rows: [0]) : .none }

    override func afterAttention(_ step: ViTBlockStep) throws -> ViTTokenUpdate? {
        guard blocks.contains(step.block) else { return nil }
        let n = step.hidden.rows, heads = step.heads
        guard let recorded = step.attention, recorded.rows == [0], recorded.values.shape == [heads, 1, n] else {
            throw ModelError("\(method): block \(step.block) did not record the [CLS] attention row it asked for")
        }
        let start = scoringStart()
        let mean = try EViT.headMeanClsAttention(try recorded.values.reshaped([heads, n]))
        // Rows the rule sees: [CLS, candidates…]; DeiT's distillation token (row 1) stays out and in place.
        let distilled = step.protectedRows == 2
        let seen = distilled ? [0] + Array(2..<n) : Array(0..<n)
        let x = distilled ? try step.hidden.gatherRows(seen) : step.hidden
        let attention = distilled ? Array(mean.dropFirst()) : mean
        let r = try EViT.reorganize(x: x, clsAttention: attention, parameters: parameters)
        addScoringTime(since: start)
        if distilled { noteOnce("the distillation token is kept second and is not scored (the authors' code assumes [CLS] alone)") }
        guard !r.dropped.isEmpty || r.hasFusedToken else {
            if step.image == 0, let why = r.result.noOpReason { noteOnce("block \(step.block): \(why); no-op") }
            return nil
        }
        // The source map follows the rows: kept rows keep theirs, the fused row holds all it absorbed.
        let old = sources[step.image]
        var newSources = [old[0]]
        if distilled { newSources.append(old[1]) }
        newSources += r.keptOrder.map { old[seen[$0]] }
        if r.hasFusedToken { newSources.append(r.dropped.flatMap { old[seen[$0]] }.sorted()) }
        sources[step.image] = newSources
        var rows = r.x
        if distilled {
            rows = try Tensor.concatenateRows([try r.x.rows(0..<1), try step.hidden.rows(1..<2), try r.x.rows(1..<r.x.rows)])
        }
        recordRows(rows.rows, image: step.image)
        return ViTTokenUpdate(hidden: rows, sizes: nil)
    }
}
