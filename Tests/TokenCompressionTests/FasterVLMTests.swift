import Testing
@testable import TokenCompression
import Tensors
import TestSupport

@Suite struct FasterVLMTests {
    @Test func keepsExactlyTAscendingTopScores() throws {
        var rng = TestRandom(1)
        let attention = rng.tensor([4, 1 + 49], .unit), features = rng.tensor([49, 8], .unit)
        let r = try FasterVLM.prune(clsAttention: attention, features: features, parameters: .init(visualTokenNum: 10))
        let kept = r.compression.kept
        #expect(kept.count == 10 && r.compression.achievedCount == 10 && r.compression.noOpReason == nil)
        #expect(kept == Array(Set(kept)).sorted())
        let dropped = Set(0..<49).subtracting(kept)
        let minKept = kept.map { r.scores[$0] }.min()!
        #expect(dropped.allSatisfy { r.scores[$0] < minKept })
        for (row, j) in kept.enumerated() { #expect(r.keptFeatures.row(row) == features.row(j)) }
    }

    @Test func scoreIsHeadMeanOfPatchColumns() throws {
        let attention = try Tensor(rows: [[9, 1, 2, 3], [9, 3, 2, 1]])
        #expect(try FasterVLM.scores(clsAttention: attention) == [2, 2, 2])
    }

    @Test func budgetCoveringAllTokensIsExplicitNoOp() throws {
        var rng = TestRandom(2)
        let r = try FasterVLM.prune(clsAttention: rng.tensor([2, 17], .unit), features: rng.tensor([16, 4], .unit),
                                    parameters: .init(visualTokenNum: 16))
        #expect(r.compression.noOpReason != nil)
        #expect(r.compression.kept == Array(0..<16))
    }

    @Test func badInputsThrow() throws {
        var rng = TestRandom(3)
        let attention = rng.tensor([2, 17], .unit)
        #expect(throws: CompressionError.self) {
            try FasterVLM.prune(clsAttention: attention, features: rng.tensor([16, 4], .unit), parameters: .init(visualTokenNum: 0))
        }
        #expect(throws: CompressionError.self) {
            try FasterVLM.prune(clsAttention: attention, features: rng.tensor([15, 4], .unit), parameters: .init(visualTokenNum: 3))
        }
        #expect(throws: CompressionError.self) {
            try FasterVLM.pruneAnyRes(clsAttention: [attention], features: [rng.tensor([16, 4], .unit)],
                                      grid: .init(columns: 2, rows: 1), parameters: .init(visualTokenNum: 3))
        }
    }

    @Test func anyResKeepsTPerPartitionInStitchedRasterOrder() throws {
        var rng = TestRandom(4)
        let grid = FasterVLM.CropGrid(columns: 3, rows: 2), n = 16, side = 4, p = 7
        let attention = (0..<p).map { _ in rng.tensor([3, 1 + n], .unit) }
        let features = (0..<p).map { _ in rng.tensor([n, 5], .unit) }
        let r = try FasterVLM.pruneAnyRes(clsAttention: attention, features: features, grid: grid,
                                          parameters: .init(visualTokenNum: 6))
        #expect(r.order.count == 6 * p && r.compression.kept == r.order.sorted())
        #expect(r.partitions.allSatisfy { $0.compression.kept.count == 6 })
        #expect(r.order.prefix(6).allSatisfy { $0 < n })  // base image first
        let stitched = r.order.dropFirst(6).map { k -> [Int] in
            let crop = k / n - 1, j = k % n
            return [(crop / grid.columns) * side + j / side, (crop % grid.columns) * side + j % side]
        }
        #expect(zip(stitched, stitched.dropFirst()).allSatisfy { $0.lexicographicallyPrecedes($1) })
        for (row, k) in r.order.enumerated() { #expect(r.features.row(row) == features[k / n].row(k % n)) }
    }

    @Test func deterministicForAFixedSeed() throws {
        var a = TestRandom(5), b = TestRandom(5)
        let x = try FasterVLM.prune(clsAttention: a.tensor([4, 37], .unit), features: a.tensor([36, 3], .unit), parameters: .init(visualTokenNum: 7))
        let y = try FasterVLM.prune(clsAttention: b.tensor([4, 37], .unit), features: b.tensor([36, 3], .unit), parameters: .init(visualTokenNum: 7))
        #expect(x.compression.kept == y.compression.kept)
    }
}
