import Testing
@testable import Tensors

@Suite struct TensorTests {
    @Test func shapeMismatchThrows() {
        #expect(throws: TensorError.self) { try Tensor(shape: [2, 3], values: [1, 2, 3]) }
        #expect(throws: TensorError.self) { try Tensor(zeros: [2, 3]).reshaped([4, 2]) }
    }

    @Test func copyOnWriteKeepsValueSemantics() throws {
        let a = try Tensor(rows: [[1, 2], [3, 4]])
        var b = a
        b[0, 1] = 9
        #expect(a[0, 1] == 2)
        #expect(b[0, 1] == 9)
    }

    @Test func memoryCounterTracksCurrentAndPeak() {
        let counter = MemoryCounter()
        counter.allocated(100)
        counter.allocated(50)
        counter.freed(100)
        #expect(counter.currentBytes == 50 && counter.peakBytes == 150)
        counter.resetPeak()
        #expect(counter.peakBytes == 50)
        counter.allocated(10)
        #expect(counter.peakBytes == 60)
    }

    @Test func tensorsReportTheirStorage() {
        // Other tests allocate and free concurrently, so only what holds whatever they do is checked:
        // while `t` lives, the shared counter (and the peak, which never drops below it) include it.
        let t = Tensor(zeros: [1000, 100])
        #expect(MemoryAccounting.currentBytes >= t.byteCount)
        #expect(MemoryAccounting.peakBytes >= t.byteCount)
        #expect(MemoryAccounting.processPeakRSS > 0)
    }

    @Test func splittingHeadsRegroupsColumnsPerHead() throws {
        let x = try Tensor(rows: [[1, 2, 3, 4], [5, 6, 7, 8]])  // 2 rows, 2 heads of 2
        let h = try x.splittingHeads(2)
        #expect(h.shape == [2, 2, 2] && h.values == [1, 2, 5, 6, 3, 4, 7, 8])
        #expect(throws: TensorError.self) { try x.splittingHeads(3) }
    }

    @Test func gatherScatterConcatenate() throws {
        let t = try Tensor(rows: [[0, 0], [1, 1], [2, 2], [3, 3]])
        let g = try t.gatherRows([3, 1])
        #expect(g.values == [3, 3, 1, 1])
        let s = try t.scatteringRows(try Tensor(rows: [[9, 9]]), at: [2])
        #expect(s.row(2) == [9, 9])
        #expect(t.row(2) == [2, 2])
        let c = try Tensor.concatenateRows([g, t])
        #expect(c.shape == [6, 2])
        #expect(c.row(5) == [3, 3])
        #expect(throws: TensorError.self) { try t.gatherRows([4]) }
        #expect(throws: TensorError.self) { try t.gatherRows([-1]) }
        #expect(throws: TensorError.self) { try t.scatteringRows(g, at: [0]) }
        #expect(throws: TensorError.self) { try Tensor.concatenateRows([t, Tensor(zeros: [1, 3])]) }
        #expect(try t.columns(1..<2).values == [0, 1, 2, 3])
        #expect(try Tensor(rows: [[1, 2, 3]]).transposed().shape == [3, 1])
    }

    @Test func elementwiseAndBroadcast() throws {
        let a = try Tensor(rows: [[1, 2], [3, 4]])
        #expect(try (a + a).values == [2, 4, 6, 8])
        #expect(try (a * a).values == [1, 4, 9, 16])
        #expect(try (a - a).values == [0, 0, 0, 0])
        #expect(a.scaled(by: 0.5).values == [0.5, 1, 1.5, 2])
        let bias = try Tensor(shape: [2], values: [10, 20])
        #expect(try a.addingRowVector(bias).values == [11, 22, 13, 24])
        #expect(try a.multiplyingRowVector(bias).values == [10, 40, 30, 80])
        #expect(throws: TensorError.self) { try a + Tensor(zeros: [4]) }
        #expect(throws: TensorError.self) { try a.addingRowVector(Tensor(zeros: [3])) }
    }

    @Test func activationsMatchPyTorchValues() throws {
        let x = try Tensor(shape: [3], values: [-1, 0.5, 2])
        // torch.nn.functional.gelu(x), gelu(x, approximate='tanh'), silu(x)
        #expect(maxAbsDifference(x.gelu().values, [-0.15865525, 0.34573123, 1.9544997]) < 1e-6)
        #expect(maxAbsDifference(x.geluTanh().values, [-0.15880801, 0.34571401, 1.9545977]) < 1e-6)
        #expect(maxAbsDifference(x.silu().values, [-0.26894142, 0.31122968, 1.7615942]) < 1e-6)
        #expect(maxAbsDifference(x.quickGelu().values, [-0.15420423, 0.35038844, 1.9356586]) < 1e-6)
    }
}
