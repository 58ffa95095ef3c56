import Foundation
import Testing
import Tensors
@testable import TokenCompression
import TestSupport

/// A `[1 + side², width]` crop whose windows listed in `similar` hold near-identical tokens.
func mustDropCrop(side: Int, width: Int, similar: Set<Int>, seed: UInt64) throws -> Tensor {
    var rng = TestRandom(seed)
    let perRow = side / 3
    let bases = (0..<(perRow * perRow)).map { _ in (0..<width).map { _ in rng.signed() } }
    var values: [Float] = (0..<width).map { _ in rng.signed() }
    for p in 0..<(side * side) {
        let w = (p / side / 3) * perRow + (p % side) / 3
        for k in 0..<width {
            values.append(similar.contains(w) ? bases[w][k] + 0.01 * rng.signed() : rng.signed())
        }
    }
    return try Tensor(shape: [1 + side * side, width], values: values)
}

@Suite struct MustDropTests {
    @Test func similarWindowsMergeIntoTheirMean() throws {
        let crop = try mustDropCrop(side: 6, width: 16, similar: [1, 2], seed: 1)
        let r = try MustDrop.windowMerge(crop)
        #expect(Set(r.mergedWindows) == [1, 2])
        #expect(r.tokens.rows == 1 + 2 + 18)
        #expect(r.sizes.reduce(0, +) == Float(crop.rows))
        #expect(r.unmerged == r.unmerged.sorted() && Set(r.unmerged).count == r.unmerged.count)
        // Merged token = mean of the window's tokens; destination = its bottom-right token.
        let w = r.mergedWindows[0]
        let patches = (0..<3).flatMap { dy in (0..<3).map { dx in ((w / 2) * 3 + dy) * 6 + (w % 2) * 3 + dx } }
        #expect(r.mergedDestinations[0] == 1 + patches[8])
        for k in 0..<16 {
            let mean = patches.map { crop[1 + $0, k] }.reduce(0, +) / 9
            #expect(abs(r.tokens[1, k] - mean) < 1e-5)
        }
        // Every input token lands in exactly one output row; the CLS stays first.
        #expect(r.assignment[0] == 0)
        #expect(Set(r.assignment) == Set(0..<r.tokens.rows))
        #expect(r.result.noOpReason == nil)
    }

    @Test func noSimilarWindowIsAnExplicitNoOp() throws {
        let crop = try mustDropCrop(side: 6, width: 16, similar: [], seed: 2)
        let r = try MustDrop.windowMerge(crop)
        #expect(r.mergedWindows.isEmpty)
        #expect(r.result.noOpReason != nil)
        #expect(r.tokens.values == crop.values)
    }

    @Test func batchedCropsShareTheMinimumMergeCount() throws {
        let a = try mustDropCrop(side: 6, width: 16, similar: [0, 1, 3], seed: 3)
        let b = try mustDropCrop(side: 6, width: 16, similar: [2], seed: 4)
        let (count, crops) = try MustDrop.windowMerge(crops: [a, b])
        #expect(count == 1)
        #expect(crops.allSatisfy { $0.mergedWindows.count == 1 && $0.tokens.rows == 1 + 1 + 27 })
        #expect(crops[1].mergedWindows == [2])
    }

    @Test func windowMergeIsDeterministic() throws {
        let crop = try mustDropCrop(side: 9, width: 8, similar: [0, 4, 8], seed: 5)
        let x = try MustDrop.windowMerge(crop), y = try MustDrop.windowMerge(crop)
        #expect(x.tokens.values == y.tokens.values && x.mergedWindows == y.mergedWindows)
    }

    @Test func badGridsAndParametersThrow() throws {
        let notSquare = Tensor(shape: [1 + 30, 4], repeating: 1)
        #expect(throws: CompressionError.self) { try MustDrop.windowMerge(notSquare) }
        let notDivisible = Tensor(shape: [1 + 16, 4], repeating: 1)
        #expect(throws: CompressionError.self) { try MustDrop.windowMerge(notDivisible) }
        let crop = try mustDropCrop(side: 6, width: 4, similar: [], seed: 6)
        #expect(throws: CompressionError.self) {
            try MustDrop.windowMerge(crop, parameters: MustDrop.Parameters(windowHeight: 1, windowWidth: 1))
        }
        #expect(throws: CompressionError.self) {
            try MustDrop.windowMerge(crop, parameters: MustDrop.Parameters(keySetRate: 1.5))
        }
    }

    /// Random causal-ish attention `[heads, S, S]` with rows summing to 1.
    func attention(heads: Int, total: Int, seed: UInt64) throws -> Tensor {
        var rng = TestRandom(seed)
        var values: [Float] = []
        for _ in 0..<heads {
            for q in 0..<total {
                var row = (0..<total).map { $0 <= q ? exp(3 * rng.signed()) : 0 }
                let s = row.reduce(0, +)
                row = row.map { $0 / s }
                values += row
            }
        }
        return try Tensor(shape: [heads, total, total], values: values)
    }

    @Test func filterKeepsSystemTextAndKeySet() throws {
        let layout = try TokenLayout(imageStart: 3, imageCount: 40, totalCount: 55)
        let attn = try attention(heads: 2, total: 55, seed: 7)
        let params = MustDrop.Parameters(globalThreshold: 0.025, individualThreshold: 1)
        let keySet = [5, 39, 0]
        let f = try MustDrop.dualAttentionFilter(attention: attn, layout: layout, keySet: keySet, parameters: params)
        #expect(f.candidate.contains(true) && f.candidate.contains(false))
        #expect(f.result.kept == f.result.kept.sorted() && Set(f.result.kept).count == f.result.kept.count)
        #expect(Set(0..<3).isSubset(of: Set(f.result.kept)))
        #expect(Set(43..<55).isSubset(of: Set(f.result.kept)))
        #expect(Set(keySet).isSubset(of: Set(f.visualKept)))
        #expect(f.keySetOut.map { f.visualKept[$0] }.sorted() == keySet.sorted())
        #expect(f.result.positionPolicy == .renumber)
        // A non-candidate outside the key set is never dropped; a candidate outside it always is.
        for j in 0..<40 where !keySet.contains(j) { #expect(f.visualKept.contains(j) == !f.candidate[j]) }
        // Text-row-only attention gives the same decision as the full map.
        let rows = try (0..<2).map { h in try attn.reshaped([2 * 55, 55]).rows((h * 55 + 43)..<(h * 55 + 55)) }
        let textOnly = try Tensor(shape: [2, 12, 55], values: rows.flatMap(\.values))
        let g = try MustDrop.dualAttentionFilter(attention: textOnly, layout: layout, keySet: keySet, parameters: params)
        #expect(g.result.kept == f.result.kept)
        let (hidden, positions) = try MustDrop.apply(f, to: Tensor(shape: [55, 4], repeating: 1))
        #expect(hidden.rows == f.result.kept.count && positions == Array(0..<hidden.rows))
    }

    @Test func zeroThresholdsKeepEverythingExplicitly() throws {
        let layout = try TokenLayout(imageStart: 2, imageCount: 20, totalCount: 30)
        let attn = try attention(heads: 2, total: 30, seed: 8)
        let f = try MustDrop.dualAttentionFilter(attention: attn, layout: layout, keySet: [],
                                                 parameters: MustDrop.Parameters(globalThreshold: 0, individualThreshold: 0))
        #expect(f.visualKept == Array(0..<20))
        #expect(f.result.noOpReason != nil)
    }

    @Test func filterRejectsBadInput() throws {
        let layout = try TokenLayout(imageStart: 2, imageCount: 20, totalCount: 30)
        let attn = try attention(heads: 2, total: 30, seed: 9)
        #expect(throws: CompressionError.self) {
            try MustDrop.dualAttentionFilter(attention: attn, layout: layout, keySet: [20])
        }
        #expect(throws: CompressionError.self) {
            try MustDrop.dualAttentionFilter(attention: Tensor(zeros: [2, 30, 29]), layout: layout, keySet: [])
        }
        #expect(throws: CompressionError.self) {
            try MustDrop.dualAttentionFilter(attention: attn, layout: layout, keySet: [],
                                             parameters: MustDrop.Parameters(globalThreshold: -1))
        }
    }

    @Test func keySetTakesTheCeilOfEightPercent() throws {
        var rng = TestRandom(10)
        let n = 1 + 100
        let cls = try Tensor(shape: [2, n], values: (0..<(2 * n)).map { _ in rng.signed() })
        let keys = try MustDrop.keySet(clsAttention: cls)
        #expect(keys.count == 8)  // ceil(0.08 · 100) = 8
        #expect(Set(keys).count == keys.count && keys.allSatisfy { (0..<100).contains($0) })
        let mean = (1..<n).map { (cls[0, $0] + cls[1, $0]) / 2 }
        let cutoff = keys.map { mean[$0] }.min()!
        #expect(mean.filter { $0 > cutoff }.count == 7)
    }
}
