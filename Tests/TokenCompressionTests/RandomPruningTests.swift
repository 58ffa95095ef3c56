import Testing
@testable import TokenCompression
import Tensors

@Suite struct RandomPruningTests {
    static let layout = try! TokenLayout(imageStart: 6, imageCount: 50, totalCount: 64)

    @Test func deterministicPerSeedAndWellFormed() throws {
        let a = try RandomPruning(.init(budget: .count(12), seed: 42)).select(layout: Self.layout)
        let b = try RandomPruning(.init(budget: .count(12), seed: 42)).select(layout: Self.layout)
        let c = try RandomPruning(.init(budget: .count(12), seed: 43)).select(layout: Self.layout)
        #expect(a.kept == b.kept)
        #expect(a.kept != c.kept)
        for r in [a, c] {
            #expect(r.kept == Array(Set(r.kept)).sorted() && r.kept.count == 6 + 12 + 8)
            #expect(Array(r.kept.prefix(6)) == Array(0..<6) && Array(r.kept.suffix(8)) == Array(56..<64))
            #expect(r.achievedCount == 12 && r.positionPolicy == .keepOriginal)
        }
    }

    @Test func coversEveryTokenAcrossSeeds() throws {
        var seen = Set<Int>()
        for seed in 0..<40 as Range<UInt64> {
            seen.formUnion(try RandomPruning(.init(budget: .count(5), seed: seed)).select(layout: Self.layout).kept)
        }
        #expect(seen == Set(0..<64))
    }

    @Test func ratioBudgetAndNoOp() throws {
        #expect(try RandomPruning(.init(budget: .ratio(0.5))).select(layout: Self.layout).achievedCount == 25)
        for budget in [Budget.count(50), .count(80), .ratio(1)] {
            let r = try RandomPruning(.init(budget: budget)).select(layout: Self.layout)
            #expect(r.noOpReason != nil && r.kept == Array(0..<64))
        }
        #expect(throws: CompressionError.self) { try RandomPruning(.init(budget: .count(-2))) }
        #expect(throws: CompressionError.self) { try RandomPruning(.init(budget: .ratio(0))) }
    }
}
