import Testing
@testable import TokenCompression
import Tensors
import TestSupport

private extension TestRandom {
    /// Attention row, hidden states and metric of one image of 1+N tokens.
    mutating func image(n: Int, heads: Int = 3, width: Int = 6, metricWidth: Int = 4) -> (Tensor, Tensor, Tensor) {
        (tensor([heads, 1 + n], .unit), tensor([1 + n, width]), tensor([1 + n, metricWidth]))
    }
}

@Suite struct VisionZipTests {
    @Test func dominantAndContextualStructure() throws {
        var rng = TestRandom(1)
        let (attention, hidden, metric) = rng.image(n: 49)
        let r = try VisionZip.compress(clsAttention: attention, hidden: hidden, metric: metric,
                                       parameters: .init(dominant: 8, contextual: 5))
        #expect(r.tokens.shape == [13, 6])
        #expect(r.dominantKept.first == 0 && r.dominantKept.count == 8 && r.dominantKept == Array(Set(r.dominantKept)).sorted())
        let s = try VisionZip.scores(clsAttention: attention)
        let minKept = r.dominantKept.dropFirst().map { s[$0 - 1] }.min()!
        let candidates = (0..<50).filter { !r.dominantKept.contains($0) }
        #expect(candidates.filter { $0 > 0 }.allSatisfy { s[$0 - 1] < minKept })
        // Positional targets: candidates 0, s, 2s, ... with s = 42 / 5 = 8.
        #expect(r.contextualTargets == [0, 8, 16, 24, 32].map { candidates[$0] })
        #expect(r.dominantKept.allSatisfy { r.assign[$0] == -1 })
        #expect(candidates.allSatisfy { (0..<5).contains(r.assign[$0]) })
        for (slot, t) in r.contextualTargets.enumerated() { #expect(r.assign[t] == slot) }
        #expect(r.contextualCounts.reduce(0, +) == candidates.count - 5)
        // Merged tokens account for every non-dominant token exactly once.
        let sources = r.compression.merged.flatMap(\.sources)
        #expect(sources.sorted() == candidates)
        #expect(r.compression.merged.map(\.size).reduce(0, +) + r.dominantKept.count == 50)
        for (row, i) in r.dominantKept.enumerated() { #expect(r.tokens.row(row) == hidden.row(i)) }
    }

    @Test func contextualTokenIsTargetPlusMemberMean() throws {
        var rng = TestRandom(2)
        let (attention, hidden, metric) = rng.image(n: 25)
        let r = try VisionZip.compress(clsAttention: attention, hidden: hidden, metric: metric,
                                       parameters: .init(dominant: 4, contextual: 3))
        for (slot, t) in r.contextualTargets.enumerated() {
            let members = (0..<26).filter { r.assign[$0] == slot && $0 != t }
            #expect(members.count == r.contextualCounts[slot])
            for k in 0..<6 {
                let mean = members.isEmpty ? 0 : members.map { hidden[$0, k] }.reduce(0, +) / Float(members.count)
                #expect(abs(r.tokens[4 + slot, k] - (hidden[t, k] + mean)) < 1e-5)
            }
        }
    }

    @Test func emptySlotGivesTargetUnchanged() throws {
        // Metric: every token points along x, except target 2 (candidate index 3·s) along y.
        let n = 8, width = 2
        var metricValues = [Float](), hiddenValues = [Float]()
        for i in 0...n { metricValues += i == 6 ? [0, 1] : [1, 0.01 * Float(i)]; hiddenValues += [Float(i), 1] }
        let metric = try Tensor(shape: [n + 1, width], values: metricValues)
        let hidden = try Tensor(shape: [n + 1, width], values: hiddenValues)
        var attention = [Float](repeating: 0.01, count: n + 1)
        attention[1] = 0.9  // dominant patch 1
        let r = try VisionZip.compress(clsAttention: try Tensor(shape: [1, n + 1], values: attention), hidden: hidden,
                                       metric: metric, parameters: .init(dominant: 2, contextual: 3))
        // Candidates [2..8] (M = 7), step 2: targets 2, 4, 6; token 6 is alone along y.
        #expect(r.contextualTargets == [2, 4, 6])
        #expect(r.contextualCounts[2] == 0)
        #expect(r.tokens.row(4) == hidden.row(6))
    }

    @Test func budgetCoveringAllTokensIsExplicitNoOp() throws {
        var rng = TestRandom(3)
        let (attention, hidden, metric) = rng.image(n: 9)
        let r = try VisionZip.compress(clsAttention: attention, hidden: hidden, metric: metric,
                                       parameters: .init(dominant: 6, contextual: 4))
        #expect(r.compression.noOpReason != nil && r.compression.kept == Array(0..<10))
        #expect(r.tokens.values == hidden.values)
    }

    @Test func badSettingsThrow() throws {
        var rng = TestRandom(4)
        let (attention, hidden, metric) = rng.image(n: 16)
        #expect(throws: CompressionError.self) {
            try VisionZip.compress(clsAttention: attention, hidden: hidden, metric: metric, parameters: .init(dominant: 4, contextual: 0))
        }
        #expect(throws: CompressionError.self) {
            try VisionZip.compress(clsAttention: attention, hidden: hidden, metric: metric, parameters: .init(dominant: 0, contextual: 2))
        }
        #expect(throws: CompressionError.self) {
            try VisionZip.compress(clsAttention: attention, hidden: try hidden.rows(0..<16), metric: metric, parameters: .init(dominant: 4, contextual: 2))
        }
    }

    @Test func anyResPackingIsAPermutationWithBaseFirst() throws {
        var rng = TestRandom(5)
        let grid = VisionZip.CropGrid(columns: 2, rows: 2), p = 5, n = 16
        let images = (0..<p).map { _ in rng.image(n: n) }
        let params = VisionZip.Parameters(dominant: 5, contextual: 2)
        let r = try VisionZip.compressAnyRes(clsAttention: images.map(\.0), hidden: images.map(\.1), metric: images.map(\.2),
                                             grid: grid, parameters: params)
        #expect(r.packedRows.count == p * 7 && r.packedRows.sorted() == Array(0..<(p * 7)))
        #expect(Array(r.packedRows.prefix(7)) == Array(0..<7))
        // After the crops' dominant patches: their [CLS] tokens, then their contextual tokens.
        let tail = Array(r.packedRows.suffix(4 + 4 * 2))
        #expect(tail == [7, 14, 21, 28] + [12, 13, 19, 20, 26, 27, 33, 34])
        #expect(r.compression.merged.count == p * 2 && r.compression.achievedCount == p * 7)
    }

    @Test func deterministicForAFixedSeed() throws {
        var a = TestRandom(6), b = TestRandom(6)
        let (x1, x2, x3) = a.image(n: 36), (y1, y2, y3) = b.image(n: 36)
        let x = try VisionZip.compress(clsAttention: x1, hidden: x2, metric: x3, parameters: .init(dominant: 6, contextual: 4))
        let y = try VisionZip.compress(clsAttention: y1, hidden: y2, metric: y3, parameters: .init(dominant: 6, contextual: 4))
        #expect(x.assign == y.assign && x.tokens.values == y.tokens.values)
    }
}
