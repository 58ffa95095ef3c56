import Testing
@testable import TokenCompression
import Tensors
import TestSupport

@Suite struct DARTTests {
    static let layout = try! TokenLayout(imageStart: 5, imageCount: 60, totalCount: 75)

    func inputs(_ seed: UInt64) -> (Tensor, Tensor) {
        var g = TestRandom(seed)
        return (g.tensor(75, 16), g.tensor(75, 16))
    }

    @Test func setOrderMatchesCPython311() {
        // Orders printed by CPython 3.11.7 `list(set(items))`.
        let cases: [([Int], [Int])] = [
            ([400, 37, 250, 600, 615, 640, 612, 650], [640, 612, 37, 615, 650, 400, 600, 250]),
            ([107, 49, 103, 155, 194, 179, 187, 193], [193, 194, 103, 107, 187, 49, 179, 155]),
            ([158, 101, 149, 70, 237, 246, 240, 250], [101, 70, 237, 240, 149, 246, 250, 158]),
            ([116, 91, 64, 162, 190, 181, 200, 195], [64, 162, 195, 200, 116, 181, 91, 190]),
            ([5, 5, 3, 1000, 37, 69, 101, 133], [3, 37, 69, 5, 1000, 101, 133]),
            ([1326, 617, 1617, 2666, 197, 296, 2194, 385, 1497, 2387, 237, 2078, 879, 153, 352, 1776, 1712, 286, 985, 371,
              2257, 1738, 242, 2316, 507, 914, 2583, 2569, 2387, 253],
             [385, 2569, 2316, 2194, 914, 2583, 153, 2078, 286, 296, 1326, 1712, 197, 1738, 1617, 2257, 2387, 1497, 985,
              352, 617, 2666, 237, 879, 1776, 242, 371, 507, 253]),
        ]
        for (items, order) in cases { #expect(DARTPython.setIterationOrder(items) == order) }
    }

    @Test func pythonFloorDivision() {
        #expect(DARTPython.floorDivide(7.0, 0.1) == 69)  // fmod-based, not floor(70.0000…)
        #expect(DARTPython.floorDivide(-1.5, 1) == -2)
        #expect(DARTPython.floorDivide(144 * (1 - 0.778), 8) == 3)
        #expect(DARTPython.floorDivideInt(-3, 8) == -1)
    }

    @Test func keptCountQuirk() throws {
        for (m, kept) in [(192, 196), (128, 132), (64, 68), (7, 4)] {
            #expect(try DART.Parameters(rule: .truncation(m)).keptVisualCount(imageCount: 576) == kept)
        }
        #expect(try DART.Parameters(rule: .reductionRatio(0.778)).keptVisualCount(imageCount: 576) == 124)
        #expect(try DART.Parameters(rule: .nextRetain(320)).keptVisualCount(imageCount: 2880) == 324)
        #expect(throws: CompressionError.self) { try DART.Parameters(rule: .nextRetain(320)).tokenTopK(imageCount: 2) }
        #expect(try DART(.init(rule: .truncation(128))).schedule(layers: 32, imageCount: 576).tokensPerLayer
                == [576, 576] + Array(repeating: 132, count: 30))
    }

    /// NeXT path with a retain count beyond the pool: the code keeps every image token, so the kept
    /// visual count is the image span (60), not the whole sequence (35 + 60 + 10 = 105).
    @Test func exhaustedPoolKeepsTheImageSpanAndCountsIt() throws {
        let layout = try TokenLayout(imageStart: 35, imageCount: 60, totalCount: 105)
        var g = TestRandom(21)
        let (h, k) = (g.tensor(105, 16), g.tensor(105, 16))
        let r = try DART(.init(rule: .nextRetain(320))).select(normalizedHidden: h, keys: k, layout: layout)
        #expect(r.compression.noOpReason != nil)
        #expect(r.compression.kept == Array(0..<105))
        #expect(r.compression.achievedCount == 60)
    }

    @Test func keptStructureOnRandomInputs() throws {
        let dart = try DART(.init(rule: .truncation(24)))  // TOKEN_TOPK 3 → 28 visual kept
        for seed in 1...5 as ClosedRange<UInt64> {
            let (h, k) = inputs(seed)
            let r = try dart.select(normalizedHidden: h, keys: k, layout: Self.layout)
            let kept = r.compression.kept
            #expect(kept == Array(Set(kept)).sorted())
            #expect(Array(kept.prefix(5)) == Array(0..<5))
            #expect(Array(kept.suffix(10)) == Array(65..<75))
            #expect(r.compression.achievedCount == 28 && r.compression.requestedCount == 28)
            #expect(kept.count == 5 + 28 + 10)
            #expect(r.imagePivots.allSatisfy { kept.contains($0) })
            #expect(Set(r.pivotOrder) == Set(r.imagePivots + r.textPivots))
            #expect(r.compression.positionPolicy == .keepOriginal && r.positionIds == kept)
            #expect(r.compression.noOpReason == nil)
            // Deterministic.
            #expect(try dart.select(normalizedHidden: h, keys: k, layout: Self.layout).compression.kept == kept)
        }
    }

    @Test func pivotsHaveLargestKeyNorms() throws {
        let (h, k) = inputs(9)
        let r = try DART(.init(rule: .truncation(16))).select(normalizedHidden: h, keys: k, layout: Self.layout)
        let norm = { (i: Int) in k.row(i).reduce(Float(0)) { $0 + abs($1) } }
        let minPivot = r.imagePivots.map(norm).min()!
        for i in Self.layout.imageRange where !r.imagePivots.contains(i) { #expect(norm(i) <= minPivot) }
        #expect(zip(r.imagePivots, r.imagePivots.dropFirst()).allSatisfy { norm($0) >= norm($1) })
    }

    @Test func explicitPivotOrder() throws {
        let dart = try DART(.init(rule: .truncation(40)))
        let (h, k) = inputs(3)
        let emulated = try dart.select(normalizedHidden: h, keys: k, layout: Self.layout)
        let same = try dart.select(normalizedHidden: h, keys: k, layout: Self.layout, pivotOrder: emulated.pivotOrder)
        #expect(same.compression.kept == emulated.compression.kept)
        let reversed = try dart.select(normalizedHidden: h, keys: k, layout: Self.layout, pivotOrder: emulated.pivotOrder.reversed())
        #expect(reversed.pivotOrder == emulated.pivotOrder.reversed())
        #expect(reversed.compression.achievedCount == emulated.compression.achievedCount)
        #expect(throws: CompressionError.self) {
            try dart.select(normalizedHidden: h, keys: k, layout: Self.layout, pivotOrder: [1, 2, 3])
        }
    }

    @Test func budgetCoveringImageIsExplicitNoOp() throws {
        let (h, k) = inputs(4)
        let r = try DART(.init(rule: .truncation(480))).select(normalizedHidden: h, keys: k, layout: Self.layout)
        #expect(r.compression.noOpReason != nil)
        #expect(r.compression.kept == Array(0..<75))
    }

    @Test func badInputsThrow() throws {
        #expect(throws: CompressionError.self) { try DART(.init(rule: .truncation(-1))) }
        #expect(throws: CompressionError.self) { try DART(.init(rule: .reductionRatio(1.5))) }
        #expect(throws: CompressionError.self) { try DART(.init(pivotImageTokens: 0)) }
        #expect(throws: CompressionError.self) { try DART(.init(layer: 0)) }
        let (h, k) = inputs(5)
        let dart = try DART(.init(rule: .truncation(16)))
        #expect(throws: CompressionError.self) {
            try dart.select(normalizedHidden: try h.rows(0..<70), keys: k, layout: Self.layout)
        }
        let fewText = try TokenLayout(imageStart: 5, imageCount: 67, totalCount: 75)  // 3 text tokens < 4 pivots
        #expect(throws: CompressionError.self) { try dart.select(normalizedHidden: h, keys: k, layout: fewText) }
    }
}
