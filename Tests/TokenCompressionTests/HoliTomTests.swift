import Testing
@testable import TokenCompression
import Tensors
import TestSupport

@Suite struct HoliTomTests {
    @Test func identicalFramesFormOneStaticWindow() throws {
        var g = TestRandom(1)
        let frame = g.tensor([16, 8])
        let features = try Tensor.concatenateRows(Array(repeating: frame, count: 5))
        let r = try HoliTom.outer(features: features, frames: 5, attention: g.tensor([5, 16]),
                                  parameters: HoliTom.Parameters(retainRatio: 0.25, staticThreshold: 0.8))
        #expect(r.windows == [0...4])
        #expect(r.totalReduced == Double(16 * 4))
        #expect(r.retainRatioScaled == 1)  // 0.25 / (16/80)
        #expect(r.tokens.rows == 16)  // every static position is its own centre
        #expect(r.segmentTokenCounts == [16])
    }

    @Test func windowsTileTheFramesAndCountsAddUp() throws {
        for seed in UInt64(2)...5 {
            var g = TestRandom(seed)
            let r = try HoliTom.outer(features: g.tensor([6 * 16, 8]), frames: 6, attention: g.tensor([6, 16]),
                                      layout: .grid(newline: [Float](repeating: 9, count: 8)),
                                      parameters: HoliTom.Parameters(retainRatio: 0.3, staticThreshold: 0.0))
            var next = 0
            for w in r.windows { #expect(w.lowerBound == next); next = w.upperBound + 1 }
            #expect(next == 6)
            #expect(r.segmentTokenCounts.reduce(0, +) == r.tokens.rows)
            #expect(r.retainRatioScaled >= 0.3 && r.retainRatioScaled <= 1)
            // Every grid block ends with a newline row.
            #expect(r.tokens.row(r.tokens.rows - 1) == [Float](repeating: 9, count: 8))
        }
    }

    @Test func innerFoldsEveryDroppedVideoTokenAndKeepsText() throws {
        var g = TestRandom(7)
        let layout = try TokenLayout(imageStart: 2, imageCount: 15, totalCount: 20)
        let hidden = g.tensor([20, 8])
        let attention = g.tensor([3, 20]).map { abs($0) }
        let r = try HoliTom.inner(hiddenStates: hidden, attentionLastRow: attention, layout: layout,
                                  parameters: HoliTom.Parameters(innerRemoveRatio: 0.5))
        #expect(r.compression.kept.count == 2 + 8 + 3)  // round(7.5) = 8 (half to even)
        #expect(r.positionIds == r.compression.kept)
        #expect(r.mergedSources.count == 7)
        #expect(Set(r.mergeTarget).isSubset(of: Set(r.compression.kept)))
        #expect([0, 1, 17, 18, 19].allSatisfy(r.compression.kept.contains))
        #expect(Set(r.mergedSources).isDisjoint(with: Set(r.compression.kept)))
    }

    @Test func unsupportedAndInvalidSettingsThrow() throws {
        var g = TestRandom(3)
        let x = g.tensor([4 * 12, 8]), a = g.tensor([4, 12])
        #expect(throws: CompressionError.self) { try HoliTom.outer(features: x, frames: 4, attention: a, parameters: HoliTom.Parameters(contextShare: 0.1)) }
        #expect(throws: CompressionError.self) { try HoliTom.outer(features: x, frames: 4, attention: a, parameters: HoliTom.Parameters(retainRatio: 0)) }
        // A 12-token frame is not a square grid.
        #expect(throws: CompressionError.self) {
            try HoliTom.outer(features: x, frames: 4, attention: a, layout: .grid(newline: [Float](repeating: 0, count: 8)))
        }
        do {
            _ = try HoliTom.outer(features: x, frames: 4, attention: a, parameters: HoliTom.Parameters(contextShare: 0.5))
            Issue.record("D > 0 must be refused")
        } catch let error as CompressionError {
            guard case .unsupportedSetting = error else { Issue.record("D > 0 must be an unsupportedSetting, got \(error)"); return }
        }
    }
}
