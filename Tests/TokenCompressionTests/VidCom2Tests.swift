import Foundation
import Testing
import Tensors
@testable import TokenCompression
import TestSupport

private extension TestRandom {
    /// Normal with variance 1/2, the spread of the sum-of-six-uniforms draws these tests were written with.
    mutating func halfVarianceNormal() -> Float { Float(0.5).squareRoot() * normal() }
    /// `frames·n` tokens of width `c`: a per-frame offset plus per-token noise.
    mutating func video(frames: Int, n: Int, c: Int) -> Tensor {
        var values: [Float] = []
        for _ in 0..<frames {
            let offset = (0..<c).map { _ in halfVarianceNormal() }
            for _ in 0..<n { values += offset.map { $0 + 0.5 * halfVarianceNormal() } }
        }
        return try! Tensor(shape: [frames * n, c], values: values)
    }
}

@Suite struct VidCom2Tests {
    @Test func keptIndicesFollowTheFrameBudgets() throws {
        var rng = TestRandom(1)
        let frames = 6, n = 25
        let r = try VidCom2.compress(tokens: rng.video(frames: frames, n: n, c: 8), model: .qwenVL(tokensPerFrame: n))
        #expect(r.kept == r.kept.sorted() && Set(r.kept).count == r.kept.count)
        #expect(r.scores.frameBudgets.allSatisfy { $0 >= 1 && $0 <= n })
        #expect(r.keptPerFrame.map(\.count) == r.scores.frameBudgets)
        #expect(r.kept.count == r.scores.frameBudgets.reduce(0, +))
        #expect(abs(r.kept.count - Int(0.25 * Double(frames * n))) <= frames)
        #expect(r.x.rows == r.kept.count)
        #expect(r.result.positionPolicy == .keepOriginal)
        #expect(r.scores.selectedChannels.count == 4)
    }

    @Test func budgetsRoundHalfToEven() {
        // A one-hot softmax over two frames gives r = [0.375, 0.125]; r·36 = 13.5 and 4.5 → 14 and 4.
        let r = VidCom2.frameRetention(uniqueness: [0, -10], ratio: 0.25, temperature: 0.01)
        #expect(r == [0.375, 0.125])
        #expect(r.map { Int(($0 * 36).rounded(.toNearestOrEven)) } == [14, 4])
    }

    @Test func lowestVarianceChannelsAreSelectedAndOutliersKept() throws {
        var rng = TestRandom(2)
        let frames = 2, n = 16, c = 6
        var values: [Float] = []
        for _ in 0..<(frames * n) {
            // Channels 0, 2, 4 vary a lot; 1, 3, 5 a little.
            values += (0..<c).map { ch in (ch % 2 == 0 ? 5 : 0.2) * rng.halfVarianceNormal() + 1 }
        }
        // Token 3 of frame 0 is made an outlier on the quiet channels.
        for ch in [1, 3, 5] { values[3 * c + ch] = ch == 3 ? -4 : 4 }
        let r = try VidCom2.compress(tokens: Tensor(shape: [frames * n, c], values: values), model: .qwenVL(tokensPerFrame: n))
        #expect(Set(r.scores.selectedChannels) == [1, 3, 5])
        #expect(r.keptPerFrame[0].contains(3))
    }

    @Test func llavaVideoGridAppendsEachFramesNewlines() throws {
        let indices = VidCom2.llavaVideoGridIndices(keptPerFrame: [[0, 13, 168], [5]])
        #expect(Array(indices.prefix(3)) == [0, 14, 12 * 14 + 12])
        #expect(Array(indices[3..<16]) == (0..<13).map { $0 * 14 + 13 })
        #expect(indices[16] == 182 + 5)
        #expect(indices.count == 4 + 26)
        var rng = TestRandom(4)
        let tokens = rng.video(frames: 1, n: 169, c: 3)
        let grid = try VidCom2.llavaVideoGrid(tokens: tokens, newline: [7, 7, 7])
        #expect(grid.rows == 182)
        #expect(grid.row(13) == [7, 7, 7])
        #expect(grid.row(14) == tokens.row(13))
    }

    @Test func badInputsThrow() throws {
        var rng = TestRandom(3)
        let tokens = rng.video(frames: 2, n: 10, c: 4)
        #expect(throws: CompressionError.self) { try VidCom2.compress(tokens: tokens, model: .llavaOneVision) }
        #expect(throws: CompressionError.self) { try VidCom2.compress(tokens: tokens, model: .qwenVL(tokensPerFrame: 7)) }
        #expect(throws: CompressionError.self) { try VidCom2.compress(tokens: tokens, model: .qwenVL(tokensPerFrame: 10), parameters: .init(retentionRatio: 0)) }
        #expect(throws: CompressionError.self) { try VidCom2.compress(tokens: tokens, model: .qwenVL(tokensPerFrame: 10), parameters: .init(temperature: 0)) }
        #expect(throws: CompressionError.self) { try VidCom2.compress(tokens: tokens, model: .qwenVL(tokensPerFrame: 10), parameters: .init(channelRatio: 0.1)) }
    }

    @Test func deterministicAndFullRatioIsAnExplicitNoOpWhenEverythingIsKept() throws {
        var a = TestRandom(9), b = TestRandom(9)
        let r1 = try VidCom2.compress(tokens: a.video(frames: 3, n: 12, c: 6), model: .qwenVL(tokensPerFrame: 12))
        let r2 = try VidCom2.compress(tokens: b.video(frames: 3, n: 12, c: 6), model: .qwenVL(tokensPerFrame: 12))
        #expect(r1.kept == r2.kept)
        // One frame: p = 1, mean p = 1, r = ρ; at ρ = 1 every token is kept and the result says so.
        var c = TestRandom(5)
        let full = try VidCom2.compress(tokens: c.video(frames: 1, n: 9, c: 4), model: .qwenVL(tokensPerFrame: 9), parameters: .init(retentionRatio: 1))
        #expect(full.kept.count == 9)
        #expect(full.result.noOpReason != nil)
    }
}
