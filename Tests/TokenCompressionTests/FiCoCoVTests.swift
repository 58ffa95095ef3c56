import Testing
@testable import TokenCompression
import Tensors
import Foundation
import TestSupport

/// A 4×4 buffer grid (16 slots, 4 windows) with T = 17 tokens keeps the tests tiny.
func ficocoVSmall(r: Int = 3) throws -> FiCoCoV {
    try FiCoCoV(.init(r: r, penaltyCount: 4, stateSize: 16))
}

func ficocoVInputs(t: Int, c: Int, seed: UInt64) throws -> (hidden: Tensor, logits: Tensor) {
    var rng = TestRandom(seed)
    let q = rng.tensor([2, t, 4]), k = rng.tensor([2, t, 4])
    return (rng.tensor([t, c]), try FiCoCoV.headMeanLogits(queries: q, keys: k))
}

@Suite struct FiCoCoVTests {
    @Test func mergesRTokensAndKeepsProtectedTokenLast() throws {
        let x = try ficocoVInputs(t: 17, c: 5, seed: 1)
        var state = FiCoCoV.State(size: 16)
        let r = try ficocoVSmall().layer(hidden: x.hidden, logits: x.logits, state: &state)
        #expect(r.output.shape == [14, 5])
        #expect(r.remainIndices.last == 0)
        #expect(Set(r.mergeIndices).isDisjoint(with: r.remainIndices))
        #expect(Set(r.mergeIndices + r.remainIndices) == Set(0..<17))
        #expect(r.compression.kept == r.remainIndices.sorted())
        #expect(r.compression.achievedCount == 14)
    }

    @Test func weightsSumToOneAndSizesAccountForEveryMerge() throws {
        let x = try ficocoVInputs(t: 17, c: 3, seed: 2)
        var state = FiCoCoV.State(size: 16)
        let r = try ficocoVSmall().layer(hidden: x.hidden, logits: x.logits, state: &state)
        for w in r.weights { #expect(abs(w.reduce(0, +) - 1) < 1e-5) }
        #expect(abs(r.sizes.reduce(0, +) - 17) < 1e-4)
        #expect(r.scatterPositions.allSatisfy { $0 >= 0 && $0 < 14 })
    }

    @Test func oneWindowMinimumIsPenalisedAndRetiredPerWindow() throws {
        let x = try ficocoVInputs(t: 17, c: 3, seed: 3)
        var state = FiCoCoV.State(size: 16)
        let r = try ficocoVSmall().layer(hidden: x.hidden, logits: x.logits, state: &state)
        #expect(r.penalized.count == 4)
        #expect(state.infinite.filter { $0 }.count == 4)
        // A second layer writes its scores only into the 12 slots left.
        let y = try ficocoVInputs(t: 14, c: 3, seed: 4)
        let r2 = try ficocoVSmall(r: 2).layer(hidden: y.hidden, logits: y.logits, state: &state)
        #expect(r2.output.rows == 12)
        #expect(state.infinite.filter { $0 }.count == 4 + r2.penalized.count)
    }

    @Test func zeroRIsAnExplicitNoOp() throws {
        let x = try ficocoVInputs(t: 17, c: 3, seed: 5)
        var state = FiCoCoV.State(size: 16)
        let r = try ficocoVSmall(r: 0).layer(hidden: x.hidden, logits: x.logits, state: &state)
        #expect(r.compression.noOpReason != nil)
        #expect(r.output.values == x.hidden.values)
    }

    @Test func badParametersAndShapesThrow() throws {
        #expect(throws: CompressionError.self) { try FiCoCoV(.init(stateSize: 15)) }
        #expect(throws: CompressionError.self) { try FiCoCoV(.init(penaltyCount: 100)) }
        #expect(throws: CompressionError.self) { try FiCoCoV(.init(beta: 2)) }
        let x = try ficocoVInputs(t: 17, c: 3, seed: 6)
        var state = FiCoCoV.State(size: 16)
        #expect(throws: CompressionError.self) { try ficocoVSmall(r: 16).layer(hidden: x.hidden, logits: x.logits, state: &state) }
        var wrong = FiCoCoV.State(size: 576)
        #expect(throws: CompressionError.self) { try ficocoVSmall().layer(hidden: x.hidden, logits: x.logits, state: &wrong) }
    }

    @Test func quantileCountMatchesTorchSemantics() {
        // 0.998 · (577 − 1) lies between the 575th and 576th order statistics: two values above.
        let row = (0..<577).map { Float($0) }
        #expect(FiCoCoV.countAboveQuantile(row, 0.998) == 2)
        #expect(FiCoCoV.countAboveQuantile(Array(row.prefix(17)), 0.998) == 1)
    }

    @Test func deterministic() throws {
        let x = try ficocoVInputs(t: 17, c: 3, seed: 7)
        var s1 = FiCoCoV.State(size: 16), s2 = FiCoCoV.State(size: 16)
        let a = try ficocoVSmall().layer(hidden: x.hidden, logits: x.logits, state: &s1)
        let b = try ficocoVSmall().layer(hidden: x.hidden, logits: x.logits, state: &s2)
        #expect(a.output.values == b.output.values && s1 == s2)
    }
}
