import Testing
@testable import TokenCompression
import Tensors
import TestSupport

@Suite struct PruneVidTests {
    @Test func mergeSizesAddUpAndTheStaticMaskIsPerSegment() throws {
        for seed in UInt64(1)...3 {
            var g = TestRandom(seed)
            let frames = g.tensor([8 * 36, 16])
            let r = try PruneVid.merge(frames: frames, frameCount: 8)
            #expect(r.windowSizes.reduce(0, +) == 8)
            #expect(r.tokens.rows == r.staticSizes.reduce(0, +) + r.dynamicSizes.reduce(0, +))
            var start = 0
            for w in r.windowSizes {
                for t in start..<(start + w) { #expect(Array(r.staticMask[(t * 36)..<(t * 36 + 36)]) == Array(r.staticMask[(start * 36)..<(start * 36 + 36)])) }
                start += w
            }
            // Sources of all output tokens cover every input token exactly once.
            #expect(r.compression.merged.flatMap(\.sources).sorted() == Array(0..<(8 * 36)))
        }
    }

    @Test func identicalFramesAreAllStaticAndAveraged() throws {
        var g = TestRandom(11)
        let frame = g.tensor([9, 8])
        let frames = try Tensor.concatenateRows(Array(repeating: frame, count: 8))
        let r = try PruneVid.merge(frames: frames, frameCount: 8)
        #expect(r.windowSizes == [8])
        #expect(r.staticSizes == [9] && r.dynamicSizes == [0])
        #expect(r.staticMask.allSatisfy { $0 })
        for row in 0..<9 {
            for c in 0..<8 { #expect(abs(r.tokens[row, c] - frame[row, c]) < 1e-5) }
        }
    }

    @Test func selectionKeepsTextAndTheRequestedCounts() throws {
        var g = TestRandom(5)
        let layout = try TokenLayout(imageStart: 3, imageCount: 30, totalCount: 38)
        let q = g.tensor([2, 38, 8]), k = g.tensor([2, 38, 8])
        let r = try PruneVid.select(queries: q, keys: k, layout: layout, staticSizes: [10], dynamicSizes: [20], windowSizes: [2],
                                    parameters: PruneVid.Parameters(keepRatio: 0.4))
        let kept = r.compression.kept
        #expect(kept == Array(Set(kept)).sorted())
        #expect(Array(0..<3).allSatisfy(kept.contains) && Array(33..<38).allSatisfy(kept.contains))
        #expect(kept.count == 3 + 5 + 4 + 2 * 4)
        #expect(r.importance.count == 30)
        #expect(r.compression.positionPolicy == .keepOriginal)
    }

    @Test func badInputsThrow() throws {
        var g = TestRandom(2)
        #expect(throws: CompressionError.self) { try PruneVid.merge(frames: g.tensor([4 * 9, 4]), frameCount: 4) }  // T < k
        #expect(throws: CompressionError.self) { try PruneVid.merge(frames: g.tensor([8 * 9, 4]), frameCount: 8, parameters: PruneVid.Parameters(clusterRatio: 0)) }
        let layout = try TokenLayout(imageStart: 0, imageCount: 10, totalCount: 10)  // no text after the video
        #expect(throws: CompressionError.self) {
            try PruneVid.select(queries: g.tensor([1, 10, 4]), keys: g.tensor([1, 10, 4]), layout: layout, staticSizes: [4], dynamicSizes: [6], windowSizes: [2])
        }
        #expect(throws: CompressionError.self) {
            try PruneVid.select(importance: [Float](repeating: 0, count: 10), staticSizes: [4], dynamicSizes: [5], windowSizes: [2], keepRatio: 0.4)
        }
    }
}
