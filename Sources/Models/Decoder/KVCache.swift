import Tensors

/// Keys (after RoPE) and values of every decoder layer, Float32, one row per cached token.
///
/// Each layer holds exactly the rows it attended over: after a prefill-time pruning at layer K,
/// layers `< K` keep the full prompt and layers `≥ K` only the kept rows (as FastV / DART do), so
/// the cache physically shrinks; `byteCount` reports what is really held.
public final class KVCache: @unchecked Sendable {
    public struct Layer: Sendable {
        /// `[tokens, kvHeads·headDim]`, rotated.
        public internal(set) var keys: Tensor
        /// `[tokens, kvHeads·headDim]`.
        public internal(set) var values: Tensor
        public var count: Int { keys.rows }
    }
    public internal(set) var layers: [Layer]
    /// Position id of the next token to decode: max position seen + 1 (transformers' rule).
    public internal(set) var nextPosition: Int

    init(layers: Int, width: Int) {
        self.layers = Array(repeating: Layer(keys: Tensor(zeros: [0, width]), values: Tensor(zeros: [0, width])), count: layers)
        nextPosition = 0
    }

    /// Bytes of key and value storage over all layers.
    public var byteCount: Int { layers.reduce(0) { $0 + $1.keys.byteCount + $1.values.byteCount } }
    /// Cached tokens per layer.
    public var tokenCounts: [Int] { layers.map(\.count) }

    func append(layer: Int, keys: Tensor, values: Tensor) throws {
        if layers[layer].count == 0 {
            layers[layer].keys = keys
            layers[layer].values = values
        } else {
            layers[layer].keys = try Tensor.concatenateRows([layers[layer].keys, keys])
            layers[layer].values = try Tensor.concatenateRows([layers[layer].values, values])
        }
    }

    /// Keeps only `rows` (ascending) of the given layers' caches (a new, smaller allocation).
    public func keepRows(_ rows: [Int], layers selected: Range<Int>) throws {
        for l in selected {
            layers[l].keys = try layers[l].keys.gatherRows(rows)
            layers[l].values = try layers[l].values.gatherRows(rows)
        }
    }
}
