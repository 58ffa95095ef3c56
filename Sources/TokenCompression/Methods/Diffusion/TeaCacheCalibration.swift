/// TeaCache's polynomial is fitted per model from uncached runs: pairs (relative L1 change of the
/// modulated input, relative L1 change of the model output) between consecutive calls, and a
/// least-squares polynomial from the first to the second (`numpy.polyfit(x, y, 4)` in the authors'
/// notebooks). This is that fit, so a new model gets its own coefficients.
extension TeaCache {
    /// TeaCache's degree: every shipped coefficient list has five terms.
    public static let calibrationDegree = 4

    /// Least-squares polynomial `y ≈ P(x)` of `degree`, coefficients highest degree first (as
    /// `poly1d` and `Parameters.coefficients` take them).
    ///
    /// Solved by Householder QR on the Vandermonde matrix of `x / max|x|` (input changes are small,
    /// so raw powers x⁴ ~ 1e-8 would make normal equations lose most digits), then rescaled back.
    /// Throws when the pairs cannot determine the polynomial (too few distinct inputs, non-finite values).
    public static func fitPolynomial(x: [Double], y: [Double], degree: Int = calibrationDegree) throws -> [Double] {
        guard degree >= 0 else { throw CompressionError.invalidParameter("TeaCache fit: degree must be ≥ 0, got \(degree)") }
        guard x.count == y.count else { throw CompressionError.shapeMismatch("TeaCache fit: \(x.count) inputs for \(y.count) outputs") }
        guard x.allSatisfy(\.isFinite), y.allSatisfy(\.isFinite) else {
            throw CompressionError.invalidParameter("TeaCache fit: non-finite distance among the pairs")
        }
        let terms = degree + 1
        let distinct = Set(x).count
        guard distinct >= terms else {
            throw CompressionError.invalidParameter("TeaCache fit: a degree-\(degree) polynomial needs ≥ \(terms) distinct input changes, got \(distinct) (run more steps, seeds or classes)")
        }
        let scale = x.map(abs).max() ?? 0
        guard scale > 0 else { throw CompressionError.invalidParameter("TeaCache fit: every input change is 0") }
        // Column k holds u^k, u = x / scale (increasing powers); column-major for the reflections.
        let m = x.count
        var a = (0..<terms).map { k in x.map { pow($0 / scale, k) } }
        var b = y
        for k in 0..<terms {
            // Householder reflection zeroing column k below the diagonal.
            var norm = 0.0
            for i in k..<m { norm += a[k][i] * a[k][i] }
            norm = norm.squareRoot()
            guard norm > 0 else { throw CompressionError.invalidParameter("TeaCache fit: the pairs do not determine the degree-\(k) term") }
            let alpha = a[k][k] > 0 ? -norm : norm
            var v = Array(a[k][k..<m])
            v[0] -= alpha
            let vv = v.reduce(0) { $0 + $1 * $1 }
            guard vv > 0 else { continue }
            func reflect(_ col: inout [Double]) {
                var dot = 0.0
                for i in 0..<v.count { dot += v[i] * col[k + i] }
                let f = 2 * dot / vv
                for i in 0..<v.count { col[k + i] -= f * v[i] }
            }
            for j in k..<terms { reflect(&a[j]) }
            reflect(&b)
        }
        // Back substitution R·c = Qᵀb; a rank-deficient R (relative to its largest diagonal) throws.
        let largest = (0..<terms).map { abs(a[$0][$0]) }.max() ?? 0
        var c = [Double](repeating: 0, count: terms)
        for k in stride(from: terms - 1, through: 0, by: -1) {
            guard abs(a[k][k]) > 1e-12 * largest else {
                throw CompressionError.invalidParameter("TeaCache fit: the input changes are too close together to determine a degree-\(degree) polynomial")
            }
            var s = b[k]
            for j in (k + 1)..<terms { s -= a[j][k] * c[j] }
            c[k] = s / a[k][k]
        }
        // Back to powers of x, highest degree first.
        return (0..<terms).reversed().map { c[$0] / pow(scale, $0) }
    }

    private static func pow(_ base: Double, _ exponent: Int) -> Double {
        var r = 1.0
        for _ in 0..<exponent { r *= base }
        return r
    }
}

extension TeaCache {
    /// No rescaling (`P(δ) = δ`): the accumulated raw input change. The authors ship no coefficients
    /// for DiT or PixArt-α; this is our default there until `tokc teacache-calibrate` fits a polynomial.
    public static let identityCoefficients: [Double] = [1, 0]
    /// Our default threshold with `identityCoefficients` (the authors' 0.1 "slow" setting of
    /// Open-Sora/Latte, whose rescaled distances are of the same order); not a published DiT setting.
    public static let uncalibratedThreshold = 0.1
}
