import Foundation
import Testing
import Tensors
@testable import TokenCompression
import TestSupport

/// The DPC-kNN core as the methods computed it before it was shared: the float64 version HoliTom,
/// PruneVid and FastVID each had, and SparseVLM's float32 one. Kept here as references.
private enum FormerDPC {
    /// float64 distances, density, score (HoliTom/PruneVid/FastVID).
    static func score64(_ x: [[Double]], k: Int) -> (d: [[Double]], score: [Double]) {
        let n = x.count, C = x.first?.count ?? 0
        let scale = Double(C).squareRoot()
        var d = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
        var dMax = 0.0
        for i in 0..<n {
            for j in (i + 1)..<max(n, i + 1) {
                var acc = 0.0
                for c in 0..<C { let v = x[i][c] - x[j][c]; acc += v * v }
                d[i][j] = acc.squareRoot() / scale; d[j][i] = d[i][j]
                dMax = max(dMax, d[i][j])
            }
        }
        let density = d.map { row -> Double in
            let nearest = row.sorted().prefix(k)
            return exp(-nearest.reduce(0) { $0 + $1 * $1 } / Double(nearest.count))
        }
        let score = (0..<n).map { i -> Double in
            var delta = dMax
            for j in 0..<n where density[j] > density[i] { delta = min(delta, d[i][j]) }
            return delta * density[i]
        }
        return (d, score)
    }

    /// PruneVid's labels: centres in topk order, nearest centre, centres themselves.
    static func labels64(_ x: [[Double]], clusters: Int, k: Int) -> [Int] {
        let (d, score) = score64(x, k: k)
        let centres = Selection.topK(score, clusters)
        var labels = (0..<x.count).map { i -> Int in
            var best = 0
            for c in 1..<max(centres.count, 1) where d[centres[c]][i] < d[centres[best]][i] { best = c }
            return best
        }
        for (c, centre) in centres.enumerated() { labels[centre] = c }
        return labels
    }

    /// HoliTom's centres (ascending index) and members (non-centres, ascending).
    static func members64(_ x: [[Double]], clusters: Int, k: Int) -> (centres: [Int], members: [[Int]]) {
        let (d, score) = score64(x, k: k)
        let centres = Selection.topK(score, clusters).sorted()
        let centreSet = Set(centres)
        var members = [[Int]](repeating: [], count: centres.count)
        for i in 0..<x.count where !centreSet.contains(i) {
            var best = 0
            for c in 1..<centres.count where d[i][centres[c]] < d[i][centres[best]] { best = c }
            members[best].append(i)
        }
        return (centres, members)
    }

    /// SparseVLM's float32 clustering with optional noise.
    static func cluster32(_ features: Tensor, clusterCount: Int, noise: [Float]?) -> (centres: [Int], assignment: [Int], score: [Float]) {
        let n = features.rows, c = features.columns
        let scale = Float(Double(c).squareRoot())
        var distance = [Float](repeating: 0, count: n * n)
        features.withUnsafeBufferPointer { x in
            for i in 0..<n {
                for j in (i + 1)..<n {
                    var sq: Double = 0
                    for k in 0..<c { let d = Double(x[i * c + k] - x[j * c + k]); sq += d * d }
                    let value = Float(sq.squareRoot()) / scale
                    distance[i * n + j] = value
                    distance[j * n + i] = value
                }
            }
        }
        let distanceMax = distance.max() ?? 0
        var density = (0..<n).map { i -> Float in
            let nearest = distance[(i * n)..<((i + 1) * n)].sorted().prefix(clusterCount)
            var sum: Float = 0
            for d in nearest { sum += d * d }
            return expf(-(sum / Float(clusterCount)))
        }
        if let noise { density = zip(density, noise).map { $0 + $1 * Float(1e-6) } }
        let score = (0..<n).map { i -> Float in
            var delta = distanceMax
            for j in 0..<n where density[j] > density[i] { delta = min(delta, distance[i * n + j]) }
            return delta * density[i]
        }
        let centers = Selection.topK(score, clusterCount)
        var assignment = (0..<n).map { i -> Int in
            var best = 0
            for (k, centre) in centers.enumerated() where distance[centre * n + i] < distance[centers[best] * n + i] { best = k }
            return best
        }
        for (k, centre) in centers.enumerated() { assignment[centre] = k }
        return (centers, assignment, score)
    }
}

/// Rows with some exact duplicates, so that tied densities and distances occur.
private func dpcRows(_ g: inout TestRandom, n: Int, c: Int) -> [[Float]] {
    var rows = (0..<n).map { _ in (0..<c).map { _ in g.signed() } }
    for i in stride(from: 3, to: n, by: 5) { rows[i] = rows[i - 3] }
    return rows
}

@Suite struct DensityPeakClusteringTests {
    /// Two groups on a line, C = 1, k = 3: {0, 1, 2} and {10, 10.5, 11}.
    /// Mean of the 3 smallest d² (self included): 5/3, 2/3, 5/3, 1.25/3, 0.5/3, 1.25/3. Densest is 10.5
    /// (δ = largest distance 11); 10 and 11 have δ = 0.5; 1 has δ = 9 (to 10); 0 and 2 have δ = 1.
    @Test func handComputedLineExample() {
        let x: [[Double]] = [[0], [1], [2], [10], [10.5], [11]]
        let dpc = DensityPeakClustering(rows: x, neighbours: 3)
        let meanSquares: [Double] = [5.0 / 3, 2.0 / 3, 5.0 / 3, 1.25 / 3, 0.5 / 3, 1.25 / 3]
        let expectedDensity = meanSquares.map { exp(-$0) }
        let expectedDelta: [Double] = [1, 9, 1, 0.5, 11, 0.5]
        #expect(dpc.maxDistance == 11)
        #expect(dpc.distance(1, 4) == 9.5 && dpc.distance(4, 1) == 9.5 && dpc.distance(2, 2) == 0)
        for i in 0..<6 {
            #expect(abs(dpc.density[i] - expectedDensity[i]) < 1e-12)
            #expect(abs(dpc.score[i] - expectedDelta[i] * expectedDensity[i]) < 1e-12)
        }
        #expect(dpc.centres(2, order: .score) == [4, 1])
        #expect(dpc.centres(2, order: .index) == [1, 4])
        #expect(dpc.assign(to: [4, 1]) == [1, 1, 1, 0, 0, 0])
        #expect(dpc.assign(to: [1, 4]) == [0, 0, 0, 1, 1, 1])
    }

    /// Equal scores: the lower index is the earlier centre; equal distances: the earlier centre wins.
    @Test func tiesGoToTheLowerIndexAndTheEarlierCentre() {
        // 0 and 2 are symmetric around 1 (the densest): same density, same δ (1, to point 1), same score.
        let dpc = DensityPeakClustering(rows: [[-1], [0], [1]], neighbours: 3)
        #expect(dpc.score[0] == dpc.score[2])
        #expect(dpc.centres(3, order: .score) == [1, 0, 2])
        // Point 1 is 1 away from both 0 and 2: it joins whichever centre comes first.
        #expect(dpc.assign(to: [0, 2]) == [0, 0, 1])
        #expect(dpc.assign(to: [2, 0]) == [1, 0, 0])
        // A duplicated centre still labels itself.
        let twins = DensityPeakClustering(rows: [[0], [0], [5]], neighbours: 2)
        #expect(twins.assign(to: [0, 1]) == [0, 1, 0])
    }

    /// The offset (the codes' rand·1e-6) breaks a density tie: the point given more becomes the densest.
    @Test func densityOffsetBreaksTies() throws {
        let x = try Tensor(shape: [3, 1], values: [0, 0, 4])
        let plain = DensityPeakClustering(features: x, neighbours: 2)
        #expect(plain.density[0] == plain.density[1])
        let nudged = DensityPeakClustering(features: x, neighbours: 2, densityOffset: [0, 1e-6, 0])
        #expect(nudged.density[1] > nudged.density[0])
        // Only 1 is densest now: 0 gets δ = d(0, 1) = 0, 1 gets the largest distance.
        #expect(nudged.score[0] == 0 && nudged.score[1] == nudged.maxDistance * nudged.density[1])
        #expect(nudged.centres(1, order: .score) == [1])
    }

    /// k larger than n uses all n points (the mean is over what `prefix` returns).
    @Test func neighboursBeyondTheCountUseEveryPoint() {
        let dpc = DensityPeakClustering(rows: [[0], [2]], neighbours: 7)
        #expect(dpc.density == [exp(-2.0), exp(-2.0)])  // (0 + 4) / 2
    }

    /// Bit-for-bit agreement with the float64 code HoliTom, PruneVid and FastVID had before.
    @Test func float64AgreesWithTheFormerMethodCode() {
        var g = TestRandom(11)
        for (n, c, k, clusters) in [(9, 4, 3, 2), (23, 6, 7, 5), (30, 3, 4, 11), (12, 8, 1, 12)] {
            let x = dpcRows(&g, n: n, c: c).map { $0.map(Double.init) }
            let dpc = DensityPeakClustering(rows: x, neighbours: k)
            let former = FormerDPC.score64(x, k: k)
            #expect(dpc.score == former.score)
            #expect(dpc.assign(to: dpc.centres(clusters, order: .score)) == FormerDPC.labels64(x, clusters: clusters, k: k))
            let centres = dpc.centres(clusters, order: .index)
            let labels = dpc.assign(to: centres)
            let members = centres.indices.map { c in (0..<n).filter { labels[$0] == c && !centres.contains($0) } }
            let holiTom = FormerDPC.members64(x, clusters: clusters, k: k)
            #expect(centres == holiTom.centres && members == holiTom.members)
        }
    }

    /// Bit-for-bit agreement with SparseVLM's former float32 code, with and without noise.
    @Test func float32AgreesWithTheFormerSparseVLMCode() throws {
        var g = TestRandom(12)
        for (n, c, clusters) in [(10, 5, 2), (23, 6, 3), (31, 8, 4), (7, 3, 7)] {
            let x = try Tensor(rows: dpcRows(&g, n: n, c: c))
            for noise in [nil, (0..<n).map { _ in (g.signed() + 1) / 2 }] {
                let dpc = DensityPeakClustering(features: x, neighbours: clusters, densityOffset: noise.map { $0.map { $0 * Float(1e-6) } })
                let centres = dpc.centres(clusters, order: .score)
                let former = FormerDPC.cluster32(x, clusterCount: clusters, noise: noise)
                #expect(dpc.score == former.score)
                #expect(centres == former.centres)
                #expect(dpc.assign(to: centres) == former.assignment)
            }
        }
    }

    /// The float32 path rounds differently from the float64 one on the same values (why both exist).
    @Test func float32AndFloat64PathsKeepTheirOwnRounding() throws {
        var g = TestRandom(13)
        let rows = dpcRows(&g, n: 16, c: 7)
        let d32 = DensityPeakClustering(features: try Tensor(rows: rows), neighbours: 4)
        let d64 = DensityPeakClustering(rows: rows.map { $0.map(Double.init) }, neighbours: 4)
        for i in 0..<16 { #expect(abs(Double(d32.score[i]) - d64.score[i]) < 1e-5) }
        #expect(zip(d32.distances, d64.distances).contains { Double($0) != $1 })
    }
}
