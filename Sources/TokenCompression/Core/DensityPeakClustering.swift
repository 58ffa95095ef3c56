import Foundation
import Tensors

/// The number types a DPC-kNN computation runs in, with the `exp` each author's code uses for it.
///
/// The authors' codes compute the clustering in float32 (torch on float tensors); the float64 users
/// here (HoliTom, PruneVid, FastVID) chose float64 to be exact where float32 would only round. The
/// type is a parameter, not a global choice, so each method keeps its arithmetic.
public protocol DensityPeakScalar: BinaryFloatingPoint, Sendable {
    /// eˣ as the method computes it (`exp` for float64, `expf` for float32).
    static func densityExp(_ x: Self) -> Self
}

extension Double: DensityPeakScalar {
    public static func densityExp(_ x: Double) -> Double { Foundation.exp(x) }
}

extension Float: DensityPeakScalar {
    public static func densityExp(_ x: Float) -> Float { expf(x) }
}

/// DPC-kNN: density-peak clustering with k nearest neighbours (`cluster_dpc_knn` of TCFormer, copied
/// into the codes of HoliTom, PruneVid, FastVID and SparseVLM).
///
/// Why one type: the four codes share the same core and differ only in the number type, how many
/// neighbours define the density, how the centres are ordered and what is done with the clusters
/// afterwards (merging stays with each method). The core, for `n` points `x` of `C` channels:
/// - `d_ij = ‖x_i − x_j‖₂ / √C` (`torch.cdist / C ** 0.5`);
/// - density `ρ_i = exp(−mean of the k smallest d_ij²)`, the point itself (d = 0) included;
/// - `δ_i` = distance to the nearest strictly denser point, or the largest distance of all for the
///   densest; score `δ_i·ρ_i`;
/// - centres = top-`clusters` scores; every point joins its nearest centre (the first in centre order
///   on ties, like `argmin`), a centre always joins itself.
///
/// The codes add `torch.rand · 1e-6` to the densities to break ties; `densityOffset` takes those draws
/// (SparseVLM's cases pass them), and without it no noise is added (HoliTom, PruneVid and FastVID: their
/// cases show the noise never changes the outcome).
public struct DensityPeakClustering<Scalar: DensityPeakScalar>: Sendable {
    /// Number of points n.
    public let count: Int
    /// `[n·n]` row-major scaled distances `d_ij = ‖x_i − x_j‖ / √C`, symmetric with an exact zero diagonal.
    public let distances: [Scalar]
    /// Largest distance (δ of the densest point).
    public let maxDistance: Scalar
    /// ρ per point (with `densityOffset` added when given).
    public let density: [Scalar]
    /// DPC score δ·ρ per point.
    public let score: [Scalar]

    /// How the chosen centres are numbered (the cluster ids `assign` returns).
    public enum CentreOrder: Sendable {
        /// Descending score, `torch.topk` order (PruneVid, SparseVLM).
        case score
        /// Ascending point index: HoliTom sorts the topk indices before merging.
        case index
    }

    /// The clustering core over precomputed scaled distances.
    /// - Parameters:
    ///   - distances: `[n·n]` symmetric distances with a zero diagonal.
    ///   - neighbours: k of the density (the point itself counts as one); at most n are used.
    ///   - densityOffset: added to each density before δ is computed (the codes' `rand·1e-6`, already scaled).
    public init(distances: [Scalar], count n: Int, neighbours k: Int, densityOffset: [Scalar]? = nil) {
        precondition(distances.count == n * n, "DPC-kNN: \(distances.count) distances for \(n) points")
        precondition(k >= 1, "DPC-kNN: k = \(k) neighbours")
        precondition(densityOffset.map { $0.count == n } ?? true, "DPC-kNN: density offset of the wrong length")
        count = n
        self.distances = distances
        var largest: Scalar = 0
        for v in distances { largest = max(largest, v) }
        maxDistance = largest
        var rho = (0..<n).map { i -> Scalar in
            let nearest = distances[(i * n)..<((i + 1) * n)].sorted().prefix(k)
            var sum: Scalar = 0
            for d in nearest { sum += d * d }
            return Scalar.densityExp(-(sum / Scalar(nearest.count)))
        }
        if let densityOffset { for i in 0..<n { rho[i] += densityOffset[i] } }
        density = rho
        score = (0..<n).map { i -> Scalar in
            var delta = largest
            for j in 0..<n where rho[j] > rho[i] { delta = min(delta, distances[i * n + j]) }
            return delta * rho[i]
        }
    }

    /// Scaled distance between points i and j.
    public func distance(_ i: Int, _ j: Int) -> Scalar { distances[i * count + j] }

    /// The `clusters` highest-scoring points (ties to the lower index), numbered in `order`.
    public func centres(_ clusters: Int, order: CentreOrder) -> [Int] {
        let top = Selection.topK(score, clusters)
        switch order {
        case .score: return top
        case .index: return top.sorted()
        }
    }

    /// Cluster id (position in `centres`) of every point: the nearest centre, the first on ties; each
    /// centre gets its own id even when it coincides with an earlier centre.
    public func assign(to centres: [Int]) -> [Int] {
        precondition(!centres.isEmpty, "DPC-kNN: no centres to assign to")
        let n = count
        var labels = (0..<n).map { i -> Int in
            var best = 0
            for c in 1..<centres.count where distances[centres[c] * n + i] < distances[centres[best] * n + i] { best = c }
            return best
        }
        for (c, centre) in centres.enumerated() { labels[centre] = c }
        return labels
    }
}

extension DensityPeakClustering where Scalar == Double {
    /// Float64 DPC-kNN over `rows` `[n][C]` (HoliTom, PruneVid, FastVID): differences, squares, sums and
    /// the square root all in float64 (rows of float32 features are widened before subtracting).
    public init(rows: [[Double]], neighbours: Int) {
        let n = rows.count, c = rows.first?.count ?? 0
        let scale = Double(c).squareRoot()
        var d = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in (i + 1)..<max(n, i + 1) {
                var acc = 0.0
                for k in 0..<c { let v = rows[i][k] - rows[j][k]; acc += v * v }
                let value = acc.squareRoot() / scale
                d[i * n + j] = value; d[j * n + i] = value
            }
        }
        self.init(distances: d, count: n, neighbours: neighbours)
    }
}

extension DensityPeakClustering where Scalar == Float {
    /// Float32 DPC-kNN over `features` `[n, C]` as SparseVLM's torch code rounds it: the difference in
    /// float32, its squares summed in float64, the distance rounded to float32 and divided by a float32
    /// √C; densities and scores in float32 (`expf`).
    public init(features: Tensor, neighbours: Int, densityOffset: [Float]? = nil) {
        let n = features.rows, c = features.columns
        let scale = Float(Double(c).squareRoot())
        var d = [Float](repeating: 0, count: n * n)
        features.withUnsafeBufferPointer { x in
            for i in 0..<n {
                for j in (i + 1)..<max(n, i + 1) {
                    var sq: Double = 0
                    for k in 0..<c { let v = Double(x[i * c + k] - x[j * c + k]); sq += v * v }
                    let value = Float(sq.squareRoot()) / scale
                    d[i * n + j] = value; d[j * n + i] = value
                }
            }
        }
        self.init(distances: d, count: n, neighbours: neighbours, densityOffset: densityOffset)
    }
}
