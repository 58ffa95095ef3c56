import Foundation
import Models
import TokenCompression

/// What ToMe-SD did in one sampling run and what it saved, by the pipelines' FLOPs convention
/// (multiply-add = 2 FLOPs; linear layers, attention scores and weighted sums).
///
/// Saved FLOPs are what the merged sub-layers did not spend because they ran on `N − r` rows instead
/// of N: self-attention (Q, K, V, output projections and the n² scores and weighted sum), PixArt-α's
/// cross-attention (Q and output projections and the n·L scores and weighted sum; the caption K/V do
/// not depend on the image tokens), the MLP. The matching's own cost, the similarity matrix
/// (2 · sources · destinations · width per sample and merging block call), is counted separately and
/// added back; the norms of the metric and the averaging of merge / copies of unmerge are element-wise
/// and not counted, like the norms of the model.
public struct DiTTokenMergingReport: Sendable {
    public let settings: DiTTokenMergingSettings
    /// `compute_merge`'s decision for every block (downsample, grid, r, randomness).
    public let plan: ToMeSD.BlockPlan
    /// Why nothing merged, when nothing did.
    public let noOpReason: String?
    /// `blocks[call][layer]`: the tokens each sub-layer ran on.
    public let blocks: [[DiTMergedBlock]]
    /// FLOPs not spent by the merged sub-layers over the run, all samples of the batch.
    public let flopsSaved: Double
    /// FLOPs of the matchings' similarity matrices over the run, all samples.
    public let matchingFLOPs: Double

    /// `captionTokens`: PixArt-α's caption length L (nil for DiT, which has no cross-attention).
    init(_ merging: DiTTokenMerging, width: Int, batch: Int, captionTokens: Int?) {
        settings = merging.settings
        plan = merging.plan
        noOpReason = merging.noOpReason
        blocks = merging.blocks
        let d = Double(width)
        let attention = { (n: Int) -> Double in let n = Double(n); return 2 * n * d * d * 4 + 2 * 2 * n * n * d }
        let mlp = { (n: Int) -> Double in 2 * 2 * Double(n) * d * 4 * d }
        let cross = { (n: Int) -> Double in
            guard let l = captionTokens.map(Double.init) else { return 0 }
            let n = Double(n)
            return 2 * n * d * d * 2 + 2 * 2 * n * l * d
        }
        var saved = 0.0, matching = 0.0
        for block in blocks.joined() {
            saved += attention(block.tokens) - attention(block.attentionTokens)
            saved += cross(block.tokens) - cross(block.crossAttentionTokens)
            saved += mlp(block.tokens) - mlp(block.mlpTokens)
            matching += 2 * Double(block.similarityPairs) * d
        }
        flopsSaved = Double(batch) * saved
        matchingFLOPs = Double(batch) * matching
    }

    /// Tokens removed (`r`) from each sub-layer's input, per layer, when every call merged the same
    /// (always: the plan is per shape); nil if calls differed.
    public var mergedPerLayer: [(attention: Int, crossAttention: Int, mlp: Int)]? {
        guard let first = blocks.first, blocks.allSatisfy({ $0 == first }) else { return nil }
        return first.map { ($0.tokens - $0.attentionTokens, $0.tokens - $0.crossAttentionTokens, $0.tokens - $0.mlpTokens) }
    }
}
