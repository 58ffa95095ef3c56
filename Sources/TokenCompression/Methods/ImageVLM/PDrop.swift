import Foundation
import Tensors

/// PyramidDrop: drop visual tokens in stages, keeping a shrinking share of the ORIGINAL count.
///
/// At each stage boundary (after LLM layer `layerList[b] − 1`) the current visual tokens are
/// ranked by the head-mean attention they receive from the last prompt token, computed with the
/// NEXT layer's input RMSNorm, q/k projections and RoPE on the boundary hidden states (not the
/// attention the previous layer already computed, unlike FastV). The top `int(N0·ratios[b+1])`
/// stay, in original order; positions are renumbered contiguously. One explicit attention row
/// per head, so it runs next to a fused attention kernel.
public struct PDrop: Sendable {
    public static let info = MethodInfo(
        name: "pdrop", displayName: "PyramidDrop", domain: .imageVLM, families: [.prune],
        placement: .llmLayers([8, 16, 24]),
        signals: [.hiddenStates, .queries, .keys, .tokenLayout], needsAttentionProbabilities: false,
        paper: "PyramidDrop: Accelerating Your Large Vision-Language Models via Pyramid Visual Redundancy Reduction (CVPR 2025, arXiv 2410.17247)",
        repository: "Cooperx521/PyramidDrop",
        summary: "Multi-stage top-k by last-token attention of the next layer; keeps int(N0·λ^b) visual tokens, positions renumbered")

    public struct Parameters: Sendable, Equatable {
        /// `rank_layer` of each boundary: the drop happens after layer `rank_layer − 1` using layer
        /// `rank_layer`'s norm / q / k / RoPE.
        public var layerList: [Int] = [8, 16, 24]
        /// Share of the ORIGINAL visual count kept after each boundary (λ, λ², λ³ with λ = 0.5).
        public var ratios: [Double] = [0.5, 0.25, 0.125]

        public init(layerList: [Int] = [8, 16, 24], ratios: [Double] = [0.5, 0.25, 0.125]) {
            self.layerList = layerList
            self.ratios = ratios
        }

        public func validate() throws {
            guard layerList.count == ratios.count, !layerList.isEmpty else {
                throw CompressionError.invalidParameter("PDrop needs one ratio per boundary layer: layers \(layerList), ratios \(ratios)")
            }
            guard layerList.first! >= 1, zip(layerList, layerList.dropFirst()).allSatisfy({ $0 < $1 }) else {
                throw CompressionError.invalidParameter("PDrop layer list \(layerList) must be increasing and ≥ 1")
            }
            guard ratios.allSatisfy({ $0.isFinite && $0 >= 0 && $0 <= 1 }),
                  zip([1.0] + ratios, ratios).allSatisfy({ $0 >= $1 }) else {
                throw CompressionError.invalidBudget("PDrop ratios \(ratios) must lie in [0, 1] and not increase")
            }
        }

        /// `[1.0] + ratios`, the list the code indexes (stage b keeps `all[b+1]` of N0).
        public var ratiosWithOne: [Double] { [1.0] + ratios }

        /// Visual tokens present in stage `b`'s input (`b = 0` is the original count).
        /// Quirk reproduced: `int(N0 * ratio)`, a float64 product then truncation, from the
        /// ORIGINAL count (int(100·0.57) = 56, int(100·0.29) = 28), never from the current length.
        public func visualCount(original n0: Int, beforeStage b: Int) -> Int {
            Int(Double(n0) * ratiosWithOne[b])
        }

        /// Visual tokens entering each of `layers` LLM layers.
        public func schedule(layers: Int, original n0: Int) -> TokenSchedule {
            TokenSchedule(tokensPerLayer: (0..<layers).map { l in
                visualCount(original: n0, beforeStage: layerList.filter { $0 <= l }.count)
            })
        }
    }

    /// The span facts PDrop reads: where the image starts, how many non-image prompt tokens
    /// there are (`prompt_len`), and the original visual count N0.
    public struct Layout: Sendable, Equatable {
        public var imageStart: Int
        /// Non-image prompt tokens (system + text), constant across stages.
        public var promptLength: Int
        /// Visual tokens before the first stage.
        public var originalImageCount: Int

        public init(imageStart: Int, promptLength: Int, originalImageCount: Int) throws {
            guard imageStart >= 0, promptLength > imageStart, originalImageCount >= 0 else {
                throw CompressionError.invalidParameter("PDrop layout: image start \(imageStart), prompt length \(promptLength) (needs a text token after the image), N0 \(originalImageCount)")
            }
            self.imageStart = imageStart
            self.promptLength = promptLength
            self.originalImageCount = originalImageCount
        }
    }

    /// The ranking layer's weights (layer `layerList[b]`).
    public struct LayerWeights: Sendable {
        public var inputNormWeight: Tensor
        public var rmsNormEps: Float
        /// `[heads·headDim, d]`, PyTorch layout (`x · Wᵀ`).
        public var qProj: Tensor
        /// `[heads·headDim, d]` (no GQA in the reference's ranking: kv heads = heads).
        public var kProj: Tensor
        public var heads: Int
        public var rope: RotaryEmbedding

        public init(inputNormWeight: Tensor, rmsNormEps: Float, qProj: Tensor, kProj: Tensor, heads: Int, rope: RotaryEmbedding) {
            self.inputNormWeight = inputNormWeight
            self.rmsNormEps = rmsNormEps
            self.qProj = qProj
            self.kProj = kProj
            self.heads = heads
            self.rope = rope
        }
    }

    public struct StageResult: Sendable {
        /// Kept indices into this stage's input sequence; positions are renumbered.
        public var compression: CompressionResult
        /// Score of each current visual token (relative to the image start).
        public var scores: [Float]
        /// Kept visual tokens, ascending, relative to the image start.
        public var keptImage: [Int]
        public var newImageCount: Int
        /// Row used as the query: `prompt_len + cur − 1`, the last prompt token.
        public var queryIndex: Int
        /// `0..<kept.count`.
        public var positionIds: [Int]
        /// Stage input hidden states gathered at the kept rows (un-normalised).
        public var hidden: Tensor
    }

    public var parameters: Parameters
    public init(_ parameters: Parameters = Parameters()) throws {
        try parameters.validate()
        self.parameters = parameters
    }

    /// Head-mean attention of one query over all keys, restricted to `imageRange`.
    /// - Parameters:
    ///   - query: `[heads, headDim]` after RoPE.
    ///   - keys: `[heads, n, headDim]` after RoPE (or `[n, heads·headDim]` with `heads` given).
    /// Softmax over ALL n keys (the causal mask adds 0 on the last row); the image scores are
    /// not renormalised.
    public static func lastQueryScores(query: Tensor, keys: Tensor, imageRange: Range<Int>) throws -> [Float] {
        guard query.rank == 2, keys.rank == 3, keys.shape[0] == query.shape[0], keys.shape[2] == query.shape[1] else {
            throw CompressionError.shapeMismatch("PDrop query \(query.shape) vs keys \(keys.shape), expected [H, hd] and [H, n, hd]")
        }
        let heads = keys.shape[0], n = keys.shape[1], hd = keys.shape[2]
        guard imageRange.lowerBound >= 0, imageRange.upperBound <= n else {
            throw CompressionError.shapeMismatch("PDrop image range \(imageRange) outside \(n) keys")
        }
        let scale = 1 / Float(hd).squareRoot()
        var mean = [Float](repeating: 0, count: imageRange.count)
        query.withUnsafeBufferPointer { q in
            keys.withUnsafeBufferPointer { k in
                var logits = [Float](repeating: 0, count: n)
                for h in 0..<heads {
                    for j in 0..<n {
                        var dot: Float = 0
                        for t in 0..<hd { dot += q[h * hd + t] * k[(h * n + j) * hd + t] }
                        logits[j] = dot * scale
                    }
                    logits.withUnsafeMutableBufferPointer { softmaxInPlace($0.baseAddress!, count: n) }
                    for (i, j) in imageRange.enumerated() { mean[i] += logits[j] }
                }
            }
        }
        return mean.map { $0 / Float(heads) }
    }

    /// One stage boundary `b` (0-based): rank the current visual tokens and drop the rest.
    /// - Parameters:
    ///   - hidden: `[n, d]` output of layer `layerList[b] − 1`, whole current sequence.
    ///   - positionIds: current position ids (contiguous after earlier stages).
    public func stage(_ b: Int, hidden: Tensor, positionIds: [Int], layout: Layout, weights: LayerWeights) throws -> StageResult {
        guard b >= 0, b < parameters.ratios.count else {
            throw CompressionError.invalidParameter("PDrop stage \(b) outside 0..<\(parameters.ratios.count)")
        }
        let current = parameters.visualCount(original: layout.originalImageCount, beforeStage: b)
        let keep = parameters.visualCount(original: layout.originalImageCount, beforeStage: b + 1)
        let n = hidden.rows
        guard hidden.rank == 2, n == layout.promptLength + current, positionIds.count == n else {
            throw CompressionError.shapeMismatch("PDrop stage \(b): hidden \(hidden.shape) and \(positionIds.count) positions, expected \(layout.promptLength) prompt + \(current) visual tokens")
        }
        let hd = weights.rope.headDim, width = weights.heads * hd
        guard weights.qProj.shape == [width, hidden.columns], weights.kProj.shape == [width, hidden.columns] else {
            throw CompressionError.shapeMismatch("PDrop q/k projections \(weights.qProj.shape), \(weights.kProj.shape) for \(weights.heads)×\(hd) heads and width \(hidden.columns)")
        }
        let queryIndex = layout.promptLength + current - 1
        let imageRange = layout.imageStart..<(layout.imageStart + current)
        if keep >= current {
            return StageResult(compression: .noOp(tokenCount: n, touched: current, requested: keep, policy: .renumber,
                                                  reason: "PDrop stage \(b) keeps \(keep) ≥ \(current) visual tokens"),
                               scores: [], keptImage: Array(0..<current), newImageCount: current,
                               queryIndex: queryIndex, positionIds: Array(0..<n), hidden: hidden)
        }
        // RMSNorm → q (last row only) and k (all rows) → RoPE at the current positions.
        let x = try hidden.rmsNorm(weight: weights.inputNormWeight, eps: weights.rmsNormEps)
        let q = try weights.rope.apply(try x.gatherRows([queryIndex]).linear(weight: weights.qProj), positions: [positionIds[queryIndex]])
        let k = try weights.rope.apply(try x.linear(weight: weights.kProj), positions: positionIds)
        let keysByHead = try k.splittingHeads(weights.heads)
        let scores = try Self.lastQueryScores(query: try q.reshaped([weights.heads, hd]), keys: keysByHead, imageRange: imageRange)

        let keptImage = Selection.topK(scores, keep).sorted()
        let kept = Array(0..<layout.imageStart) + keptImage.map { $0 + layout.imageStart } + Array(imageRange.upperBound..<n)
        return StageResult(
            compression: CompressionResult(kept: kept, requestedCount: keep, achievedCount: keep, positionPolicy: .renumber),
            scores: scores, keptImage: keptImage, newImageCount: keep, queryIndex: queryIndex,
            positionIds: Array(0..<kept.count), hidden: try hidden.gatherRows(kept))
    }
}
