extension Tensor {
    /// Rows at `indices` (in that order) of the tensor seen as `[rows, columns]`.
    ///
    /// This is how pruning becomes physical: the result owns only the kept rows.
    public func gatherRows(_ indices: [Int]) throws -> Tensor {
        let c = columns, n = rows
        if let bad = indices.first(where: { $0 < 0 || $0 >= n }) {
            throw TensorError("gatherRows: index \(bad) out of range for \(n) rows")
        }
        var out = Tensor(zeros: [indices.count] + (rank >= 2 ? [c] : []))
        out.withUnsafeMutableBufferPointer { o in
            withUnsafeBufferPointer { x in
                for (i, r) in indices.enumerated() {
                    (o.baseAddress! + i * c).update(from: x.baseAddress! + r * c, count: c)
                }
            }
        }
        return out
    }

    /// Copy with `source`'s rows written at row `indices` (`source.rows == indices.count`).
    public func scatteringRows(_ source: Tensor, at indices: [Int]) throws -> Tensor {
        let c = columns, n = rows
        guard source.columns == c, source.rows == indices.count else {
            throw TensorError.shape("scatterRows", "\(source.shape) into \(shape) at \(indices.count) indices")
        }
        if let bad = indices.first(where: { $0 < 0 || $0 >= n }) {
            throw TensorError("scatterRows: index \(bad) out of range for \(n) rows")
        }
        var out = self
        out.withUnsafeMutableBufferPointer { o in
            source.withUnsafeBufferPointer { s in
                for (i, r) in indices.enumerated() {
                    (o.baseAddress! + r * c).update(from: s.baseAddress! + i * c, count: c)
                }
            }
        }
        return out
    }

    /// Rows `range` as a new tensor.
    public func rows(_ range: Range<Int>) throws -> Tensor { try gatherRows(Array(range)) }

    /// Stacks tensors of equal width along the row axis.
    public static func concatenateRows(_ parts: [Tensor]) throws -> Tensor {
        guard let first = parts.first else { throw TensorError("concatenateRows: nothing to concatenate") }
        let c = first.columns
        guard parts.allSatisfy({ $0.columns == c }) else {
            throw TensorError.shape("concatenateRows", parts.map { "\($0.shape)" }.joined(separator: ", "))
        }
        let total = parts.reduce(0) { $0 + $1.rows }
        var out = Tensor(zeros: [total, c])
        out.withUnsafeMutableBufferPointer { o in
            var offset = 0
            for p in parts {
                p.withUnsafeBufferPointer { (o.baseAddress! + offset).update(from: $0.baseAddress!, count: $0.count) }
                offset += p.count
            }
        }
        return out
    }

    /// `[rows, heads·d]` → `[heads, rows, d]`: the per-head layout of a fused projection (queries,
    /// keys) for per-head products.
    public func splittingHeads(_ heads: Int) throws -> Tensor {
        guard rank == 2, heads > 0, columns % heads == 0 else {
            throw TensorError.shape("splittingHeads", "\(shape) into \(heads) heads")
        }
        let n = rows, d = columns / heads
        var out = Tensor(overwrittenShape: [heads, n, d])
        out.withUnsafeMutableBufferPointer { o in
            withUnsafeBufferPointer { s in
                for t in 0..<n { for h in 0..<heads { for i in 0..<d { o[(h * n + t) * d + i] = s[t * heads * d + h * d + i] } } }
            }
        }
        return out
    }

    /// Columns `range` of a `[rows, columns]` tensor (e.g. one head out of a fused projection).
    public func columns(_ range: Range<Int>) throws -> Tensor {
        let c = columns
        guard range.lowerBound >= 0, range.upperBound <= c else {
            throw TensorError("columns: \(range) out of range for \(c) columns")
        }
        let w = range.count
        var out = Tensor(zeros: [rows, w])
        out.withUnsafeMutableBufferPointer { o in
            withUnsafeBufferPointer { x in
                for r in 0..<rows {
                    (o.baseAddress! + r * w).update(from: x.baseAddress! + r * c + range.lowerBound, count: w)
                }
            }
        }
        return out
    }

    /// Transpose of a `[rows, columns]` tensor.
    public func transposed() -> Tensor {
        let r = rows, c = columns
        var out = Tensor(zeros: [c, r])
        out.withUnsafeMutableBufferPointer { o in
            withUnsafeBufferPointer { x in
                for i in 0..<r { for j in 0..<c { o[j * r + i] = x[i * c + j] } }
            }
        }
        return out
    }
}
