/// L2 norms, L2 normalisation (`F.normalize`) and cosine similarity (`F.cosine_similarity`) of vectors.
///
/// Why one place: nearly every merging or scoring method normalises rows or compares them by cosine,
/// and each had its own few lines for it. They differ only in the number type, in where float32 sums are
/// accumulated and in the epsilon their author's code used, so those stay explicit parameters at every
/// call site (no defaults): `eps` 1e-12 is `F.normalize`, 1e-8 is `F.cosine_similarity`, and 0 is a
/// plain division by the norm (codes that write `x / x.norm()`; `max(‖x‖, 0)` is `‖x‖` itself, so a zero
/// vector still gives NaN as there). Every sum runs in index order, so results are reproducible to the bit.
public enum L2Norm {
    /// Where a sum of squares of float32 values is accumulated.
    public enum Accumulation: Sendable {
        /// Float32 products and sum (ToCa, DuCa, VisionZip).
        case float32
        /// Products and sum widened to float64, the norm rounded to float32 (FiCoCo-V, GlobalCom², PruMerge).
        case float64
    }

    // MARK: - Norms

    /// ‖x‖₂ of float64 values (float64 sum).
    public static func norm(_ x: [Double]) -> Double {
        var sum = 0.0
        for v in x { sum += v * v }
        return sum.squareRoot()
    }

    /// ‖x‖₂ of float32 values, products and sum in float64 (the norm is not rounded to float32).
    public static func norm(_ x: [Float]) -> Double {
        x.withUnsafeBufferPointer { sumOfSquares64($0) }.squareRoot()
    }

    /// ‖x‖₂ of float32 values summed in float32.
    public static func float32Norm(_ x: [Float]) -> Float {
        x.withUnsafeBufferPointer { sumOfSquares32($0) }.squareRoot()
    }

    // MARK: - Normalisation

    /// `x / max(‖x‖, eps)` in float64.
    public static func normalized(_ x: [Double], eps: Double) -> [Double] {
        let n = max(norm(x), eps)
        return x.map { $0 / n }
    }

    /// `x / max(‖x‖, eps)` of float32 values: the norm accumulated as `accumulation` says, clamped and
    /// divided in float32.
    public static func normalized(_ x: [Float], eps: Float, accumulation: Accumulation) -> [Float] {
        var out = [Float](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { normalize(src, into: $0, eps: eps, accumulation: accumulation) }
        }
        return out
    }

    /// `normalized` writing into `out` (same count as `x`), for rows read straight from a tensor buffer.
    public static func normalize(_ x: UnsafeBufferPointer<Float>, into out: UnsafeMutableBufferPointer<Float>,
                                 eps: Float, accumulation: Accumulation) {
        precondition(out.count == x.count, "L2Norm.normalize: \(x.count) values into \(out.count)")
        let norm: Float
        switch accumulation {
        case .float32: norm = sumOfSquares32(x).squareRoot()
        case .float64: norm = Float(sumOfSquares64(x).squareRoot())
        }
        let n = max(norm, eps)
        for i in 0..<x.count { out[i] = x[i] / n }
    }

    // MARK: - Cosine similarity

    /// `dot / (max(‖a‖, eps) · max(‖b‖, eps))` in float64 (each norm clamped on its own, as
    /// `F.cosine_similarity`).
    public static func cosine(_ a: [Double], _ b: [Double], eps: Double) -> Double {
        precondition(a.count == b.count, "L2Norm.cosine: vectors of \(a.count) and \(b.count) values")
        var dot = 0.0, na = 0.0, nb = 0.0
        for k in 0..<a.count { dot += a[k] * b[k]; na += a[k] * a[k]; nb += b[k] * b[k] }
        return dot / (max(na.squareRoot(), eps) * max(nb.squareRoot(), eps))
    }

    /// The same in float32 (float32 sums), over buffers: DART and ToCa compare tensor rows in place.
    public static func cosine(_ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>, eps: Float) -> Float {
        precondition(a.count == b.count, "L2Norm.cosine: vectors of \(a.count) and \(b.count) values")
        var dot: Float = 0, na: Float = 0, nb: Float = 0
        for i in 0..<a.count { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i] }
        return dot / (max(na.squareRoot(), eps) * max(nb.squareRoot(), eps))
    }

    // MARK: - Sums

    private static func sumOfSquares32(_ x: UnsafeBufferPointer<Float>) -> Float {
        var sum: Float = 0
        for v in x { sum += v * v }
        return sum
    }

    private static func sumOfSquares64(_ x: UnsafeBufferPointer<Float>) -> Double {
        var sum = 0.0
        for v in x { sum += Double(v) * Double(v) }
        return sum
    }
}
