import Foundation
import Tensors

/// FrameFusion: merge video tokens that repeat the same patch of the previous frame, layer after layer during
/// prefill, then prune the rest by last-query attention once merging stops, under a FLOPs budget.
///
/// Mirrors one `FrameFusion` object of `thu-nics/FrameFusion` (`framefusion/main.py`) as the patched Qwen2
/// decoder layers drive it: layer 0 calls it before and after attention, later layers after attention. The
/// state carried between calls (`State`) is the patch type of each token, the recorded sparsities and two flags.
/// Batch size 1 only, as in the code. Survivors keep their original RoPE positions.
public struct FrameFusion {
    public static let info = MethodInfo(
        name: "framefusion", displayName: "FrameFusion", domain: .videoLLM, families: [.merge, .prune],
        placement: .llmLayers([0]),
        signals: [.hiddenStates, .frameLayout, .attentionProbabilities],
        needsAttentionProbabilities: true,
        paper: "FrameFusion: Combining Similarity and Importance for Video Token Reduction on Large Vision Language Models (ICCV 2025, arXiv 2501.01986)",
        repository: "thu-nics/FrameFusion",
        summary: "Average runs of same-patch tokens that stay similar across frames, then keep the video tokens the last query attends to, within a FLOPs budget.")

    public struct Parameters: Sendable, Equatable {
        /// FLOPs budget as a fraction of the unreduced LLM.
        public var cost: Double = 0.3
        /// S_th: a token merges into the same patch of the previous frame when their cosine is ≥ S_th.
        public var similarityLowerBound: Double = 0.6
        /// Merging stops after a call whose candidate fraction is below this.
        public var ratioLowerBound: Double = 0.1
        /// Layers of the budget recursion: hard-coded 28 in `_compute_pruning_ratio`, whatever the model depth.
        public var budgetLayers: Int = 28

        public init(cost: Double = 0.3, similarityLowerBound: Double = 0.6, ratioLowerBound: Double = 0.1, budgetLayers: Int = 28) {
            self.cost = cost
            self.similarityLowerBound = similarityLowerBound
            self.ratioLowerBound = ratioLowerBound
            self.budgetLayers = budgetLayers
        }

        public func validate() throws {
            guard cost.isFinite, cost > 0, cost <= 1 else { throw CompressionError.invalidBudget("FrameFusion cost \(cost) must be in (0, 1]") }
            guard similarityLowerBound.isFinite, similarityLowerBound >= -1, similarityLowerBound <= 1 else {
                throw CompressionError.invalidParameter("FrameFusion similarityLowerBound \(similarityLowerBound) must be in [-1, 1]")
            }
            guard ratioLowerBound.isFinite, ratioLowerBound >= 0, ratioLowerBound <= 1 else {
                throw CompressionError.invalidParameter("FrameFusion ratioLowerBound \(ratioLowerBound) must be in [0, 1]")
            }
            guard budgetLayers >= 1 else { throw CompressionError.invalidParameter("FrameFusion budgetLayers \(budgetLayers) must be ≥ 1") }
        }
    }

    /// What one prefill carries from call to call.
    public struct State: Sendable, Equatable {
        /// Per current token: −1 for text, else its slot inside its frame (newline slots included).
        public var patchType: [Int]
        /// Slots per frame (LLaVA-Video grid: rows × (columns + 1)).
        public var patchCount: Int
        /// First video token; text before it is never touched, so this never moves.
        public var imageStart: Int
        /// Video tokens of the ORIGINAL sequence.
        public var imageLength: Int
        /// Length of the ORIGINAL sequence; every removed token was a video token.
        public var originalLength: Int
        /// Candidate fractions recorded by earlier merge calls (one budget "layer" each).
        public var sparsityList: [Double] = []
        public var finishMerging = false
        public var finishPruning = false
        /// Original position of each current token (what the sliced RoPE cos/sin encode).
        public var positions: [Int]

        /// Fresh state for a prefill, from the original sequence's patch types.
        public init(patchType: [Int], patchCount: Int) throws {
            guard let first = patchType.firstIndex(where: { $0 != -1 }) else {
                throw CompressionError.missingSignal("FrameFusion: no video token in the patch types")
            }
            try self.init(patchType: patchType, patchCount: patchCount, imageStart: first,
                          imageLength: patchType.filter { $0 != -1 }.count, originalLength: patchType.count)
        }

        public init(patchType: [Int], patchCount: Int, imageStart: Int, imageLength: Int, originalLength: Int,
                    sparsityList: [Double] = [], finishMerging: Bool = false, finishPruning: Bool = false,
                    positions: [Int]? = nil) throws {
            guard patchCount >= 0, imageStart >= 0, imageLength >= 0, imageStart + imageLength <= originalLength else {
                throw CompressionError.shapeMismatch("FrameFusion: video span [\(imageStart), \(imageStart + imageLength)) does not fit \(originalLength) tokens")
            }
            self.patchType = patchType
            self.patchCount = patchCount
            self.imageStart = imageStart
            self.imageLength = imageLength
            self.originalLength = originalLength
            self.sparsityList = sparsityList
            self.finishMerging = finishMerging
            self.finishPruning = finishPruning
            self.positions = positions ?? Array(0..<originalLength)
        }
    }

    /// Intermediates of a merging call.
    public struct MergeInfo: Sendable {
        /// Needed sparsity for this call (the budget controller's upper bound).
        public var neededSparsity: Double
        /// cos(token, previous token of the same patch type) in patch order; −2 for each patch's first token.
        public var similarityByPatch: [Float]
        /// Sequence index of each video token in patch order (by patch type, then position).
        public var tokenIndexByPatch: [Int]
    }

    /// Intermediates of a pruning call.
    public struct PruneInfo: Sendable {
        public var pruningRatio: Double
        /// Head-mean last-query attention on the current video block.
        public var importance: [Float]
    }

    /// One `FrameFusion.forward` call.
    public struct CallResult: Sendable {
        public var hiddenStates: Tensor
        /// Indices into this call's input that survive (ascending), and the reduction facts.
        public var compression: CompressionResult
        public var merge: MergeInfo?
        public var prune: PruneInfo?
    }

    /// `_compute_pruning_ratio`: with recorded sparsities s_1..s_m, P_i = Π_{j≤i}(1−s_j),
    /// remaining = L·cost − Σ P_i, p = 1 − remaining/((L−m)·P_m), or 0 when that quotient exceeds 1.
    public static func neededSparsity(_ sparsities: [Double], cost: Double, layers: Int = 28) throws -> Double {
        var s = 1.0, total = 0.0
        for v in sparsities { s *= 1 - v; total += s }
        let remaining = Double(layers) * cost - total
        guard remaining >= 0 else { throw CompressionError.invalidBudget("FrameFusion: cost \(cost) is too small for the sparsities already recorded \(sparsities)") }
        guard layers > sparsities.count else {
            throw CompressionError.invalidBudget("FrameFusion: \(sparsities.count) recorded sparsities exhaust the \(layers) budget layers")
        }
        let quotient = remaining / (Double(layers - sparsities.count) * s)
        return quotient > 1 ? 0 : 1 - quotient
    }

    /// One call. `attentionLastRow` ([H, S], the last query's attention over the current keys) is needed only
    /// when merging has finished and pruning has not; a single-token call (decoding) does nothing.
    public static func call(hiddenStates: Tensor, attentionLastRow: Tensor? = nil, state: inout State,
                            parameters: Parameters = Parameters()) throws -> CallResult {
        try parameters.validate()
        let S = hiddenStates.rows, Cw = hiddenStates.columns
        guard state.positions.count == S else {
            throw CompressionError.shapeMismatch("FrameFusion: \(S) hidden states, but the state tracks \(state.positions.count) tokens")
        }
        var hidden = hiddenStates
        var kept = Array(0..<S)
        var mergeInfo: MergeInfo? = nil, pruneInfo: PruneInfo? = nil
        guard S > 1 else {
            return CallResult(hiddenStates: hidden, compression: .noOp(tokenCount: S, requested: S, policy: .keepOriginal,
                                                                      reason: "single-token call (decoding)"), merge: nil, prune: nil)
        }

        // Pruning: the first call after merging stopped (and the budget was not already met by merging).
        if state.finishMerging && !state.finishPruning {
            guard let attention = attentionLastRow else {
                throw CompressionError.missingSignal("FrameFusion: the pruning call needs the last query's attention row")
            }
            guard attention.columns == S else {
                throw CompressionError.shapeMismatch("FrameFusion: attention row \(attention.shape) for \(S) tokens")
            }
            let start = state.imageStart
            let length = state.imageLength - (state.originalLength - S)
            guard length >= 0, start + length <= S else {
                throw CompressionError.shapeMismatch("FrameFusion: current video block [\(start), \(start + length)) does not fit \(S) tokens")
            }
            let heads = attention.rows
            let importance = (0..<length).map { v -> Float in
                var sum = 0.0
                for h in 0..<heads { sum += Double(attention[h, start + v]) }
                return Float(sum / Double(heads))
            }
            let ratio = try neededSparsity(state.sparsityList, cost: parameters.cost, layers: parameters.budgetLayers)
            // Python round(): half to even (75·0.38 = 28.5 keeps 28).
            let keep = Selection.roundHalfEven(Double(length) * (1 - ratio))
            let top = Selection.topK(importance, keep).map { $0 + start }
            kept = (Array(0..<start) + top + Array((start + length)..<S)).sorted()
            hidden = try hidden.gatherRows(kept)
            state.positions = kept.map { state.positions[$0] }
            // The code leaves patch_type unsliced here; it is never read again (merging has finished).
            if state.patchType.count == S { state.patchType = kept.map { state.patchType[$0] } }
            state.finishPruning = true
            pruneInfo = PruneInfo(pruningRatio: ratio, importance: importance)
            let compression = CompressionResult(kept: kept, requestedCount: keep, achievedCount: top.count, positionPolicy: .keepOriginal)
            return CallResult(hiddenStates: hidden, compression: compression, merge: nil, prune: pruneInfo)
        }

        guard !state.finishMerging else {
            return CallResult(hiddenStates: hidden, compression: .noOp(tokenCount: S, requested: S, policy: .keepOriginal,
                                                                      reason: "merging and pruning have finished"), merge: nil, prune: nil)
        }

        // Merging.
        guard state.patchType.count == S else {
            throw CompressionError.shapeMismatch("FrameFusion: \(state.patchType.count) patch types for \(S) tokens")
        }
        let needed = try neededSparsity(state.sparsityList, cost: parameters.cost, layers: parameters.budgetLayers)
        var order = [Int](), typeOfEntry = [Int]()
        for p in 0..<state.patchCount {
            for (i, t) in state.patchType.enumerated() where t == p { order.append(i); typeOfEntry.append(p) }
        }
        var similarity = [Float](repeating: -2, count: order.count)
        for e in order.indices.dropFirst() where typeOfEntry[e] == typeOfEntry[e - 1] {
            // cosine_similarity of the code: dot / (‖a‖·‖b‖), no eps.
            let a = hidden.row(order[e - 1]).map(Double.init), b = hidden.row(order[e]).map(Double.init)
            similarity[e] = Float(L2Norm.cosine(a, b, eps: 0))
        }
        let videoCount = state.patchType.filter { $0 != -1 }.count
        guard videoCount > 0 else { throw CompressionError.missingSignal("FrameFusion: no video tokens left to merge") }
        // Compared in float32 (`similarity >= python float`).
        var selected = similarity.indices.filter { similarity[$0] >= Float(parameters.similarityLowerBound) }
        let fraction = Double(selected.count) / Double(videoCount)
        if fraction < needed {
            state.sparsityList.append(fraction)
            if fraction < parameters.ratioLowerBound { state.finishMerging = true }
        } else {
            // Budget branch: merge only the top int(needed·V) entries, then stop merging AND pruning.
            selected = Selection.topK(similarity, Int(needed * Double(videoCount))).sorted()
            state.finishMerging = true
            state.finishPruning = true
        }
        var removed = Set<Int>()
        var merged: [MergedToken] = []
        var rootsAndMembers: [(Int, [Int])] = []
        var e = 0
        let selectedSet = Set(selected)
        while e < order.count {
            guard selectedSet.contains(e) else { e += 1; continue }
            var q = e
            while q + 1 < order.count && selectedSet.contains(q + 1) { q += 1 }
            // The run e..q folds into the entry just before it (its earliest frame); a run starting at entry 0
            // would wrap to the last entry, as Python's index −1 does.
            let root = order[(e - 1 + order.count) % order.count]
            rootsAndMembers.append((root, (e...q).map { order[$0] }))
            e = q + 1
        }
        // index_add_ reads the members before any write, then divides the root by (run length + 1).
        let source = hidden
        for (root, members) in rootsAndMembers {
            var acc = source.row(root).map(Double.init)
            for m in members { for (c, v) in source.row(m).enumerated() { acc[c] += Double(v) } }
            for c in 0..<Cw { hidden[root, c] = Float(acc[c] / Double(members.count + 1)) }
            removed.formUnion(members)
        }
        kept = (0..<S).filter { !removed.contains($0) }
        for (root, members) in rootsAndMembers {
            if let out = kept.firstIndex(of: root) { merged.append(MergedToken(outputIndex: out, sources: ([root] + members).sorted())) }
        }
        hidden = try hidden.gatherRows(kept)
        state.patchType = kept.map { state.patchType[$0] }
        state.positions = kept.map { state.positions[$0] }
        mergeInfo = MergeInfo(neededSparsity: needed, similarityByPatch: similarity, tokenIndexByPatch: order)
        let compression = CompressionResult(kept: kept, requestedCount: S - Int(needed * Double(videoCount)),
                                            achievedCount: kept.count, positionPolicy: .keepOriginal, merged: merged)
        return CallResult(hiddenStates: hidden, compression: compression, merge: mergeInfo, prune: pruneInfo)
    }
}
