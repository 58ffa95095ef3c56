import Testing
import Tensors
@testable import TokenCompression
import TestSupport

@Suite struct ClsAttentionTests {
    /// Two heads over [CLS] + 3 patches: column 0 is dropped, the rest summed (or averaged) per column.
    @Test func handComputedSumAndMean() throws {
        let a = try Tensor(shape: [2, 4], values: [0.4, 0.1, 0.2, 0.3,
                                                   0.7, 0.3, 0.0, 0.0])
        #expect(try ClsAttention.patchScores(a, heads: .sum, method: "T") == [Float(0.1) + 0.3, 0.2, 0.3])
        #expect(try ClsAttention.patchScores(a, heads: .mean, method: "T") == [(Float(0.1) + 0.3) / 2, 0.1, 0.15])
        #expect(ClsAttention.reduceHeads(a, .sum) == (try ClsAttention.patchScores(a, heads: .sum, method: "T")))
    }

    @Test func badShapesThrowWithTheMethodName() throws {
        for shape in [[1, 1], [0, 5], [5]] {
            let t = Tensor(zeros: shape)
            let error = #expect(throws: CompressionError.self) { try ClsAttention.patchScores(t, heads: .sum, method: "Probe") }
            #expect(error.map { "\($0)".contains("Probe clsAttention must be [heads, 1+N]") } == true)
        }
    }

    /// The reduction alone takes zero heads: the mean is 0/0, as MustDrop's division gives.
    @Test func zeroHeadsMeanIsNaN() {
        let scores = ClsAttention.reduceHeads(Tensor(zeros: [0, 3]), .mean)
        #expect(scores.count == 2 && scores.allSatisfy { $0.isNaN })
    }

    /// Bit-for-bit the loops FasterVLM/EViT (sum then divide), MustDrop (per column) and VisionZip/HiRED
    /// (sum) had, on rows of softmax probabilities.
    @Test func agreesWithTheFormerPerMethodLoops() throws {
        var g = TestRandom(41)
        for (heads, n) in [(1, 4), (3, 37), (16, 577)] {
            let a = g.tensor(heads, n).scaled(by: 4).softmaxRows()
            var sum = [Float](repeating: 0, count: n - 1)
            for h in 0..<heads { for j in 0..<(n - 1) { sum[j] += a[h, 1 + j] } }
            var perColumn = [Float](repeating: 0, count: n - 1)
            for j in 1..<n {
                var s: Float = 0
                for h in 0..<heads { s += a[h, j] }
                perColumn[j - 1] = s / Float(heads)
            }
            #expect(try ClsAttention.patchScores(a, heads: .sum, method: "T") == sum)
            #expect(try ClsAttention.patchScores(a, heads: .mean, method: "T") == sum.map { $0 / Float(heads) })
            #expect(ClsAttention.reduceHeads(a, .mean) == perColumn)
            // The methods' public entry points are these reductions.
            #expect(try VisionZip.scores(clsAttention: a) == sum && HiRED.scores(clsAttention: a) == sum)
            #expect(try FasterVLM.scores(clsAttention: a) == perColumn && EViT.headMeanClsAttention(a) == perColumn)
        }
    }
}
