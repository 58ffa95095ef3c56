import Testing
@testable import TokenCompression
import Tensors
import TestSupport

/// A one-head [CLS] row `[1, 1+N]` whose patch scores rank `high` first (in that order).
func hiredRow(n: Int, high: [Int]) -> Tensor {
    var values = [Float](repeating: 0.001, count: n + 1)
    values[0] = 0.5
    for (rank, j) in high.enumerated() { values[1 + j] = 1 - Float(rank) * 0.001 }
    return try! Tensor(shape: [1, n + 1], values: values)
}

@Suite struct HiREDTests {
    @Test func singleImageKeepsTruncatedRateOfTopTokens() throws {
        var rng = TestRandom(1)
        let bottom = rng.tensor([4, 65], .unit)
        let r = try HiRED.select(bottomAttention: bottom, parameters: .init(tokenBudgetRate: 0.3))
        let s = try HiRED.scores(clsAttention: bottom)
        #expect(r.budgets.perPartition == [19])  // int(64 * 0.3) = int(19.2)
        let kept = r.compression.kept
        #expect(kept.count == 19 && kept == Array(Set(kept)).sorted())
        let minKept = kept.map { s[$0] }.min()!
        #expect(Set(0..<64).subtracting(kept).allSatisfy { s[$0] < minKept })
    }

    @Test func cropBudgetsFollowRasterBandsNotQuadrants() throws {
        // 2x2 crops, N = 16 (4x4 thumbnail): band i = thumbnail row i. Marks in rows 0 and 1
        // (the top half) credit crops 0 and 1 only, although that half spans all four quadrants' tops.
        let n = 16, grid = HiRED.CropGrid(columns: 2, rows: 2)
        let top = hiredRow(n: n, high: Array(0..<8))
        let b = try HiRED.budgets(topAttention: top, grid: grid, parameters: .init(tokenBudgetRate: 0.2, alpha: 0.5))
        #expect(b.total == 16 && b.full == 8 && b.sub == 8)
        #expect(b.partitionMarks == [4, 4, 0, 0])
        #expect(b.perPartition == [8, 4, 4, 0, 0])
    }

    @Test func float32TruncationCanLoseAToken() throws {
        // N = 36, 1x2 crops, rate 0.33, alpha 0.38: B_total 35, B_full 13, B_sub 22, 22 marks.
        // Marks 13 | 9: exact shares are 13 and 9, but float32 13/22*22 = 12.999999 -> 12.
        let n = 36
        let top = hiredRow(n: n, high: Array(0..<13) + Array(18..<27))
        let b = try HiRED.budgets(topAttention: top, grid: .init(columns: 2, rows: 1),
                                  parameters: .init(tokenBudgetRate: 0.33, alpha: 0.38))
        #expect([b.total, b.full, b.sub] == [35, 13, 22])
        #expect(b.partitionMarks == [13, 9])
        #expect(b.perPartition == [13, 12, 9])
        #expect(b.perPartition.reduce(0, +) < b.total)
    }

    @Test func anyResSelectionRespectsBudgets() throws {
        var rng = TestRandom(2)
        let grid = HiRED.CropGrid(columns: 2, rows: 2), n = 64
        let bottom = (0..<5).map { _ in rng.tensor([4, 1 + n], .unit) }
        let r = try HiRED.select(topAttention: rng.tensor([4, 1 + n], .unit), bottomAttention: bottom, grid: grid)
        #expect(r.budgets.partitionMarks.reduce(0, +) == 32)
        #expect(r.budgets.perPartition.dropFirst().reduce(0, +) <= r.budgets.sub)
        for (p, kept) in r.keptPerPartition.enumerated() { #expect(kept.count == r.budgets.perPartition[p]) }
        let kept = r.compression.kept
        #expect(kept == Array(Set(kept)).sorted() && kept.count == r.compression.achievedCount)
    }

    @Test func fullBudgetIsExplicitNoOp() throws {
        var rng = TestRandom(3)
        let single = try HiRED.select(bottomAttention: rng.tensor([2, 17], .unit), parameters: .init(tokenBudgetRate: 1))
        #expect(single.compression.noOpReason != nil && single.compression.kept == Array(0..<16))
        let next = try HiRED.select(topAttention: rng.tensor([2, 17], .unit), bottomAttention: (0..<3).map { _ in rng.tensor([2, 17], .unit) },
                                    grid: .init(columns: 2, rows: 1), parameters: .init(tokenBudgetRate: 1))
        #expect(next.compression.noOpReason != nil && next.compression.kept.count == 48)
    }

    @Test func badSettingsThrow() throws {
        var rng = TestRandom(4)
        let row = rng.tensor([2, 17], .unit)
        #expect(throws: CompressionError.self) { try HiRED.select(bottomAttention: row, parameters: .init(tokenBudgetRate: 0)) }
        #expect(throws: CompressionError.self) { try HiRED.select(bottomAttention: row, parameters: .init(tokenBudgetRate: 1.5)) }
        #expect(throws: CompressionError.self) { try HiRED.budgets(topAttention: row, grid: .init(columns: 1, rows: 1), parameters: .init(alpha: -0.1)) }
        // 16 thumbnail tokens cannot be split into 3 bands.
        #expect(throws: CompressionError.self) { try HiRED.budgets(topAttention: row, grid: .init(columns: 3, rows: 1), parameters: .init(tokenBudgetRate: 0.5)) }
        // alpha = 1 marks no token while the crops still get a budget (0/0 in the reference).
        #expect(throws: CompressionError.self) { try HiRED.budgets(topAttention: row, grid: .init(columns: 2, rows: 2), parameters: .init(tokenBudgetRate: 0.5, alpha: 1)) }
        #expect(throws: CompressionError.self) {
            try HiRED.select(topAttention: row, bottomAttention: [row], grid: .init(columns: 2, rows: 1))
        }
    }

    @Test func deterministicForAFixedSeed() throws {
        var a = TestRandom(5), b = TestRandom(5)
        let x = try HiRED.select(topAttention: a.tensor([2, 37], .unit), bottomAttention: (0..<3).map { _ in a.tensor([2, 37], .unit) }, grid: .init(columns: 1, rows: 2))
        let y = try HiRED.select(topAttention: b.tensor([2, 37], .unit), bottomAttention: (0..<3).map { _ in b.tensor([2, 37], .unit) }, grid: .init(columns: 1, rows: 2))
        #expect(x.compression.kept == y.compression.kept && x.budgets == y.budgets)
    }
}
