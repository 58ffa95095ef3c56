import Foundation
import ModelIO

/// Fidelity of a generated image to a reference image of the same size (a cached run against the
/// uncached run from the same noise): PSNR and SSIM on the 8-bit RGB values.
public enum ImageFidelity {
    static func check(_ a: RGBImage, _ b: RGBImage) throws {
        guard a.width == b.width, a.height == b.height else {
            throw BenchError("image fidelity: sizes differ (\(a.width)×\(a.height) vs \(b.width)×\(b.height))")
        }
    }

    /// `10·log10(255² / MSE)` over every channel value; `.infinity` for identical images.
    public static func psnr(_ a: RGBImage, _ b: RGBImage) throws -> Double {
        try check(a, b)
        var sum = 0.0
        for i in a.pixels.indices {
            let d = Double(a.pixels[i]) - Double(b.pixels[i])
            sum += d * d
        }
        let mse = sum / Double(a.pixels.count)
        return mse == 0 ? .infinity : 10 * log10(255 * 255 / mse)
    }

    /// SSIM (Wang et al. 2004) per channel, averaged over the three: Gaussian window of σ = 1.5 and side
    /// 11 (the side shrinks to the largest odd size that fits a smaller image), statistics weighted by
    /// the window at every position where it fits whole, C1 = (0.01·255)², C2 = (0.03·255)², the SSIM
    /// map averaged over those positions. Variances and covariance use the window's weights as-is
    /// (no sample correction), as scikit-image with `gaussian_weights=True, use_sample_covariance=False`.
    public static func ssim(_ a: RGBImage, _ b: RGBImage) throws -> Double {
        try check(a, b)
        let (w, h) = (a.width, a.height)
        var side = min(11, w, h)
        if side % 2 == 0 { side -= 1 }
        guard side >= 1 else { throw BenchError("image fidelity: empty image") }
        let r = side / 2
        var kernel = (0..<side).map { i -> Double in
            let x = Double(i - r)
            return exp(-x * x / (2 * 1.5 * 1.5))
        }
        let norm = kernel.reduce(0, +)
        kernel = kernel.map { $0 / norm }
        let c1: Double = (0.01 * 255) * (0.01 * 255), c2: Double = (0.03 * 255) * (0.03 * 255)
        var total = 0.0
        for ch in 0..<3 {
            func value(_ img: RGBImage, _ x: Int, _ y: Int) -> Double { Double(img.pixels[(y * w + x) * 3 + ch]) }
            var sum = 0.0, count = 0
            for y in r..<(h - r) {
                for x in r..<(w - r) {
                    var mx = 0.0, my = 0.0, xx = 0.0, yy = 0.0, xy = 0.0
                    for dy in -r...r {
                        for dx in -r...r {
                            let k = kernel[dy + r] * kernel[dx + r]
                            let p = value(a, x + dx, y + dy), q = value(b, x + dx, y + dy)
                            mx += k * p
                            my += k * q
                            xx += k * p * p
                            yy += k * q * q
                            xy += k * p * q
                        }
                    }
                    let vx = xx - mx * mx, vy = yy - my * my, cov = xy - mx * my
                    sum += ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
                    count += 1
                }
            }
            total += sum / Double(count)
        }
        return total / 3
    }
}

/// The Fréchet distance between two sets of feature vectors, each summarised by its mean and
/// covariance (the FID formula): `|μ1 − μ2|² + Tr(Σ1 + Σ2 − 2 (Σ1^½ Σ2 Σ1^½)^½)`, covariances with
/// the n − 1 denominator (numpy's `cov`). The matrix square roots come from symmetric eigen-
/// decompositions (cyclic Jacobi), so no LAPACK is needed; negative round-off eigenvalues count as 0.
public enum FrechetDistance {
    public static func between(_ a: [[Double]], _ b: [[Double]]) throws -> Double {
        guard a.count >= 2, b.count >= 2 else {
            throw BenchError("Fréchet distance needs at least 2 vectors per set (got \(a.count) and \(b.count))")
        }
        let d = a[0].count
        guard d > 0, a.allSatisfy({ $0.count == d }), b.allSatisfy({ $0.count == d }) else {
            throw BenchError("Fréchet distance: feature vectors must all have the same non-zero length")
        }
        let (m1, s1) = moments(a), (m2, s2) = moments(b)
        var meanTerm = 0.0
        for i in 0..<d { meanTerm += (m1[i] - m2[i]) * (m1[i] - m2[i]) }
        let root1 = try symmetricSqrt(s1, n: d)
        let inner = multiply(multiply(root1, s2, n: d), root1, n: d)
        let (values, _) = try symmetricEigen(symmetrized(inner, n: d), n: d)
        let traceRoot = values.reduce(0) { $0 + sqrt(max($1, 0)) }
        var traces = 0.0
        for i in 0..<d { traces += s1[i * d + i] + s2[i * d + i] }
        return meanTerm + traces - 2 * traceRoot
    }

    /// Mean and covariance (row-major d×d, n − 1 denominator).
    static func moments(_ x: [[Double]]) -> ([Double], [Double]) {
        let n = x.count, d = x[0].count
        var mean = [Double](repeating: 0, count: d)
        for v in x { for i in 0..<d { mean[i] += v[i] } }
        mean = mean.map { $0 / Double(n) }
        var cov = [Double](repeating: 0, count: d * d)
        for v in x {
            for i in 0..<d {
                let di = v[i] - mean[i]
                for j in i..<d { cov[i * d + j] += di * (v[j] - mean[j]) }
            }
        }
        for i in 0..<d {
            for j in i..<d {
                cov[i * d + j] /= Double(n - 1)
                cov[j * d + i] = cov[i * d + j]
            }
        }
        return (mean, cov)
    }

    static func multiply(_ a: [Double], _ b: [Double], n: Int) -> [Double] {
        var c = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for k in 0..<n {
                let aik = a[i * n + k]
                if aik == 0 { continue }
                for j in 0..<n { c[i * n + j] += aik * b[k * n + j] }
            }
        }
        return c
    }

    static func symmetrized(_ a: [Double], n: Int) -> [Double] {
        var s = a
        for i in 0..<n { for j in 0..<n { s[i * n + j] = 0.5 * (a[i * n + j] + a[j * n + i]) } }
        return s
    }

    /// `V · diag(√max(λ, 0)) · Vᵀ` of a symmetric PSD matrix.
    static func symmetricSqrt(_ a: [Double], n: Int) throws -> [Double] {
        let (values, vectors) = try symmetricEigen(a, n: n)
        var out = [Double](repeating: 0, count: n * n)
        for k in 0..<n {
            let s = sqrt(max(values[k], 0))
            if s == 0 { continue }
            for i in 0..<n {
                let vik = vectors[i * n + k] * s
                for j in 0..<n { out[i * n + j] += vik * vectors[j * n + k] }
            }
        }
        return out
    }

    /// Eigenvalues and eigenvectors (columns of the row-major matrix) by cyclic Jacobi rotations.
    static func symmetricEigen(_ matrix: [Double], n: Int) throws -> ([Double], [Double]) {
        var a = matrix
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        let scale = max(a.reduce(0) { max($0, abs($1)) }, 1e-300)
        for _ in 0..<100 {
            var off = 0.0
            for i in 0..<n { for j in (i + 1)..<max(i + 1, n) { off += a[i * n + j] * a[i * n + j] } }
            if off.squareRoot() <= 1e-14 * scale * Double(n) { return ((0..<n).map { a[$0 * n + $0] }, v) }
            for p in 0..<n {
                for q in (p + 1)..<max(p + 1, n) {
                    let apq = a[p * n + q]
                    if abs(apq) < 1e-300 { continue }
                    let theta = (a[q * n + q] - a[p * n + p]) / (2 * apq)
                    let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<n {
                        let akp = a[k * n + p], akq = a[k * n + q]
                        a[k * n + p] = c * akp - s * akq
                        a[k * n + q] = s * akp + c * akq
                    }
                    for k in 0..<n {
                        let apk = a[p * n + k], aqk = a[q * n + k]
                        a[p * n + k] = c * apk - s * aqk
                        a[q * n + k] = s * apk + c * aqk
                    }
                    for k in 0..<n {
                        let vkp = v[k * n + p], vkq = v[k * n + q]
                        v[k * n + p] = c * vkp - s * vkq
                        v[k * n + q] = s * vkp + c * vkq
                    }
                }
            }
        }
        throw BenchError("Fréchet distance: the eigen-decomposition did not converge")
    }
}
