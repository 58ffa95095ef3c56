import Foundation
import Testing
@testable import Tensors
import TestSupport

@Suite struct KernelTests {
    @Test func matmulMatchesNaiveProduct() throws {
        var r = TestRandom(1)
        let a = r.tensor([7, 5]), b = r.tensor([5, 3])
        let c = try a.matmul(b)
        #expect(c.shape == [7, 3])
        #expect(maxAbsDifference(c.values, naiveMatmul(a.values, b.values, m: 7, k: 5, n: 3)) < 1e-5)
        #expect(throws: TensorError.self) { try a.matmul(a) }
    }

    @Test func linearUsesOutInWeightsAndBias() throws {
        var r = TestRandom(2)
        let x = r.tensor([4, 6]), w = r.tensor([3, 6]), bias = r.tensor([3])
        let y = try x.linear(weight: w, bias: bias)
        let reference = try x.matmul(w.transposed()).addingRowVector(bias)
        #expect(maxAbsDifference(y.values, reference.values) < 1e-5)
        #expect(throws: TensorError.self) { try x.linear(weight: r.tensor([3, 5])) }
    }

    @Test func batchedMatmulMatchesPerBatchProducts() throws {
        var r = TestRandom(3)
        let a = r.tensor([3, 4, 5]), b = r.tensor([3, 5, 2])
        let c = try a.batchedMatmul(b)
        let bt = r.tensor([3, 2, 5])
        let ct = try a.batchedMatmul(bt, transposeOther: true)
        for i in 0..<3 {
            let ai = Array(a.values[(i * 20)..<(i * 20 + 20)]), bi = Array(b.values[(i * 10)..<(i * 10 + 10)])
            #expect(maxAbsDifference(Array(c.values[(i * 8)..<(i * 8 + 8)]), naiveMatmul(ai, bi, m: 4, k: 5, n: 2)) < 1e-5)
            let bti = try Tensor(shape: [2, 5], values: Array(bt.values[(i * 10)..<(i * 10 + 10)])).transposed().values
            #expect(maxAbsDifference(Array(ct.values[(i * 8)..<(i * 8 + 8)]), naiveMatmul(ai, bti, m: 4, k: 5, n: 2)) < 1e-5)
        }
        #expect(throws: TensorError.self) { try a.batchedMatmul(a) }
    }

    @Test func softmaxRowsIsStableAndNormalised() throws {
        let x = try Tensor(rows: [[1000, 1001, 1002], [-.infinity, 0, 0]])
        let s = x.softmaxRows()
        #expect(abs(s.row(0).reduce(0, +) - 1) < 1e-6)
        #expect(maxAbsDifference(s.row(0), [0.09003057, 0.24472847, 0.66524096]) < 1e-6)
        #expect(s.row(1) == [0, 0.5, 0.5])
    }

    @Test func layerNormAndRMSNorm() throws {
        let x = try Tensor(rows: [[1, 2, 3, 4]])
        let ones = Tensor(shape: [4], repeating: 1)
        let ln = try x.layerNorm(weight: ones, bias: Tensor(zeros: [4]), eps: 1e-5)
        // torch.nn.functional.layer_norm([1,2,3,4], (4,))
        #expect(maxAbsDifference(ln.values, [-1.3416355, -0.44721183, 0.44721183, 1.3416355]) < 1e-5)
        let rms = try x.rmsNorm(weight: ones.scaled(by: 2), eps: 1e-6)
        let scale = 1 / (30.0 / 4.0 + 1e-6).squareRoot()
        #expect(maxAbsDifference(rms.values, [1, 2, 3, 4].map { Float(2 * $0 * scale) }) < 1e-5)
        #expect(throws: TensorError.self) { try x.rmsNorm(weight: Tensor(zeros: [3]), eps: 1e-6) }
    }

    @Test func ropeRotatesByPositionAndAllowsGaps() throws {
        var r = TestRandom(4)
        let rope = try RotaryEmbedding(headDim: 8, theta: 10000)
        let x = r.tensor([3, 16])  // 2 heads
        let atZero = try rope.apply(x, positions: [0, 0, 0])
        #expect(maxAbsDifference(atZero.values, x.values) < 1e-7)
        // Rotation preserves each head's norm.
        let rotated = try rope.apply(x, positions: [3, 17, 1000])
        for t in 0..<3 {
            let a = x.row(t).map { $0 * $0 }.reduce(0, +), b = rotated.row(t).map { $0 * $0 }.reduce(0, +)
            #expect(abs(a - b) < 1e-4)
        }
        // A token's rotation depends only on its own position: gaps are allowed.
        let alone = try rope.apply(try x.gatherRows([1]), positions: [17])
        #expect(maxAbsDifference(alone.values, rotated.row(1)) < 1e-6)
        // Relative property: q(m)·k(n) depends on m − n only.
        let q = try x.gatherRows([0]).columns(0..<8), k = try x.gatherRows([1]).columns(0..<8)
        func dot(_ m: Int, _ n: Int) throws -> Float {
            let a = try rope.apply(q, positions: [m]).values, b = try rope.apply(k, positions: [n]).values
            return zip(a, b).map(*).reduce(0, +)
        }
        #expect(abs(try dot(10, 4) - dot(106, 100)) < 1e-4)
        #expect(throws: TensorError.self) { try rope.apply(x, positions: [1]) }
        #expect(throws: TensorError.self) { try RotaryEmbedding(headDim: 7, theta: 10000) }
    }
}
