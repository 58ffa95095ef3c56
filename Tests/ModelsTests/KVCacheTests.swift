import Testing
@testable import Models
import Tensors

@Suite struct KVCacheTests {
    static func rows(_ values: [[Float]]) throws -> Tensor { try Tensor(rows: values) }

    @Test func appendsInPlaceAfterReserveAndReadsBackExactRows() throws {
        let cache = KVCache(layers: 2, width: 2)
        try cache.append(layer: 0, keys: try Self.rows([[1, 2], [3, 4]]), values: try Self.rows([[5, 6], [7, 8]]))
        try cache.append(layer: 1, keys: try Self.rows([[0, 0]]), values: try Self.rows([[1, 1]]))
        cache.reserve(additionalRows: 3)
        #expect(cache.layers[0].keyStorage.rows == 5 && cache.layers[0].count == 2)
        #expect(cache.byteCount == (2 + 1) * 2 * 2 * 4)  // cached rows only, not the spare room
        for step in 0..<5 {  // two steps beyond the reservation: the storage grows
            let f = Float(step)
            try cache.append(layer: 0, keys: try Self.rows([[10 + f, 20 + f]]), values: try Self.rows([[30 + f, 40 + f]]))
        }
        #expect(cache.tokenCounts == [7, 1])
        #expect(cache.layers[0].keys.shape == [7, 2])
        #expect(cache.layers[0].keys.values == [1, 2, 3, 4, 10, 20, 11, 21, 12, 22, 13, 23, 14, 24])
        #expect(cache.layers[0].values.values == [5, 6, 7, 8, 30, 40, 31, 41, 32, 42, 33, 43, 34, 44])
        #expect(cache.layers[0].keyStorage.rows >= 7)
    }

    @Test func readKeysAreNotChangedByLaterAppends() throws {
        let cache = KVCache(layers: 1, width: 1)
        try cache.append(layer: 0, keys: try Self.rows([[1]]), values: try Self.rows([[2]]))
        let before = cache.layers[0].keys  // shares storage while the cache has no spare room
        try cache.append(layer: 0, keys: try Self.rows([[3]]), values: try Self.rows([[4]]))
        #expect(before.values == [1])
        #expect(cache.layers[0].keys.values == [1, 3])
    }

    @Test func keepRowsShrinksTheSelectedLayersAndWidthMismatchThrows() throws {
        let cache = KVCache(layers: 2, width: 1)
        for l in 0..<2 { try cache.append(layer: l, keys: try Self.rows([[0], [1], [2], [3]]), values: try Self.rows([[4], [5], [6], [7]])) }
        cache.reserve(additionalRows: 2)
        try cache.keepRows([1, 3], layers: 1..<2)
        #expect(cache.tokenCounts == [4, 2])
        #expect(cache.layers[1].values.values == [5, 7])
        #expect(throws: ModelError.self) { try cache.append(layer: 0, keys: try Self.rows([[1, 2]]), values: try Self.rows([[1, 2]])) }
    }

    @Test func attentionOverTheFirstKeyRowsEqualsAttentionOverExactTensors() throws {
        let attention = try Attention(heads: 2, headDim: 2, causal: true)
        let q = try Self.rows([[0.1, 0.2, 0.3, 0.4]])
        let k = try Self.rows([[1, 0, 0, 1], [0.5, 0.5, 1, 0], [9, 9, 9, 9]])
        let v = try Self.rows([[1, 2, 3, 4], [5, 6, 7, 8], [100, 100, 100, 100]])
        let spare = try attention(q: q, k: k, v: v, keyCount: 2).output
        let exact = try attention(q: q, k: try k.rows(0..<2), v: try v.rows(0..<2)).output
        #expect(spare.values == exact.values)
        #expect(throws: TensorError.self) { try attention(q: q, k: k, v: v, keyCount: 4) }
    }
}
