import Foundation
import ModelIO
import Tensors

/// Result of a decoder prefill.
public struct DecoderPrefillResult: @unchecked Sendable {
    /// Logits of the final position, `[vocab]`.
    public var logits: Tensor
    public var cache: KVCache
    /// Prompt index of every row that reached the last layer.
    public var keptOriginalIndices: [Int]
    /// Position ids of those rows.
    public var positions: [Int]
    /// Rows that went through each layer (the effective per-layer token schedule).
    public var tokensPerLayer: [Int]
    /// Image rows (rows a hook inserted included) that went through each layer.
    public var visualRowsPerLayer: [Int]
    /// Rows a hook inserted (merged or recycled tokens) among the rows that reached the last layer.
    public var insertedRows: Int
    /// Whether a hook's decision renumbered the positions (contiguous from 0) during the prefill.
    public var positionsRenumbered: Bool
}

/// A LLaMA-family decoder (LLaMA, Qwen2): RMSNorm pre-LN blocks, GQA attention with RoPE at
/// explicit per-token positions, SwiGLU MLP, KV cache, and a `PrefillHook` for compression.
public final class DecoderLM: @unchecked Sendable {
    public let config: LlamaConfig
    public let store: WeightStore
    let rope: RotaryEmbedding
    let attention: Attention
    let embedName: String
    let lmHead: LinearWeight
    let normName: String
    struct Layer {
        let inputNorm: String, postNorm: String
        let q, k, v, o, gate, up, down: LinearWeight
    }
    let layers: [Layer]

    static let prefixes = ["model.", "model.language_model.", "language_model.model.", "language_model.", ""]

    /// Loads a `LlamaForCausalLM` / `Qwen2ForCausalLM` folder.
    public static func load(folder: String, keepConverted: Bool = false) throws -> DecoderLM {
        try DecoderLM(config: try LlamaConfig.load(folder: folder), store: try WeightStore(folder: folder, keepConverted: keepConverted))
    }

    /// Binds the decoder to `store`, finding its key layout and checking every shape.
    public init(config: LlamaConfig, store: WeightStore) throws {
        self.config = config
        self.store = store
        let anchor = "embed_tokens.weight"
        guard let p = store.prefix(anchor: anchor, among: Self.prefixes) else {
            throw ModelError("\(store.location): no decoder weights (looked for '\(anchor)' under \(Self.prefixes.map { "'\($0)'" }.joined(separator: ", ")))")
        }
        let d = config.hiddenSize, qw = config.heads * config.headDim, kvw = config.kvHeads * config.headDim
        let m = config.intermediateSize
        embedName = p + anchor
        let embedInfo = try store.info(embedName)
        guard embedInfo.shape == [config.vocabSize, d] else {
            throw ModelError("\(store.location): '\(embedName)' has shape \(embedInfo.shape), the config implies [\(config.vocabSize), \(d)]")
        }
        normName = p + "norm.weight"
        guard try store.info(normName).shape == [d] else { throw ModelError("\(store.location): '\(normName)' is not [\(d)]") }
        if let head = store.firstPresent(["lm_head.weight", "language_model.lm_head.weight"]), !config.tieWordEmbeddings {
            lmHead = try LinearWeight(store: store, prefix: String(head.dropLast(".weight".count)), out: config.vocabSize, in: d, bias: false)
        } else if config.tieWordEmbeddings {
            lmHead = try LinearWeight(store: store, prefix: p + "embed_tokens", out: config.vocabSize, in: d, bias: false)
        } else {
            throw ModelError("\(store.location): no 'lm_head.weight' and tie_word_embeddings is false")
        }
        var layers: [Layer] = []
        for i in 0..<config.layers {
            let l = "\(p)layers.\(i)."
            for norm in ["input_layernorm", "post_attention_layernorm"] {
                let info = try store.info(l + norm + ".weight")
                guard info.shape == [d] else { throw ModelError("\(store.location): '\(l)\(norm).weight' has shape \(info.shape), expected [\(d)]") }
            }
            layers.append(Layer(
                inputNorm: l + "input_layernorm.weight", postNorm: l + "post_attention_layernorm.weight",
                q: try LinearWeight(store: store, prefix: l + "self_attn.q_proj", out: qw, in: d, bias: config.qkvBias),
                k: try LinearWeight(store: store, prefix: l + "self_attn.k_proj", out: kvw, in: d, bias: config.qkvBias),
                v: try LinearWeight(store: store, prefix: l + "self_attn.v_proj", out: kvw, in: d, bias: config.qkvBias),
                o: try LinearWeight(store: store, prefix: l + "self_attn.o_proj", out: d, in: qw, bias: config.outputBias),
                gate: try LinearWeight(store: store, prefix: l + "mlp.gate_proj", out: m, in: d, bias: config.mlpBias),
                up: try LinearWeight(store: store, prefix: l + "mlp.up_proj", out: m, in: d, bias: config.mlpBias),
                down: try LinearWeight(store: store, prefix: l + "mlp.down_proj", out: d, in: m, bias: config.mlpBias)))
        }
        self.layers = layers
        rope = try RotaryEmbedding(headDim: config.headDim, theta: config.ropeTheta)
        attention = try Attention(heads: config.heads, kvHeads: config.kvHeads, headDim: config.headDim, causal: true)
    }

    // MARK: pieces

    /// Token embeddings `[ids.count, hidden]` (only the needed rows are converted).
    public func embed(_ ids: [Int]) throws -> Tensor { try store.rows(embedName, ids) }

    func rms(_ x: Tensor, _ name: String) throws -> Tensor {
        try x.rmsNorm(weight: try store.tensor(name, alwaysCache: true), eps: config.rmsNormEps)
    }

    /// The final RMSNorm.
    public func finalNorm(_ x: Tensor) throws -> Tensor { try rms(x, normName) }

    /// LM head over normalized hidden rows, `[rows, vocab]`.
    public func lmHeadLogits(_ normalized: Tensor) throws -> Tensor { try lmHead(normalized, store: store) }

    /// Layer `layer`'s RoPE'd queries and keys of `hidden` rows at `positions`.
    public func queriesAndKeys(layer: Int, hidden: Tensor, positions: [Int]) throws -> (queries: Tensor, keys: Tensor) {
        guard layer >= 0, layer < layers.count else { throw ModelError("decoder: layer \(layer) out of range 0..<\(layers.count)") }
        let x = try rms(hidden, layers[layer].inputNorm)
        let table = rope.table(positions: positions)
        let q = try rope.apply(try layers[layer].q(x, store: store), table: table)
        let k = try rope.apply(try layers[layer].k(x, store: store), table: table)
        return (q, k)
    }

    /// The first half of layer `i` on `hidden` rows at `positions` (no cache): every row's causal
    /// attention probabilities `[heads, rows, rows]` and the attention output `[rows, heads·headDim]`
    /// before o_proj. With `finishLayer` this is the layer cut between its attention and the rest,
    /// as a calibration pass that removes rows inside the layer needs (FitPrune's fit).
    public func attentionHalf(layer i: Int, hidden: Tensor, positions: [Int]) throws -> (probabilities: Tensor, output: Tensor) {
        guard i >= 0, i < layers.count else { throw ModelError("decoder: layer \(i) out of range 0..<\(layers.count)") }
        guard positions.count == hidden.rows else { throw ModelError("decoder: \(hidden.rows) rows but \(positions.count) positions") }
        let layer = layers[i]
        let x = try rms(hidden, layer.inputNorm)
        let table = rope.table(positions: positions)
        let q = try rope.apply(try layer.q(x, store: store), table: table)
        let k = try rope.apply(try layer.k(x, store: store), table: table)
        let v = try layer.v(x, store: store)
        let (a, recorded) = try attention(q: q, k: k, v: v, record: .probabilities(rows: nil))
        guard let p = recorded?.values else { throw ModelError("decoder layer \(i): the attention recorded no probabilities") }
        return (p, a)
    }

    /// The rest of layer `i` on the `kept` rows only: attention output and residual cut to them,
    /// then o_proj, residual add and the MLP. Returns the layer's output rows `[kept, hidden]`.
    public func finishLayer(_ i: Int, hidden: Tensor, attentionOutput: Tensor, keeping kept: [Int]) throws -> Tensor {
        guard i >= 0, i < layers.count else { throw ModelError("decoder: layer \(i) out of range 0..<\(layers.count)") }
        guard attentionOutput.rows == hidden.rows, kept.allSatisfy({ $0 >= 0 && $0 < hidden.rows }) else {
            throw ModelError("decoder layer \(i): kept rows must lie within the \(hidden.rows) rows")
        }
        let layer = layers[i]
        var h = try hidden.gatherRows(kept)
        try h.addInPlace(try layer.o(try attentionOutput.gatherRows(kept), store: store))
        let y = try rms(h, layer.postNorm)
        let act = try Tensor.swiGLU(gate: try layer.gate(y, store: store), up: try layer.up(y, store: store))
        try h.addInPlace(try layer.down(act, store: store))
        return h
    }

    /// One decoder block over `hidden` (the rows after the cached ones, updated in place; `rotary`
    /// holds their positions), appending to `cache`.
    func runLayer(_ i: Int, hidden: inout Tensor, rotary: RotaryTable, cache: KVCache,
                  record: AttentionRecord, attendedRows: [Int]? = nil,
                  afterAttention: ((inout Tensor, RecordedAttention?) throws -> Void)? = nil) throws -> RecordedAttention? {
        let layer = layers[i]
        let x = try OpProfile.measure("norm") { try rms(hidden, layer.inputNorm) }
        let (qRaw, kRaw, v) = try OpProfile.measure("q/k/v projections") {
            (try layer.q(x, store: store), try layer.k(x, store: store), try layer.v(x, store: store))
        }
        let (q, k) = try OpProfile.measure("rope") { (try rope.apply(qRaw, table: rotary), try rope.apply(kRaw, table: rotary)) }
        try OpProfile.measure("kv cache append") { try cache.append(layer: i, keys: k, values: v) }
        let kv = cache.layers[i]
        let (a, recorded) = try OpProfile.measure("attention") {
            if let rows = attendedRows {
                // A decode hook's subset (DyCoke): the query is the last selected row.
                guard let last = rows.last, last == kv.count - 1, zip(rows, rows.dropFirst()).allSatisfy({ $0 < $1 }), rows[0] >= 0 else {
                    throw ModelError("decode hook at layer \(i): attended rows must be ascending cache rows ending with the current token (\(kv.count - 1))")
                }
                return try attention(q: q, k: try kv.keys.gatherRows(rows), v: try kv.values.gatherRows(rows), record: record)
            }
            return try attention(q: q, k: kv.keyStorage, v: kv.valueStorage, keyCount: kv.count, record: record)
        }
        let o = try OpProfile.measure("o projection") { try layer.o(a, store: store) }
        try OpProfile.measure("residual add") { try hidden.addInPlace(o) }
        // A hook that cuts or merges rows between attention and MLP (FrameFusion); the MLP runs on its rows.
        if let afterAttention { try afterAttention(&hidden, recorded) }
        let y = try OpProfile.measure("norm") { try rms(hidden, layer.postNorm) }
        let (gate, up) = try OpProfile.measure("gate/up projections") { (try layer.gate(y, store: store), try layer.up(y, store: store)) }
        let act = try OpProfile.measure("activation") { try Tensor.swiGLU(gate: gate, up: up) }
        let down = try OpProfile.measure("down projection") { try layer.down(act, store: store) }
        try OpProfile.measure("residual add") { try hidden.addInPlace(down) }
        return recorded
    }

    // MARK: prefill and decoding

    /// Runs the prompt through every layer and fills a fresh KV cache.
    /// - Parameters:
    ///   - embeddings: `[tokens, hidden]` input embeddings (text embeddings with image features spliced in).
    ///   - positions: one position id per token (gaps allowed); default `0..<tokens`.
    ///   - imageSpans: image token ranges of the prompt, passed to the hook.
    ///   - hook: compression hook (see `PrefillHook`).
    public func prefill(embeddings: Tensor, positions: [Int]? = nil, imageSpans: [Range<Int>] = [],
                        hook: PrefillHook? = nil) throws -> DecoderPrefillResult {
        let n = embeddings.rows
        guard embeddings.rank == 2, embeddings.columns == config.hiddenSize, n > 0 else {
            throw ModelError("decoder prefill: embeddings have shape \(embeddings.shape), expected [tokens > 0, \(config.hiddenSize)]")
        }
        var pos = positions ?? Array(0..<n)
        guard pos.count == n else { throw ModelError("decoder prefill: \(n) tokens but \(pos.count) position ids") }
        guard let maxPos = pos.max(), maxPos < config.maxPositionEmbeddings, pos.allSatisfy({ $0 >= 0 }) else {
            throw ModelError("decoder prefill: position ids must lie in 0..<\(config.maxPositionEmbeddings) (max_position_embeddings); the prompt of \(n) tokens is too long or has bad positions")
        }
        let cache = KVCache(layers: config.layers, width: config.kvHeads * config.headDim)
        var hidden = embeddings
        var original = Array(0..<n)
        var recorded: RecordedAttention?
        var rotary: RotaryTable?
        var tokensPerLayer: [Int] = []
        var originalPerLayer: [[Int]] = []
        var renumbered = false
        var events: [(layer: Int, kept: Int)] = []
        for i in 0..<config.layers {
            if let hook {
                let previous = i > 0 ? cache.layers[i - 1] : nil
                let state = PrefillState(layer: i, hidden: hidden, positions: pos, originalIndices: original, imageSpans: imageSpans,
                                         previousKeys: previous?.keys, previousValues: previous?.values,
                                         previousAttention: recorded, model: self)
                if let decision = try hook.beforeLayer(i, state: state) {
                    try apply(decision, at: i, hidden: &hidden, positions: &pos, original: &original, renumbered: &renumbered)
                    events.append((i, hidden.rows))
                }
            }
            tokensPerLayer.append(hidden.rows)
            originalPerLayer.append(original)
            let record = hook?.attentionRecord(layer: i) ?? .none
            if rotary?.positions != pos { rotary = rope.table(positions: pos) }
            if let hook, hook.actsAfterAttention(layer: i) {
                recorded = try runLayer(i, hidden: &hidden, rotary: rotary!, cache: cache, record: record) { h, attention in
                    let kv = cache.layers[i]
                    let state = PrefillState(layer: i, hidden: h, positions: pos, originalIndices: original, imageSpans: imageSpans,
                                             previousKeys: kv.keys, previousValues: kv.values, previousAttention: attention, model: self)
                    guard let decision = try hook.afterAttention(i, state: state) else { return }
                    try self.apply(decision, at: i, hidden: &h, positions: &pos, original: &original, renumbered: &renumbered)
                    events.append((i, h.rows))
                }
            } else {
                recorded = try runLayer(i, hidden: &hidden, rotary: rotary!, cache: cache, record: record)
            }
        }
        var summary = PrefillSummary(tokensPerLayer: tokensPerLayer, keptOriginalIndices: original,
                                     positions: pos, pruneEvents: events, originalIndicesPerLayer: originalPerLayer)
        if let hook {
            // The per-layer counts stay those of the prefill pass (what each layer computed on).
            for (l, keep) in try hook.cacheCompaction(summary).sorted(by: { $0.key < $1.key }) {
                guard (0..<config.layers).contains(l) else { throw ModelError("prefill hook: cache compaction names layer \(l) of \(config.layers)") }
                try cache.keepRows(keep, layer: l)
                summary.originalIndicesPerLayer[l] = keep.map { summary.originalIndicesPerLayer[l][$0] }
            }
            try hook.afterPrefill(summary)
        }
        cache.nextPosition = (pos.max() ?? -1) + 1
        cache.decodePositionsPerLayer = renumbered
        let last = try hidden.rows((hidden.rows - 1)..<hidden.rows)
        let logits = try lmHeadLogits(try finalNorm(last)).reshaped([config.vocabSize])
        let isVisual = { (o: Int) in o == PrefillState.insertedRow || imageSpans.contains { $0.contains(o) } }
        return DecoderPrefillResult(logits: logits, cache: cache, keptOriginalIndices: original, positions: pos,
                                    tokensPerLayer: tokensPerLayer,
                                    visualRowsPerLayer: originalPerLayer.map { $0.filter(isVisual).count },
                                    insertedRows: original.filter { $0 == PrefillState.insertedRow }.count,
                                    positionsRenumbered: renumbered)
    }

    /// Applies a hook's decision to the current rows: keep, replace values, insert, position policy.
    private func apply(_ decision: PruneDecision, at i: Int, hidden: inout Tensor, positions pos: inout [Int],
                       original: inout [Int], renumbered: inout Bool) throws {
        let rows = decision.keptRows
        guard !rows.isEmpty, zip(rows, rows.dropFirst()).allSatisfy({ $0 < $1 }),
              rows.first! >= 0, rows.last! < hidden.rows else {
            throw ModelError("prefill hook at layer \(i): kept rows must be non-empty, strictly ascending and within 0..<\(hidden.rows)")
        }
        if let replacement = decision.replacement {
            guard replacement.rank == 2, replacement.rows == rows.count, replacement.columns == hidden.columns else {
                throw ModelError("prefill hook at layer \(i): replacement rows \(replacement.shape) must be [\(rows.count), \(hidden.columns)] (one per kept row)")
            }
            hidden = replacement
        } else {
            hidden = try hidden.gatherRows(rows)
        }
        original = rows.map { original[$0] }
        let kept = rows.map { pos[$0] }
        if let inserted = decision.inserted, inserted.rows > 0 {
            guard inserted.rank == 2, inserted.columns == hidden.columns, decision.positions == .renumber,
                  (0...rows.count).contains(decision.insertedAt) else {
                throw ModelError("prefill hook at layer \(i): inserted rows \(inserted.shape) must be [m, \(hidden.columns)], go at 0...\(rows.count) (got \(decision.insertedAt)) and come with renumbered positions")
            }
            let at = decision.insertedAt
            hidden = try Tensor.concatenateRows([try hidden.rows(0..<at), inserted, try hidden.rows(at..<rows.count)])
            original.insert(contentsOf: Array(repeating: PrefillState.insertedRow, count: inserted.rows), at: at)
        }
        switch decision.positions {
        case .keepOriginal, .notApplicable: pos = kept
        case .renumber: pos = Array(0..<hidden.rows); renumbered = true
        }
    }

    /// Prefill from token ids.
    public func prefill(inputIDs: [Int], positions: [Int]? = nil, hook: PrefillHook? = nil) throws -> DecoderPrefillResult {
        try prefill(embeddings: try embed(inputIDs), positions: positions, hook: hook)
    }

    /// One decoding step: feeds `token` at `cache.nextPosition`, returns the next logits `[vocab]`.
    public func decodeStep(token: Int, cache: KVCache, hook: DecodeHook? = nil) throws -> Tensor {
        guard cache.layers.count == config.layers else { throw ModelError("decode: cache has \(cache.layers.count) layers, the model \(config.layers)") }
        guard cache.nextPosition < config.maxPositionEmbeddings else {
            throw ModelError("decode: position \(cache.nextPosition) reaches max_position_embeddings \(config.maxPositionEmbeddings)")
        }
        var h = try OpProfile.measure("embedding") { try embed([token]) }
        let shared = rope.table(positions: [cache.nextPosition])
        var recorded: RecordedAttention?
        for i in 0..<config.layers {
            let rotary = cache.decodePositionsPerLayer ? rope.table(positions: [cache.layers[i].count]) : shared
            let rows = try hook?.attendedRows(layer: i, cacheLength: cache.layers[i].count + 1, previousAttention: recorded)
            recorded = try runLayer(i, hidden: &h, rotary: rotary, cache: cache, record: hook?.decodeAttentionRecord(layer: i) ?? .none,
                                    attendedRows: rows)
        }
        cache.nextPosition += 1
        let normalized = try OpProfile.measure("norm") { try finalNorm(h) }
        return try OpProfile.measure("lm head") { try lmHeadLogits(normalized) }.reshaped([config.vocabSize])
    }

    /// Greedy continuation after a prefill: up to `maxNewTokens` tokens, stopping after a token
    /// of `stopTokens` (default: the config's EOS ids), which is included in the result.
    public func generate(after prefill: DecoderPrefillResult, maxNewTokens: Int, stopTokens: Set<Int>? = nil,
                         decodeHook: DecodeHook? = nil) throws -> [Int] {
        let stops = stopTokens ?? Set(config.eosTokenIDs)
        var tokens: [Int] = []
        var logits = prefill.logits
        prefill.cache.reserve(additionalRows: maxNewTokens - 1)
        while tokens.count < maxNewTokens {
            let t = Self.argmax(logits)
            tokens.append(t)
            if stops.contains(t) || tokens.count == maxNewTokens { break }
            logits = try decodeStep(token: t, cache: prefill.cache, hook: decodeHook)
        }
        return tokens
    }

    /// Index of the largest value (first on ties, as torch.argmax).
    public static func argmax(_ t: Tensor) -> Int {
        t.withUnsafeBufferPointer { b in
            var best = 0
            for i in 1..<max(b.count, 1) where b[i] > b[best] { best = i }
            return best
        }
    }
}
