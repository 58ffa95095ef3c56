import Tensors
import TokenCompression

/// DyCoke inside LLaVA-OneVision, both stages.
///
/// 1. Token temporal merging on each video's pooled rows before the LLM (`VideoTokenHook`):
///    `DyCoke.temporalMerge` keeps the rows in the code's order (frames in order, a pruned frame's
///    rows by ascending similarity), the newline after them; positions renumbered.
/// 2. Dynamic KV pruning while decoding (`DecodeHook`): at every step, layer L−1 records the
///    current token's attention, `DyCoke.KVPruner` picks the image entries, and layers ≥ L attend
///    only to the chosen cache rows (a step whose image attention is stable runs on the full cache,
///    as the code does). The full K/V stays cached, as in the code: its `PrunableDynamicCache`
///    resets the selection at layer 0 of every step and picks again from *all* image entries, so
///    a row pruned at one step can come back at the next; evicting rows would change which rows
///    later steps can choose. What shrinks per step is the rows layers ≥ L gather and attend to
///    (`decodeSteps`), and so the K/V bytes each step reads (`decodeReads`), not the memory. The image span is the video's
///    span in this prompt (the code hard-codes its start 14 for its chat template) with the
///    code's length, TTM rows − 1. A fresh pruner per prefill (the code's carries over samples).
///
/// The budget picks K (`dycoke_k`): the per-pruned-frame count m that brings the kept frame tokens
/// closest to the budget from below (frames TTM never prunes stay whole, so a budget below them is
/// out of reach and reported); `k=` sets K directly and the budget is then not used.
public enum VideoDyCokeCompression {
    public static let adapter = InModelAdapter(method: "dycoke", parameters: ["k", "l", "p", "kv"], build: make)

    static func make(budget: Budget, parameters p: MethodParameters) throws -> ModelCompression {
        let fixedK = try p.double("k")
        let base = DyCoke.Parameters()
        let layer = try p.int("l", default: base.pruneLayer)
        let ratio = try p.double("p", default: base.pruneRatio)
        let kv = try p.bool("kv", default: true)
        try DyCoke.Parameters(mergingRatio: fixedK ?? base.mergingRatio, pruneLayer: layer, pruneRatio: ratio).validate()
        let hook = DyCokeHook(budget: budget, fixedK: fixedK, pruneLayer: layer, pruneRatio: ratio, kvPruning: kv)
        return ModelCompression(info: DyCoke.info, budget: budget, hook: hook)
    }

    /// The K whose m = int((1 − K)·N) keeps the most frame tokens not above `target`, from the
    /// frame pattern TTM itself gives (run on a 2-token dummy: whole frames keep 2, pruned 1, an
    /// odd F's dropped last frame 0).
    public static func mergingRatio(forTarget target: Int, frames: Int, tokensPerFrame n: Int) throws -> (k: Double, m: Int, reachable: Bool) {
        let (whole, pruned) = try framePattern(frames: frames)
        guard pruned > 0 else { return (0, n, true) }
        let room = target - whole * n
        let m = min(n, max(0, room / pruned))
        // (1 − K)·N = m + ½ so that int() lands on m whatever the float rounding.
        let k = m >= n ? 0 : 1 - (Double(m) + 0.5) / Double(n)
        return (k, m, room >= 0)
    }

    /// Frames TTM keeps whole and frames it prunes to m tokens, for an F-frame video (an odd F's
    /// last frame is neither: TTM drops it).
    public static func framePattern(frames: Int) throws -> (whole: Int, pruned: Int) {
        let dummy = Tensor(zeros: [frames * 2, 1])
        let pattern = try DyCoke.temporalMerge(tokens: dummy, parameters: .init(tokensPerFrame: 2, mergingRatio: 0.5)).frameTokenCounts
        return (pattern.filter { $0 == 2 }.count, pattern.filter { $0 == 1 }.count)
    }

    /// Frame tokens TTM keeps for an F-frame video of N tokens per frame at merging ratio K.
    public static func keptFrameTokens(frames: Int, tokensPerFrame n: Int, mergingRatio k: Double) throws -> Int {
        let (whole, pruned) = try framePattern(frames: frames)
        return whole * n + pruned * DyCoke.Parameters(tokensPerFrame: n, mergingRatio: k).keptPerPrunedFrame
    }
}

/// DyCoke's hook: the temporal merge per video, then the per-step KV selection.
final class DyCokeHook: VideoCompressionHook, PrefillHook, DecodeHook {
    let pruneLayer: Int
    let pruneRatio: Double
    let kvPruning: Bool
    private var pruner: DyCoke.KVPruner?
    private var selection: [Int]?
    /// Decode steps since the last prefill: what layers ≥ L attended to at each.
    private(set) var decodeSteps: [DyCoke.KVStep] = []
    /// Decode steps since the last prefill: K/V bytes cached and bytes the attention read, all layers.
    private(set) var decodeReads: [DecodeKVRead] = []
    /// Bytes of one cached token's key and value row in one layer (Float32 cache), set at prefill.
    private var kvRowBytes = 0

    init(budget: Budget, fixedK: Double?, pruneLayer: Int, pruneRatio: Double, kvPruning: Bool) {
        self.pruneLayer = pruneLayer
        self.pruneRatio = pruneRatio
        self.kvPruning = kvPruning
        super.init(method: "dycoke", policy: .renumber, budget: budget, budgetDriven: fixedK == nil) { video, target in
            let layout = video.layout
            var notes: [String] = []
            let k: Double
            if let fixedK {
                k = fixedK
            } else {
                let pick = try VideoDyCokeCompression.mergingRatio(forTarget: target, frames: layout.frames, tokensPerFrame: layout.tokensPerFrame)
                k = pick.k
                notes.append("dycoke: video \(video.index) budget \(target) → m = \(pick.m) of \(layout.tokensPerFrame) per pruned frame (K = \(k))")
                if !pick.reachable { notes.append("dycoke: video \(video.index): the frames TTM keeps whole already exceed the budget \(target); pruned frames keep 0") }
            }
            let parameters = DyCoke.Parameters(tokensPerFrame: layout.tokensPerFrame, mergingRatio: k, pruneLayer: pruneLayer, pruneRatio: pruneRatio)
            let t = try DyCoke.temporalMerge(tokens: video.tokens, parameters: parameters)
            return VideoChoice(rows: t.x, sources: t.order, policy: .renumber, requested: fixedK == nil ? target : t.result.requestedCount, notes: notes)
        }
    }

    // MARK: prefill: find the video's span for the decode steps

    func beforeLayer(_ layer: Int, state: PrefillState) throws -> PruneDecision? {
        guard layer == 0 else { return nil }
        pruner = nil
        selection = nil
        decodeSteps = []
        decodeReads = []
        kvRowBytes = 2 * state.kvHeadCount * state.headDim * MemoryLayout<Float>.stride
        guard kvPruning else { return nil }
        guard rowsAfter.count == 1 else {
            note("KV pruning needs exactly one video in the prompt (got \(rowsAfter.count)); decoding runs on the full cache")
            return nil
        }
        let matching = state.imageSpans.filter { $0.count == rowsAfter[0] }
        guard matching.count == 1, let span = matching.first else {
            note("KV pruning could not tell the video's span among \(state.imageSpans.count) visual spans; decoding runs on the full cache")
            return nil
        }
        let length = DyCoke.imageTokenLength(afterTemporalMerge: span.count - 1)
        guard length >= 1 else { return nil }
        pruner = try DyCoke.KVPruner(imageStart: span.lowerBound, imageLength: length,
                                     parameters: .init(tokensPerFrame: 1, pruneLayer: pruneLayer, pruneRatio: pruneRatio))
        return nil
    }

    func afterPrefill(_ summary: PrefillSummary) throws {
        if pruner != nil, pruneLayer >= summary.tokensPerLayer.count {
            note("KV pruning layer L = \(pruneLayer) ≥ the model's \(summary.tokensPerLayer.count) layers; decoding runs on the full cache")
            pruner = nil
        }
    }

    // MARK: decoding

    func decodeAttentionRecord(layer: Int) -> AttentionRecord {
        pruner != nil && layer == pruneLayer - 1 ? .probabilities(rows: [0]) : .none
    }

    func attendedRows(layer: Int, cacheLength: Int, previousAttention: RecordedAttention?) throws -> [Int]? {
        if layer == 0 {
            selection = nil
            decodeReads.append(DecodeKVRead(cachedBytes: 0, readBytes: 0))
        }
        let rows = try selectRows(layer: layer, cacheLength: cacheLength, previousAttention: previousAttention)
        if !decodeReads.isEmpty {
            decodeReads[decodeReads.count - 1].cachedBytes += cacheLength * kvRowBytes
            decodeReads[decodeReads.count - 1].readBytes += (rows?.count ?? cacheLength) * kvRowBytes
        }
        return rows
    }

    private func selectRows(layer: Int, cacheLength: Int, previousAttention: RecordedAttention?) throws -> [Int]? {
        guard var p = pruner, layer >= pruneLayer else { return nil }
        if layer == pruneLayer {
            guard let a = previousAttention else { throw ModelError("dycoke: layer \(layer - 1) recorded no attention at this decode step") }
            let heads = try a.values.reshaped([a.values.shape[0], a.values.shape[2]])
            let step = try p.step(attentionHeads: heads, cacheLength: cacheLength)
            pruner = p
            decodeSteps.append(step)
            selection = step.selectedPositions
        }
        return selection
    }

    override func lastReport() -> CompressionRunReport {
        var r = super.lastReport()
        if !decodeSteps.isEmpty {
            let attended = decodeSteps.map { "\($0.attendedCount)/\($0.cacheLength)" }.joined(separator: " ")
            r.notes.append("dycoke: KV pruning at layers ≥ \(pruneLayer), \(decodeSteps.filter(\.reselected).count) of \(decodeSteps.count) decode steps re-selected; entries attended per step: \(attended)")
        }
        if !decodeReads.isEmpty {
            let read = decodeReads.reduce(0) { $0 + $1.readBytes }, cached = decodeReads.reduce(0) { $0 + $1.cachedBytes }
            let share = cached > 0 ? Double(read) / Double(cached) * 100 : 100
            r.notes.append("dycoke: K/V bytes read over \(decodeReads.count) decode steps, all layers: \(read) of \(cached) cached (\(String(format: "%.1f", share))%); the cache itself keeps every row, as the code's")
        }
        return r
    }
}

/// One decode step's K/V traffic over all layers: what the cache held and what attention read.
struct DecodeKVRead: Sendable, Equatable {
    var cachedBytes: Int
    var readBytes: Int
}
