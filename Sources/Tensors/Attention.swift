import Foundation
#if arch(x86_64)
import CVectorKernels
#endif

/// What a caller wants back from attention besides its output.
public enum AttentionRecord: Sendable, Equatable {
    /// Nothing: the fused path (no score matrix beyond one block of rows is ever held).
    case none
    /// Softmax probabilities of the given query rows (`nil` = all rows).
    case probabilities(rows: [Int]?)
    /// Scaled pre-softmax logits of the given query rows (`nil` = all rows); masked entries are -inf.
    case logits(rows: [Int]?)
}

/// Attention scores recorded for some query rows: `values[h, i, j]` for head `h`, the `i`-th
/// requested row (`rows[i]`) and key `j`.
public struct RecordedAttention: Sendable {
    public let rows: [Int]
    public let isLogits: Bool
    /// `[heads, rows.count, keys]`.
    public let values: Tensor
}

/// Multi-head scaled dot-product attention over `[tokens, heads·headDim]` projections.
///
/// One implementation serves both paths: queries are processed in blocks of rows per head, each
/// block's scores live in a small scratch buffer, and only the rows a compression method asked
/// for are copied out. With `.none` nothing n×n is ever materialised.
public struct Attention: Sendable {
    public let heads: Int
    public let kvHeads: Int
    public let headDim: Int
    public let causal: Bool
    public let scale: Float
    /// Query rows processed together; bounds scratch memory to `blockRows × keys` per thread.
    /// `nil` (default): 128 with a causal mask (smaller blocks skip more masked keys), 384 without
    /// (larger score GEMMs; measured here: 16×64 heads at 577 tokens 7.7 ms vs 8.3 ms at 128,
    /// 32×128 at 2880 tokens 618 vs 710 ms).
    public var blockRows: Int?

    public init(heads: Int, kvHeads: Int? = nil, headDim: Int, causal: Bool, scale: Float? = nil) throws {
        let kv = kvHeads ?? heads
        guard heads > 0, headDim > 0, kv > 0, heads % kv == 0 else {
            throw TensorError("attention: \(heads) heads must be a positive multiple of \(kv) key/value heads")
        }
        self.heads = heads
        self.kvHeads = kv
        self.headDim = headDim
        self.causal = causal
        self.scale = scale ?? 1 / Float(headDim).squareRoot()
    }

    /// Computes attention.
    /// - Parameters:
    ///   - q: `[n, heads·headDim]`.
    ///   - k, v: `[m, kvHeads·headDim]`; with `causal`, query `i` sees keys `0...queryOffset+i`
    ///     (`queryOffset` = number of cached keys before the first query, `m − n` by default).
    ///   - keyCount: use only the first `keyCount` rows of `k` and `v` (a KV cache with spare room);
    ///     `nil` = all rows, which must then be as many in `k` as in `v`.
    ///   - keyBias: an additive bias per key (one value per key row used), added to the scaled logit
    ///     of that key for every query and head before the softmax. ToMe's proportional attention
    ///     passes `log(size_j)`, so that a token standing for `s` merged patches is attended as if its
    ///     `s` copies were still there. Recorded logits include it. `nil`: no bias.
    /// - Returns: `[n, heads·headDim]` and the recorded rows when asked.
    public func callAsFunction(q: Tensor, k: Tensor, v: Tensor, queryOffset: Int? = nil, keyCount: Int? = nil,
                               keyBias: [Float]? = nil,
                               record: AttentionRecord = .none) throws -> (output: Tensor, recorded: RecordedAttention?) {
        let qWidth = heads * headDim, kvWidth = kvHeads * headDim
        let m = keyCount ?? k.rows
        guard q.rank == 2, k.rank == 2, v.rank == 2, q.columns == qWidth, k.columns == kvWidth,
              v.columns == kvWidth, keyCount != nil || k.rows == v.rows, m >= 0, m <= k.rows, m <= v.rows else {
            throw TensorError.shape("attention", "q \(q.shape), k \(k.shape), v \(v.shape)\(keyCount.map { " (first \($0) keys)" } ?? "") for \(heads)/\(kvHeads) heads of \(headDim)")
        }
        let n = q.rows
        let offset = queryOffset ?? (m - n)
        guard !causal || (offset >= 0 && offset + n <= m) else {
            throw TensorError("attention: causal query offset \(offset) with \(n) queries needs at most \(m) keys")
        }
        if let keyBias {
            guard keyBias.count == m else {
                throw TensorError.shape("attention", "key bias of \(keyBias.count) values for \(m) keys")
            }
            // -inf masks a key (a size of 0); +inf or NaN would make every row NaN.
            guard keyBias.allSatisfy({ !$0.isNaN && $0 != .infinity }) else {
                throw TensorError("attention: key bias must be finite or -inf")
            }
        }

        #if arch(x86_64)
        if n == 1, m > 0, record == .none, FastMath.level == .avx512 {
            return (singleQuery(q: q, k: k, v: v, keys: causal ? min(m, offset + 1) : m, keyBias: keyBias), nil)
        }
        #endif

        var recordRows: [Int] = []
        var isLogits = false
        switch record {
        case .none: break
        case .probabilities(let rows): recordRows = rows ?? Array(0..<n)
        case .logits(let rows): recordRows = rows ?? Array(0..<n); isLogits = true
        }
        if let bad = recordRows.first(where: { $0 < 0 || $0 >= n }) {
            throw TensorError("attention: requested query row \(bad) out of range for \(n) queries")
        }
        var slotOfRow = [Int](repeating: -1, count: n)
        for (slot, r) in recordRows.enumerated() { slotOfRow[r] = slot }

        var output = Tensor(overwrittenShape: [n, qWidth])  // every (head, row block) is written
        var recorded = record == .none ? nil : Tensor(zeros: [heads, recordRows.count, m])
        let outBase = output.withUnsafeMutableBufferPointer { $0.baseAddress! }
        let recBase = recorded?.withUnsafeMutableBufferPointer { $0.baseAddress! }
        let qBase = q.withUnsafeBufferPointer { $0.baseAddress! }
        let kBase = k.withUnsafeBufferPointer { $0.baseAddress! }
        let vBase = v.withUnsafeBufferPointer { $0.baseAddress! }

        let block = max(1, blockRows ?? (causal ? 128 : 384))
        let blocksPerHead = (n + block - 1) / block
        let group = heads / kvHeads
        let recordedRowCount = recordRows.count
        let (heads, headDim, scale, causal) = (self.heads, self.headDim, self.scale, self.causal)
        let bias = keyBias ?? []

        // Threads over (head, block) pairs; BLAS single-threaded inside to avoid oversubscription.
        if Parallel.threadCount > 1 && heads * blocksPerHead > 1 { BLAS.useSingleThreadedKernels() }

        Parallel.forEachChunk(heads * blocksPerHead) { range in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: block * max(m, 1))
            defer { scores.deallocate() }
            for item in range {
                let h = item / blocksPerHead
                let r0 = (item % blocksPerHead) * block
                let rowsHere = min(block, n - r0)
                let kvh = h / group
                // Keys any row of this block can see.
                let visible = causal ? min(m, offset + r0 + rowsHere) : m
                BLAS.sgemm(transposeA: false, transposeB: true, m: rowsHere, n: visible, k: headDim,
                           alpha: scale,
                           a: qBase + r0 * qWidth + h * headDim, lda: qWidth,
                           b: kBase + kvh * headDim, ldb: kvWidth,
                           c: scores, ldc: visible)
                for i in 0..<rowsHere {
                    let row = scores + i * visible
                    if !bias.isEmpty { bias.withUnsafeBufferPointer { b in for j in 0..<visible { row[j] += b[j] } } }
                    if causal {
                        let last = offset + r0 + i
                        if last + 1 < visible { for j in (last + 1)..<visible { row[j] = -.infinity } }
                    }
                    let slot = slotOfRow[r0 + i]
                    if slot >= 0, isLogits, let recBase {
                        let dst = recBase + (h * recordedRowCount + slot) * m
                        dst.update(from: row, count: visible)
                        for j in visible..<m { dst[j] = -.infinity }
                    }
                    softmaxInPlace(row, count: visible)
                    if slot >= 0, !isLogits, let recBase {
                        let dst = recBase + (h * recordedRowCount + slot) * m
                        dst.update(from: row, count: visible)
                    }
                }
                BLAS.sgemm(transposeA: false, transposeB: false, m: rowsHere, n: headDim, k: visible,
                           a: scores, lda: visible,
                           b: vBase + kvh * headDim, ldb: kvWidth,
                           c: outBase + r0 * qWidth + h * headDim, ldc: qWidth)
            }
        }
        withExtendedLifetime((q, k, v)) {}
        return (output, recorded.map { RecordedAttention(rows: recordRows, isLogits: isLogits, values: $0) })
    }

    #if arch(x86_64)
    /// Decoding's attention: one query row against the first `keys` cached rows, a dot product per key
    /// straight from the cache and one weighted sum per head (C kernels), threads over heads. The general
    /// path would run two one-row sgemms per head; at a 512-token cache of a 7B model that was 13% of a
    /// decode step (it reads every cached K/V byte, which this path streams with prefetch).
    func singleQuery(q: Tensor, k: Tensor, v: Tensor, keys: Int, keyBias: [Float]?) -> Tensor {
        let qWidth = heads * headDim, kvWidth = kvHeads * headDim
        var output = Tensor(overwrittenShape: [1, qWidth])
        let outBase = output.withUnsafeMutableBufferPointer { $0.baseAddress! }
        let qBase = q.withUnsafeBufferPointer { $0.baseAddress! }
        let kBase = k.withUnsafeBufferPointer { $0.baseAddress! }
        let vBase = v.withUnsafeBufferPointer { $0.baseAddress! }
        let (headDim, scale, group) = (self.headDim, self.scale, heads / kvHeads)
        let bias = keyBias ?? []
        Parallel.forEachChunk(heads) { range in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: keys)
            defer { scores.deallocate() }
            for h in range {
                let kvh = h / group
                tc_scores1_avx512(qBase + h * headDim, kBase + kvh * headDim, kvWidth, keys, headDim, scale, scores)
                if !bias.isEmpty { for j in 0..<keys { scores[j] += bias[j] } }
                softmaxInPlace(scores, count: keys)
                tc_weighted1_avx512(scores, vBase + kvh * headDim, kvWidth, keys, headDim, outBase + h * headDim)
            }
        }
        withExtendedLifetime((q, k, v)) {}
        return output
    }
    #endif
}
