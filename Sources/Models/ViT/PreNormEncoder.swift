import Foundation
import ModelIO
import Tensors

/// Key names of one pre-LN block in the two checkpoint layouts this module reads.
enum EncoderLayout {
    /// ViT/DeiT as on the Hub (and as transformers 5 saves them): `encoder.layer.{i}.layernorm_before`,
    /// `attention.attention.{query,key,value}`, `attention.output.dense`, `intermediate.dense`, `output.dense`.
    case vit
    /// CLIP (both towers): `encoder.layers.{i}.layer_norm1`, `self_attn.{q,k,v,out}_proj`, `mlp.fc1/fc2`.
    case clip

    /// (norm1, norm2, q, k, v, o, fc1, fc2) under `prefix` for block `i`, without `.weight`.
    func names(prefix: String, block i: Int) -> [String] {
        switch self {
        case .vit:
            let l = "\(prefix)encoder.layer.\(i)."
            return [l + "layernorm_before", l + "layernorm_after", l + "attention.attention.query",
                    l + "attention.attention.key", l + "attention.attention.value", l + "attention.output.dense",
                    l + "intermediate.dense", l + "output.dense"]
        case .clip:
            let l = "\(prefix)encoder.layers.\(i)."
            return [l + "layer_norm1", l + "layer_norm2", l + "self_attn.q_proj", l + "self_attn.k_proj",
                    l + "self_attn.v_proj", l + "self_attn.out_proj", l + "mlp.fc1", l + "mlp.fc2"]
        }
    }
}

/// A layer norm's weight and bias names, checked.
struct NormWeights {
    let weight: String
    let bias: String
    let eps: Float

    init(store: WeightStore, prefix: String, width: Int, eps: Float) throws {
        weight = try store.checked(prefix + ".weight", shape: [width])
        bias = try store.checked(prefix + ".bias", shape: [width])
        self.eps = eps
    }

    func callAsFunction(_ x: Tensor, store: WeightStore) throws -> Tensor {
        try x.layerNorm(weight: try store.tensor(weight, alwaysCache: true), bias: try store.tensor(bias, alwaysCache: true), eps: eps)
    }
}

extension WeightStore {
    /// `name` if it is stored with `shape`, else an error naming the tensor.
    func checked(_ name: String, shape: [Int]) throws -> String {
        let info = try info(name)
        guard info.shape == shape else {
            throw ModelError("\(location): '\(name)' has shape \(info.shape), the config implies \(shape)")
        }
        return name
    }
}

/// Sequences of a batch stacked row-wise: image (or prompt) `i` owns `rows[i]` consecutive rows.
struct StackedRows {
    var hidden: Tensor
    var rows: [Int]
    /// Token sizes per sequence (nil: all ones), set by a `ViTBlockHook`.
    var sizes: [[Float]?]

    init(hidden: Tensor, rows: [Int]) {
        self.hidden = hidden
        self.rows = rows
        sizes = Array(repeating: nil, count: rows.count)
    }

    var offsets: [Int] { rows.reduce(into: [0]) { $0.append($0.last! + $1) }.dropLast() }

    /// Rows `offset..<offset+count` of `t` (no copy when they are all of them).
    static func slice(_ t: Tensor, _ offset: Int, _ count: Int) throws -> Tensor {
        offset == 0 && count == t.rows ? t : try t.rows(offset..<(offset + count))
    }

    /// The first row of each sequence plus `k` (k < every sequence's rows).
    func rowOfEach(_ k: Int) throws -> Tensor {
        try hidden.gatherRows(offsets.map { $0 + k })
    }
}

/// A stack of pre-LN transformer blocks (ViT, DeiT, both CLIP towers) over a batch of sequences.
///
/// Linear layers, norms and MLPs run on all rows of the batch at once (one GEMM per weight); the
/// attention runs per sequence, so that sequences of different lengths (prompts, images after a
/// token method) never see each other.
final class PreNormEncoder: @unchecked Sendable {
    struct Block {
        let norm1, norm2: NormWeights
        let q, k, v, o, fc1, fc2: LinearWeight
    }

    let store: WeightStore
    let blocks: [Block]
    let width: Int
    let heads: Int
    let act: Activation
    let attention: Attention

    init(store: WeightStore, prefix: String, layout: EncoderLayout, layers: Int, width: Int, intermediate: Int,
         heads: Int, hiddenAct: String, eps: Float, qkvBias: Bool, causal: Bool) throws {
        self.store = store
        self.width = width
        self.heads = heads
        guard let act = Activation(name: hiddenAct) else { throw ModelError("hidden_act '\(hiddenAct)' is not supported") }
        self.act = act
        blocks = try (0..<layers).map { i in
            let n = layout.names(prefix: prefix, block: i)
            return Block(norm1: try NormWeights(store: store, prefix: n[0], width: width, eps: eps),
                         norm2: try NormWeights(store: store, prefix: n[1], width: width, eps: eps),
                         q: try LinearWeight(store: store, prefix: n[2], out: width, in: width, bias: qkvBias),
                         k: try LinearWeight(store: store, prefix: n[3], out: width, in: width, bias: qkvBias),
                         v: try LinearWeight(store: store, prefix: n[4], out: width, in: width, bias: qkvBias),
                         o: try LinearWeight(store: store, prefix: n[5], out: width, in: width, bias: true),
                         fc1: try LinearWeight(store: store, prefix: n[6], out: intermediate, in: width, bias: true),
                         fc2: try LinearWeight(store: store, prefix: n[7], out: width, in: intermediate, bias: true))
        }
        attention = try Attention(heads: heads, headDim: width / heads, causal: causal)
    }

    /// Runs every block on `state`, calling `hook` per sequence after each attention residual.
    /// `protectedRows` and `patchCount` are what the hook is told about each image.
    func run(_ state: inout StackedRows, hook: ViTBlockHook?, protectedRows: Int, patchCount: Int,
             trace: inout ViTTokenTrace) throws {
        let headDim = width / heads
        let proportional = hook?.proportionalAttention ?? false
        if let hook {
            let offsets = state.offsets
            for (b, n) in state.rows.enumerated() { try hook.beforeBlocks(image: b, hidden: try StackedRows.slice(state.hidden, offsets[b], n)) }
        }
        for (i, block) in blocks.enumerated() {
            trace.rowsEnteringBlock.append(state.rows)
            let x = try OpProfile.measure("norm") { try block.norm1(state.hidden, store: store) }
            let (q, k, v) = try OpProfile.measure("q/k/v projections") {
                (try block.q(x, store: store), try block.k(x, store: store), try block.v(x, store: store))
            }
            let record = hook?.attentionRecord(block: i) ?? .none
            var mixed = Tensor(overwrittenShape: [state.hidden.rows, width])
            var recorded: [RecordedAttention?] = []
            let offsets = state.offsets
            try OpProfile.measure("attention") {
                for (b, n) in state.rows.enumerated() {
                    let o = offsets[b]
                    let bias = proportional ? state.sizes[b].map { $0.map { Foundation.log($0) } } : nil
                    let (out, rec) = try attention(q: try StackedRows.slice(q, o, n), k: try StackedRows.slice(k, o, n),
                                                   v: try StackedRows.slice(v, o, n), keyBias: bias, record: record)
                    try mixed.setRows(at: o, from: out)
                    recorded.append(rec)
                }
            }
            let projected = try OpProfile.measure("o projection") { try block.o(mixed, store: store) }
            try OpProfile.measure("residual add") { try state.hidden.addInPlace(projected) }

            if let hook {
                var parts: [Tensor] = []
                var steps: [ViTBlockStep] = []
                var changed = false
                for (b, n) in state.rows.enumerated() {
                    let o = offsets[b]
                    var step = ViTBlockStep(block: i, blockCount: blocks.count, image: b, protectedRows: protectedRows,
                                            hidden: try StackedRows.slice(state.hidden, o, n),
                                            queries: try StackedRows.slice(q, o, n), keys: try StackedRows.slice(k, o, n),
                                            heads: heads, headDim: headDim, attention: recorded[b], sizes: state.sizes[b],
                                            patchCount: patchCount)
                    if let update = try hook.afterAttention(step) {
                        try Self.check(update, replacing: step.hidden, block: i, image: b, protectedRows: protectedRows)
                        step.hidden = update.hidden
                        step.sizes = update.sizes
                        state.rows[b] = update.hidden.rows
                        state.sizes[b] = update.sizes
                        changed = true
                    }
                    parts.append(step.hidden)
                    steps.append(step)
                }
                if changed { state.hidden = try Tensor.concatenateRows(parts) }
                trace.rowsEnteringMLP.append(state.rows)
                try mlp(block, &state.hidden)
                var outputs: [Tensor] = []
                var replaced = false
                let after = state.offsets
                for (b, step) in steps.enumerated() {
                    let out = try StackedRows.slice(state.hidden, after[b], state.rows[b])
                    if let r = try hook.afterBlock(step, output: out) {
                        guard r.shape == out.shape else {
                            throw ModelError("ViT block \(i), image \(b): afterBlock returned \(r.shape), expected \(out.shape) (the token set changes only in afterAttention)")
                        }
                        outputs.append(r)
                        replaced = true
                    } else {
                        outputs.append(out)
                    }
                }
                if replaced { state.hidden = try Tensor.concatenateRows(outputs) }
            } else {
                trace.rowsEnteringMLP.append(state.rows)
                try mlp(block, &state.hidden)
            }
        }
    }

    private func mlp(_ block: Block, _ h: inout Tensor) throws {
        let y = try OpProfile.measure("norm") { try block.norm2(h, store: store) }
        let up = try OpProfile.measure("fc1 projection") { try block.fc1(y, store: store) }
        let activated = OpProfile.measure("activation") { up.activated(act) }
        let m = try OpProfile.measure("fc2 projection") { try block.fc2(activated, store: store) }
        try OpProfile.measure("residual add") { try h.addInPlace(m) }
    }

    /// A hook's rows: rank 2, the width, the protected rows first and unchanged, sizes positive and one per row.
    static func check(_ u: ViTTokenUpdate, replacing h: Tensor, block: Int, image: Int, protectedRows: Int) throws {
        let context = "ViT block \(block), image \(image)"
        guard u.hidden.rank == 2, u.hidden.columns == h.columns, u.hidden.rows >= max(1, protectedRows) else {
            throw ModelError("\(context): the hook returned rows of shape \(u.hidden.shape), expected [rows ≥ \(max(1, protectedRows)), \(h.columns)]")
        }
        let n = protectedRows * h.columns
        let same = u.hidden.withUnsafeBufferPointer { a in h.withUnsafeBufferPointer { b in (0..<n).allSatisfy { a[$0] == b[$0] } } }
        guard same else {
            throw ModelError("\(context): the hook changed the \(protectedRows) protected class-token row(s); they must come back first and unchanged")
        }
        if let s = u.sizes {
            guard s.count == u.hidden.rows else {
                throw ModelError("\(context): the hook returned \(s.count) sizes for \(u.hidden.rows) rows")
            }
            guard s.allSatisfy({ $0 > 0 && $0.isFinite }) else {
                throw ModelError("\(context): token sizes must be positive and finite")
            }
        }
    }
}

extension Tensor {
    /// Writes `source`'s rows into rows `offset...` of `self` (same width).
    mutating func setRows(at offset: Int, from source: Tensor) throws {
        guard source.columns == columns, offset >= 0, offset + source.rows <= rows else {
            throw ModelError("setRows: \(source.shape) at row \(offset) does not fit in \(shape)")
        }
        let w = columns
        withUnsafeMutableBufferPointer { dst in
            source.withUnsafeBufferPointer { src in
                (dst.baseAddress! + offset * w).update(from: src.baseAddress!, count: source.count)
            }
        }
    }
}
