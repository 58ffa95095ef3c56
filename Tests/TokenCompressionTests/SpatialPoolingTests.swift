import Testing
@testable import TokenCompression
import Tensors
import TestSupport

@Suite struct SpatialPoolingTests {
    @Test func averageTwoByTwo() throws {
        let x = try Tensor(shape: [16, 1], values: (0..<16).map(Float.init))  // 4×4 grid, value = index
        let r = try SpatialPooling().pool(x, rows: 4, cols: 4)
        #expect(r.outRows == 2 && r.outCols == 2)
        #expect(r.features.values == [2.5, 4.5, 10.5, 12.5])
        #expect(r.compression.merged.map(\.sources) == [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]])
        #expect(r.compression.achievedCount == 4 && r.compression.kept.isEmpty)
    }

    @Test func oddGridCoversEveryTokenOnce() throws {
        var g = TestRandom(1)
        let x = g.tensor(35, 6)  // 5×7
        let r = try SpatialPooling().pool(x, rows: 5, cols: 7)
        #expect(r.outRows == 3 && r.outCols == 4 && r.features.rows == 12)
        #expect(r.compression.merged.map(\.size).reduce(0, +) == 35)
        #expect(Set(r.compression.merged.flatMap(\.sources)) == Set(0..<35))
        // Corner window holds one token: its average is the token.
        #expect(r.features.row(11) == x.row(34))
    }

    @Test func bilinearHalvingEqualsAveragePooling() throws {
        var g = TestRandom(2)
        let x = g.tensor(64, 5)  // 8×8 → 4×4
        let avg = try SpatialPooling().pool(x, rows: 8, cols: 8)
        let bil = try SpatialPooling(.init(mode: .bilinear(budget: .count(16)))).pool(x, rows: 8, cols: 8)
        #expect(bil.outRows == 4 && bil.outCols == 4)
        #expect(zip(avg.features.values, bil.features.values).allSatisfy { abs($0 - $1) < 1e-6 })
    }

    @Test func bilinearGridFitsBudget() throws {
        for (budget, grid) in [(144, [12, 12]), (64, [8, 8]), (128, [11, 11]), (1, [1, 1])] {
            let t = SpatialPooling.targetGrid(rows: 24, cols: 24, budget: budget)
            #expect([t.rows, t.cols] == grid)
        }
        let t = SpatialPooling.targetGrid(rows: 12, cols: 24, budget: 72)
        #expect(t.rows * t.cols <= 72 && t.rows == 6 && t.cols == 12)
        var g = TestRandom(3)
        let r = try SpatialPooling(.init(mode: .bilinear(budget: .ratio(0.3)))).pool(g.tensor(100, 4), rows: 10, cols: 10)
        #expect(r.compression.achievedCount <= r.compression.requestedCount && r.compression.requestedCount == 30)
        // Constant input stays constant (weights sum to 1).
        let c = try SpatialPooling(.init(mode: .bilinear(budget: .count(20)))).pool(Tensor(shape: [100, 3], repeating: 2), rows: 10, cols: 10)
        #expect(c.features.values.allSatisfy { abs($0 - 2) < 1e-6 })
    }

    @Test func noOpAndErrors() throws {
        var g = TestRandom(4)
        let x = g.tensor(36, 4)
        for mode in [SpatialPooling.Mode.bilinear(budget: .count(36)), .bilinear(budget: .count(50)), .bilinear(budget: .ratio(1)), .average(window: 1)] {
            let r = try SpatialPooling(.init(mode: mode)).pool(x, rows: 6, cols: 6)
            #expect(r.compression.noOpReason != nil && r.features.values == x.values && r.compression.kept == Array(0..<36))
        }
        #expect(throws: CompressionError.self) { try SpatialPooling(.init(mode: .average(window: 0))) }
        #expect(throws: CompressionError.self) { try SpatialPooling(.init(mode: .bilinear(budget: .count(-1)))) }
        #expect(throws: CompressionError.self) { try SpatialPooling().pool(x, rows: 5, cols: 6) }
    }
}
