import Tensors
import TokenCompression

/// Where LLM-side compression methods (FastV, DART, PDrop, SparseVLM, …) plug into prefill.
///
/// Protocol of one prefill, for layers `L = 0 ..< layers`:
/// 1. `beforeLayer(L, state:)`: `state` holds the input of layer `L` (hidden rows, their
///    position ids, their index in the prompt) and what layer `L-1` recorded (its keys after RoPE,
///    values, and the attention rows asked for by `attentionRecord(layer: L-1)`). Returning a
///    `PruneDecision` keeps only the chosen rows from here on: hidden rows, positions and the
///    caches of layers `≥ L` (which are not written yet) hold the kept rows only; the caches of
///    layers `< L` keep every row (as FastV and DART do). Return `nil` to leave rows as they are.
/// 2. Layer `L` runs; attention is recorded only if `attentionRecord(layer: L)` asks for it
///    (otherwise the fused path runs).
/// 3. After the last layer, `afterPrefill(_:)` sees the final rows.
///
/// Decoding continues at position `max(kept positions) + 1`.
public protocol PrefillHook: AnyObject {
    /// Attention rows (or pre-softmax logits) layer `layer` must record during prefill.
    func attentionRecord(layer: Int) -> AttentionRecord
    /// Called before every decoder layer; may prune rows.
    func beforeLayer(_ layer: Int, state: PrefillState) throws -> PruneDecision?
    /// Whether `afterAttention(layer, state:)` must be called for `layer` (default false: existing
    /// hooks never pay for the extra state). Methods whose code cuts or merges rows between a
    /// layer's attention and its MLP (FrameFusion) answer true.
    func actsAfterAttention(layer: Int) -> Bool
    /// Called inside layer `layer`, after its attention and residual add and before its MLP, when
    /// `actsAfterAttention(layer:)` is true. `state.hidden` holds that residual stream,
    /// `state.previousKeys/Values` this layer's cache (every row: it is already written) and
    /// `state.previousAttention` what this layer recorded. A decision (kept rows, `replacement`
    /// values, inserted rows) applies to the MLP of this layer and every later layer and cache.
    func afterAttention(_ layer: Int, state: PrefillState) throws -> PruneDecision?
    /// Called once after the last layer: rows (ascending indices into that layer's cache) to keep
    /// in the KV cache of some layers for decoding (MustDrop compacts its pruning layers to the final
    /// kept set). Default: none.
    func cacheCompaction(_ summary: PrefillSummary) throws -> [Int: [Int]]
    /// Called once after the last layer (before the final norm and LM head), after any compaction.
    func afterPrefill(_ summary: PrefillSummary) throws
}

extension PrefillHook {
    public func attentionRecord(layer: Int) -> AttentionRecord { .none }
    public func actsAfterAttention(layer: Int) -> Bool { false }
    public func afterAttention(_ layer: Int, state: PrefillState) throws -> PruneDecision? { nil }
    public func cacheCompaction(_ summary: PrefillSummary) throws -> [Int: [Int]] { [:] }
    public func afterPrefill(_ summary: PrefillSummary) throws {}
}

/// Rows to keep and how their positions continue.
public struct PruneDecision: Sendable, Equatable {
    /// Indices into the current rows, strictly ascending.
    public var keptRows: [Int]
    /// `.keepOriginal`: kept rows keep their position ids (gaps remain); `.renumber`: they get
    /// `0 ..< kept`. (`.notApplicable` keeps the position ids, as `.keepOriginal`.)
    public var positions: PositionPolicy
    /// New hidden rows `[m, hidden]` to insert (merged or recycled tokens, e.g. SparseVLM's
    /// clusters of deleted visual tokens), or nil. They need `.renumber`: they have no position of
    /// their own. They count as image rows and have original index `PrefillState.insertedRow`.
    public var inserted: Tensor?
    /// Where the inserted rows go: before the kept row `insertedAt` (`keptRows.count` = at the end).
    public var insertedAt: Int
    /// New values `[keptRows.count, hidden]` for the kept rows, in `keptRows` order, or nil to keep
    /// their values. Merging methods (FrameFusion) average runs of rows into one kept row: the
    /// kept row carries the mean, the others are dropped. Later layers and their caches are built
    /// from these values, as the authors' code feeds the merged hidden states on.
    public var replacement: Tensor?

    public init(keptRows: [Int], positions: PositionPolicy = .keepOriginal, inserted: Tensor? = nil, insertedAt: Int = 0,
                replacement: Tensor? = nil) {
        self.keptRows = keptRows
        self.positions = positions
        self.inserted = inserted
        self.insertedAt = insertedAt
        self.replacement = replacement
    }

    public static func == (a: PruneDecision, b: PruneDecision) -> Bool {
        a.keptRows == b.keptRows && a.positions == b.positions && a.insertedAt == b.insertedAt
            && a.inserted?.shape == b.inserted?.shape && a.inserted?.values == b.inserted?.values
            && a.replacement?.shape == b.replacement?.shape && a.replacement?.values == b.replacement?.values
    }
}

/// The decoder's state at the input of one layer, as a compression method sees it.
public final class PrefillState {
    /// Layer about to run.
    public let layer: Int
    /// Input of `layer`: `[rows, hidden]`.
    public let hidden: Tensor
    /// Position id of each current row.
    public let positions: [Int]
    /// Index in the initial prompt of each current row (`insertedRow` for rows a method inserted).
    public let originalIndices: [Int]
    /// Original index of rows inserted by a `PruneDecision` (merged tokens): not a prompt position.
    public static let insertedRow = -1
    /// Image token ranges in the initial prompt (one per image).
    public let imageSpans: [Range<Int>]
    /// Keys after RoPE that layer `layer - 1` produced for the current rows, `[rows, kvHeads·headDim]`
    /// (nil before layer 0).
    public let previousKeys: Tensor?
    /// Values of layer `layer - 1`, `[rows, kvHeads·headDim]`.
    public let previousValues: Tensor?
    /// Attention layer `layer - 1` recorded (rows index the current rows).
    public let previousAttention: RecordedAttention?
    unowned let model: DecoderLM

    init(layer: Int, hidden: Tensor, positions: [Int], originalIndices: [Int], imageSpans: [Range<Int>],
         previousKeys: Tensor?, previousValues: Tensor?, previousAttention: RecordedAttention?, model: DecoderLM) {
        self.layer = layer
        self.hidden = hidden
        self.positions = positions
        self.originalIndices = originalIndices
        self.imageSpans = imageSpans
        self.previousKeys = previousKeys
        self.previousValues = previousValues
        self.previousAttention = previousAttention
        self.model = model
    }

    /// The union of the image spans (first image token ..< last + 1), nil without images.
    public var imageSpan: Range<Int>? {
        guard let lo = imageSpans.map(\.lowerBound).min(), let hi = imageSpans.map(\.upperBound).max() else { return nil }
        return lo..<hi
    }

    /// Current rows that are image tokens (inserted merged tokens included), ascending.
    public var imageRows: [Int] {
        originalIndices.indices.filter { isImageRow(originalIndices[$0]) }
    }

    /// Current rows that are not image tokens, ascending.
    public var textRows: [Int] {
        originalIndices.indices.filter { !isImageRow(originalIndices[$0]) }
    }

    private func isImageRow(_ original: Int) -> Bool {
        original == Self.insertedRow || imageSpans.contains { $0.contains(original) }
    }

    public var headCount: Int { model.config.heads }
    public var kvHeadCount: Int { model.config.kvHeads }
    public var headDim: Int { model.config.headDim }

    /// The model's final RMSNorm applied to `x` (e.g. to read hidden states through the LM head).
    public func applyFinalNorm(_ x: Tensor) throws -> Tensor { try model.finalNorm(x) }

    /// Layer `layer`'s queries and keys for the given current rows: input RMSNorm, projection
    /// (with bias for Qwen2) and RoPE at the rows' positions. `[rows, heads·headDim]` and
    /// `[rows, kvHeads·headDim]`. PDrop ranks with these.
    public func queriesAndKeys(rows: [Int]) throws -> (queries: Tensor, keys: Tensor) {
        try model.queriesAndKeys(layer: layer, hidden: try hidden.gatherRows(rows), positions: rows.map { positions[$0] })
    }

    /// Logits of the LM head for the given rows (final norm applied), `[rows, vocab]`.
    public func logits(rows: [Int]) throws -> Tensor {
        try model.lmHeadLogits(try model.finalNorm(try hidden.gatherRows(rows)))
    }
}

/// The end of a prefill, for `afterPrefill`.
public struct PrefillSummary: Sendable {
    /// Rows that went through each layer.
    public var tokensPerLayer: [Int]
    /// Prompt index of each final row (`PrefillState.insertedRow` for inserted merged rows).
    public var keptOriginalIndices: [Int]
    public var positions: [Int]
    /// Layers at which rows were pruned, with the row count after pruning.
    public var pruneEvents: [(layer: Int, kept: Int)]
    /// Prompt index of each row every layer cached (`PrefillState.insertedRow` for inserted rows).
    public var originalIndicesPerLayer: [[Int]] = []
}
