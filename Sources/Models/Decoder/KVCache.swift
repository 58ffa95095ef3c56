import Tensors

/// Keys (after RoPE) and values of every decoder layer, Float32, one row per cached token.
///
/// Each layer holds exactly the rows it attended over: after a prefill-time pruning at layer K,
/// layers `< K` keep the full prompt and layers `≥ K` only the kept rows (as FastV / DART do), so
/// the cache physically shrinks; `byteCount` reports the rows really cached.
///
/// Decoding appends one row per layer and step. Rows are written into spare room at the end of
/// each layer's storage (`reserve(additionalRows:)`, or growth by a quarter when it runs out), so a
/// step costs one row of copying instead of the whole cache — re-concatenating made decoding
/// quadratic in the prompt length (84 MB copied per token for a 640-token, 8-layer, 2048-wide cache).
public final class KVCache: @unchecked Sendable {
    public struct Layer: Sendable {
        /// `[capacity, kvHeads·headDim]`; rows `0..<count` are cached, the rest spare room.
        var keyStorage: Tensor
        var valueStorage: Tensor
        /// Cached tokens of this layer.
        public internal(set) var count: Int

        init(keys: Tensor, values: Tensor) {
            keyStorage = keys
            valueStorage = values
            count = keys.rows
        }

        /// `[count, kvHeads·headDim]`, rotated (a copy only while spare room is reserved).
        public var keys: Tensor { Self.prefix(keyStorage, count) }
        /// `[count, kvHeads·headDim]`.
        public var values: Tensor { Self.prefix(valueStorage, count) }

        static func prefix(_ t: Tensor, _ rows: Int) -> Tensor {
            rows == t.rows ? t : ((try? t.rows(0..<rows)) ?? t)
        }

        /// Storage with room for at least `rows` rows, the cached ones copied over.
        mutating func grow(toCapacity rows: Int) {
            guard rows > keyStorage.rows else { return }
            keyStorage = Self.resized(keyStorage, rows: rows, keeping: count)
            valueStorage = Self.resized(valueStorage, rows: rows, keeping: count)
        }

        static func resized(_ t: Tensor, rows: Int, keeping kept: Int) -> Tensor {
            let width = t.columns
            var out = Tensor(zeros: [rows, width])
            out.withUnsafeMutableBufferPointer { o in
                t.withUnsafeBufferPointer { o.baseAddress!.update(from: $0.baseAddress!, count: kept * width) }
            }
            return out
        }
    }
    public internal(set) var layers: [Layer]
    /// Position id of the next token to decode: max position seen + 1 (transformers' rule).
    public internal(set) var nextPosition: Int
    /// Whether a decoded token sits, in each layer, at that layer's cached length instead of at
    /// `nextPosition`. Set after a prefill that renumbered positions while pruning: the SparseVLM,
    /// PDrop and MustDrop code sets the new token's position to the layer's KV length
    /// (`get_usable_length(…, layer_idx)`, or subtracting the dropped count at each stage), so
    /// layers that kept more rows see it at a larger position.
    public internal(set) var decodePositionsPerLayer = false

    init(layers: Int, width: Int) {
        self.layers = Array(repeating: Layer(keys: Tensor(zeros: [0, width]), values: Tensor(zeros: [0, width])), count: layers)
        nextPosition = 0
    }

    /// Keeps only `rows` (ascending indices of cached rows) of layer `layer`: MustDrop's
    /// after-prefill compaction of its pruning layers to the final kept set.
    func keepRows(_ rows: [Int], layer l: Int) throws {
        let c = layers[l].count
        guard zip(rows, rows.dropFirst()).allSatisfy({ $0 < $1 }), rows.allSatisfy({ (0..<c).contains($0) }) else {
            throw ModelError("KV cache layer \(l): rows to keep must be ascending and within 0..<\(c)")
        }
        layers[l] = Layer(keys: try layers[l].keys.gatherRows(rows), values: try layers[l].values.gatherRows(rows))
    }

    /// Bytes of the cached key and value rows over all layers (spare room not counted; the
    /// memory accounting sees it).
    public var byteCount: Int {
        layers.reduce(0) { $0 + 2 * $1.count * $1.keyStorage.columns * MemoryLayout<Float>.stride }
    }
    /// Cached tokens per layer.
    public var tokenCounts: [Int] { layers.map(\.count) }

    /// Makes room for `additionalRows` more rows in every layer, so that as many decoding steps
    /// append without reallocating (`generate` reserves its `maxNewTokens`).
    public func reserve(additionalRows: Int) {
        guard additionalRows > 0 else { return }
        for l in layers.indices { layers[l].grow(toCapacity: layers[l].count + additionalRows) }
    }

    func append(layer: Int, keys: Tensor, values: Tensor) throws {
        let width = layers[layer].keyStorage.columns
        guard keys.columns == width, values.columns == width, keys.rows == values.rows else {
            throw ModelError("KV cache layer \(layer): appending keys \(keys.shape) and values \(values.shape) to rows of width \(width)")
        }
        if layers[layer].count == 0 && layers[layer].keyStorage.rows == 0 {
            layers[layer] = Layer(keys: keys, values: values)
            return
        }
        let count = layers[layer].count, needed = count + keys.rows
        if needed > layers[layer].keyStorage.rows {
            layers[layer].grow(toCapacity: max(needed, count + max(16, count / 4)))
        }
        func write(_ source: Tensor, into storage: inout Tensor) {
            storage.withUnsafeMutableBufferPointer { o in
                source.withUnsafeBufferPointer { (o.baseAddress! + count * width).update(from: $0.baseAddress!, count: $0.count) }
            }
        }
        write(keys, into: &layers[layer].keyStorage)
        write(values, into: &layers[layer].valueStorage)
        layers[layer].count = needed
    }

    /// Keeps only `rows` (ascending) of the given layers' caches (a new, smaller allocation).
    public func keepRows(_ rows: [Int], layers selected: Range<Int>) throws {
        for l in selected {
            layers[l] = Layer(keys: try layers[l].keys.gatherRows(rows), values: try layers[l].values.gatherRows(rows))
        }
    }
}
