import Foundation
import Tensors

/// DyCoke — Dynamic Compression of Tokens (Tao, Qin, You, Sui, Wang), two stages:
///
/// 1. **Token temporal merging (TTM)**, before the LLM: in windows of 4 frames, tokens of a later frame
///    that are nearly identical to the same spatial position of an anchor frame are dropped (the paper
///    calls it merging; the code keeps the least similar positions and drops the rest).
/// 2. **Dynamic KV-cache pruning**, at each decoding step: from the current token's attention at layer
///    L−1, choose which visual cache entries layers ≥ L attend to. Pruned entries stay in the cache and
///    can come back at a later step.
public struct DyCoke {
    public static let info = MethodInfo(
        name: "dycoke",
        displayName: "DyCoke",
        domain: .videoLLM,
        families: [.prune],
        placement: .multiple([.llmLayer(0), .decodeStep]),
        signals: [.hiddenStates, .frameLayout, .attentionProbabilities, .tokenLayout],
        needsAttentionProbabilities: true,
        paper: "DyCoke: Dynamic Compression of Tokens for Fast Video Large Language Models (CVPR 2025, arXiv 2411.15024)",
        repository: "KD-TAO/DyCoke",
        summary: "Drops temporally redundant tokens in 4-frame windows, then re-selects visual KV entries at decode steps whose attention changed."
    )

    public struct Parameters: Sendable, Equatable {
        /// N: tokens per frame (196 for LLaVA-OV after 2D pooling).
        public var tokensPerFrame: Int
        /// K (`dycoke_k`): fraction of tokens removed from a pruned frame (0.7).
        public var mergingRatio: Double
        /// L (`dycoke_l`): layers ≥ L use the selected cache entries; the selection reads layer L−1 (3).
        public var pruneLayer: Int
        /// P (`dycoke_p`): fraction of the image span pruned at decode steps (README 0.7; the lmms-eval
        /// wrapper uses 0.8).
        public var pruneRatio: Double
        /// Re-select only when cos(image attention now, previous step) is below this (hard-coded 0.9).
        public var similarityThreshold: Double

        public init(tokensPerFrame: Int = 196, mergingRatio: Double = 0.7, pruneLayer: Int = 3, pruneRatio: Double = 0.7,
                    similarityThreshold: Double = 0.9) {
            self.tokensPerFrame = tokensPerFrame
            self.mergingRatio = mergingRatio
            self.pruneLayer = pruneLayer
            self.pruneRatio = pruneRatio
            self.similarityThreshold = similarityThreshold
        }

        public func validate() throws {
            guard tokensPerFrame >= 1 else { throw CompressionError.invalidParameter("DyCoke tokens per frame \(tokensPerFrame) must be >= 1") }
            guard mergingRatio.isFinite, mergingRatio >= 0, mergingRatio <= 1 else {
                throw CompressionError.invalidBudget("DyCoke merging ratio K = \(mergingRatio) must be in [0, 1]")
            }
            guard pruneLayer >= 1 else { throw CompressionError.invalidParameter("DyCoke prune layer L = \(pruneLayer) must be >= 1 (it reads layer L−1)") }
            guard pruneRatio.isFinite, pruneRatio >= 0, pruneRatio <= 1 else {
                throw CompressionError.invalidBudget("DyCoke prune ratio P = \(pruneRatio) must be in [0, 1]")
            }
            guard similarityThreshold.isFinite else { throw CompressionError.invalidParameter("DyCoke similarity threshold \(similarityThreshold) must be finite") }
        }

        /// m = int((1 − K)·N) in float64: 1 − 0.9 = 0.09999999999999998, so K = 0.9 at N = 50 keeps 4, not 5.
        public var keptPerPrunedFrame: Int { Int((1.0 - mergingRatio) * Double(tokensPerFrame)) }

        /// int(len·(1 − P)) in float64: 30·(1 − 0.8) = 5.999999999999999 keeps 5, not 6.
        public func keptImageEntries(imageLength: Int) -> Int { Int(Double(imageLength) * (1.0 - pruneRatio)) }
    }

    // MARK: - Stage 1: token temporal merging

    public struct TemporalMerge: Sendable {
        /// Kept rows in the code's order (frames in order; inside a pruned frame by ascending similarity).
        public let x: Tensor
        /// Input index `f·N + j` of each row of `x`, same order.
        public let order: [Int]
        /// Tokens kept from each input frame (N, m, or 0 for the dropped last frame of an odd F).
        public let frameTokenCounts: [Int]
        /// Stage-1 similarities, one row per pair (j, j+1), j = 0, 2, 4, …
        public let stage1Similarity: [[Float]]
        /// Stage-2 similarities, one row per window start j = 0, 4, … < F − 4 (frame j vs j+2).
        public let stage2Similarity: [[Float]]
        public let result: CompressionResult
    }

    /// `dycole_ttm` on one video's tokens `[F·N, C]` (frame-major).
    ///
    /// Stage 1: for pairs (j, j+1), frame j+1 keeps its m positions least similar to frame j.
    /// Stage 2: for j = 0, 4, 8, … while j < F − 4, frame j+2 keeps its m positions least similar to the
    /// ORIGINAL frame j (replacing its stage-1 result, which was full). So in each window of 4, frame
    /// 4g+3 stays pruned against the unpruned 4g+2, and the last window (j ≥ F − 4) is not touched by
    /// stage 2.
    public static func temporalMerge(tokens: Tensor, parameters: Parameters = Parameters()) throws -> TemporalMerge {
        try parameters.validate()
        let n = parameters.tokensPerFrame
        guard tokens.rank == 2, tokens.rows % n == 0 else {
            throw CompressionError.shapeMismatch("DyCoke TTM tokens \(tokens.shape) are not [F·\(n), C]")
        }
        let frames = tokens.rows / n
        // The authors' TTM stacks an empty list of stage-2 similarities when F ≤ 4 and crashes; refuse.
        guard frames > 4 else {
            throw CompressionError.unsupportedSetting("DyCoke TTM needs more than 4 frames (got \(frames)); the reference code crashes (torch.stack of an empty list) for F ≤ 4")
        }
        let m = parameters.keptPerPrunedFrame
        let rows = (0..<tokens.rows).map { tokens.row($0).map(Double.init) }

        // F.cosine_similarity: dot / (max(‖a‖, 1e-8)·max(‖b‖, 1e-8)).
        func cosine(_ a: [Double], _ b: [Double]) -> Double { L2Norm.cosine(a, b, eps: 1e-8) }
        // F.normalize: x / max(‖x‖, 1e-12).
        func normalized(_ a: [Double]) -> [Double] { L2Norm.normalized(a, eps: 1e-12) }
        // topk(largest=False, sorted=True): the m least similar positions, ascending similarity.
        func leastSimilar(_ s: [Double]) -> [Int] { Selection.topK(s, m, largest: false) }

        // Per-frame local index lists; nil = frame absent from the output.
        var frameKept = [[Int]?](repeating: nil, count: frames)
        var stage1: [[Float]] = []
        for j in stride(from: 0, to: frames - 1, by: 2) {
            // Stage 1 normalises both frames first and then takes the cosine (same value up to rounding).
            let s = (0..<n).map { cosine(normalized(rows[j * n + $0]), normalized(rows[(j + 1) * n + $0])) }
            stage1.append(s.map(Float.init))
            frameKept[j] = Array(0..<n)
            frameKept[j + 1] = leastSimilar(s)
        }
        // Quirk kept: with an odd F the last frame never enters a pair and is DROPPED.
        var stage2: [[Float]] = []
        for j in stride(from: 0, to: frames - 4, by: 4) {
            let s = (0..<n).map { cosine(rows[j * n + $0], rows[(j + 2) * n + $0]) }
            stage2.append(s.map(Float.init))
            frameKept[j] = Array(0..<n)
            frameKept[j + 2] = leastSimilar(s)
        }
        var order: [Int] = []
        for (f, local) in frameKept.enumerated() { if let local { order += local.map { f * n + $0 } } }
        let x = try tokens.gatherRows(order)
        let counts = frameKept.map { $0?.count ?? 0 }
        let total = tokens.rows
        let result: CompressionResult
        if order.count == total {
            result = CompressionResult(kept: order.sorted(), requestedCount: total, achievedCount: total, positionPolicy: .renumber,
                                       noOpReason: "K = \(parameters.mergingRatio) keeps every token of the pruned frames (only their order changes)")
        } else {
            result = CompressionResult(kept: order.sorted(), requestedCount: order.count, achievedCount: order.count, positionPolicy: .renumber)
        }
        return TemporalMerge(x: x, order: order, frameTokenCounts: counts, stage1Similarity: stage1,
                             stage2Similarity: stage2, result: result)
    }

    /// The code sets `image_token_length = len(TTM output) − 1` before appending the newline token, so
    /// the last visual token (and the newline) are treated as text by the KV pruning: always kept.
    public static func imageTokenLength(afterTemporalMerge outputCount: Int) -> Int { max(0, outputCount - 1) }

    // MARK: - Stage 2: dynamic KV-cache pruning at decode steps

    /// What layers see at one decode step.
    public struct KVStep: Sendable, Equatable {
        /// Cache entries at this step (prefill + generated tokens, the current one included).
        public let cacheLength: Int
        /// cos(image attention now, image attention at the previous step); 0 at the first step.
        public let similarity: Float
        /// Whether a new selection was made at this step (similarity below the threshold).
        public let reselected: Bool
        /// Ascending cache positions layers ≥ L attend to; nil = the full cache.
        public let selectedPositions: [Int]?
        /// L: layers from here on use the selection.
        public let pruneLayer: Int

        /// Cache positions layer `layer` attends to (layers < L: always the full cache).
        public func attendedPositions(layer: Int) -> [Int] {
            if layer < pruneLayer { return Array(0..<cacheLength) }
            return selectedPositions ?? Array(0..<cacheLength)
        }

        /// Number of entries layers ≥ L attend to.
        public var attendedCount: Int { selectedPositions?.count ?? cacheLength }
    }

    /// Decode-time state (`PrunableDynamicCache` + `DycokeConfigs`): the previous step's image attention.
    ///
    /// Quirks kept:
    /// - the selection is reset at every step; a step whose image attention is stable
    ///   (cos ≥ 0.9 with the previous step) runs with the FULL cache, not with the previous selection
    ///   (the paper describes reusing the retained set);
    /// - the previous attention is always updated, even on steps without re-selection;
    /// - in the real model the state persists across samples (the first step of a sample is compared
    ///   with the last step of the previous one); create one pruner per sample, or call ``reset()``
    ///   between samples for the clean behaviour;
    /// - the full K/V stays in memory: the pruning is a per-step gather, the memory saving comes from TTM.
    public struct KVPruner: Sendable {
        public let parameters: Parameters
        /// First cache position of the visual tokens (14 for the LLaVA-OV Qwen chat template).
        public let imageStart: Int
        /// Cache positions treated as the image span (see ``DyCoke/imageTokenLength(afterTemporalMerge:)``).
        public let imageLength: Int
        public private(set) var previousImageAttention: [Float]?

        public init(imageStart: Int = 14, imageLength: Int, parameters: Parameters = Parameters()) throws {
            try parameters.validate()
            guard imageStart >= 0, imageLength >= 1 else {
                throw CompressionError.invalidParameter("DyCoke image span start \(imageStart), length \(imageLength) is invalid")
            }
            self.parameters = parameters
            self.imageStart = imageStart
            self.imageLength = imageLength
        }

        public mutating func reset() { previousImageAttention = nil }

        /// One decode step from layer L−1's attention probabilities of the current (last) query,
        /// per head: `[H, S]` with S ≥ cache length (extra columns are ignored).
        public mutating func step(attentionHeads: Tensor, cacheLength: Int) throws -> KVStep {
            guard attentionHeads.rank == 2, attentionHeads.rows >= 1, attentionHeads.columns >= cacheLength else {
                throw CompressionError.shapeMismatch("DyCoke attention must be [heads, ≥ \(cacheLength)], got \(attentionHeads.shape)")
            }
            let h = attentionHeads.rows
            var mean = [Float](repeating: 0, count: cacheLength)
            for head in 0..<h { for s in 0..<cacheLength { mean[s] += attentionHeads[head, s] } }
            return try step(attention: mean.map { $0 / Float(h) }, cacheLength: cacheLength)
        }

        /// One decode step from the head-mean attention row over the `cacheLength` cache positions.
        public mutating func step(attention: [Float], cacheLength: Int) throws -> KVStep {
            guard attention.count >= cacheLength, imageStart + imageLength <= cacheLength else {
                throw CompressionError.shapeMismatch("DyCoke image span [\(imageStart), \(imageStart + imageLength)) does not fit \(cacheLength) cache entries (attention has \(attention.count))")
            }
            let image = Array(attention[imageStart..<(imageStart + imageLength)])
            var similarity: Float = 0
            if let previous = previousImageAttention {
                guard previous.count == image.count else {
                    throw CompressionError.shapeMismatch("DyCoke previous image attention has \(previous.count) entries, now \(image.count)")
                }
                // F.cosine_similarity in float64.
                similarity = Float(L2Norm.cosine(image.map(Double.init), previous.map(Double.init), eps: 1e-8))
            }
            previousImageAttention = image
            guard Double(similarity) < parameters.similarityThreshold else {
                return KVStep(cacheLength: cacheLength, similarity: similarity, reselected: false,
                              selectedPositions: nil, pruneLayer: parameters.pruneLayer)
            }
            let keep = parameters.keptImageEntries(imageLength: imageLength)
            let top = Selection.topK(image, keep).map { $0 + imageStart }.sorted()
            let positions = Array(0..<imageStart) + top + Array((imageStart + imageLength)..<cacheLength)
            return KVStep(cacheLength: cacheLength, similarity: similarity, reselected: true,
                          selectedPositions: positions, pruneLayer: parameters.pruneLayer)
        }
    }
}
