import Foundation
import Testing
import Tensors
import TestSupport
@testable import TokenCompression

@Suite struct ToMeSDTests {
    /// `[B, N, C]` uniform values in [−1, 1).
    static func batch(_ b: Int, _ n: Int, _ c: Int, seed: UInt64) -> Tensor {
        var rng = TestRandom(seed)
        return try! rng.tensor(b * n, c).reshaped([b, n, c])
    }

    static func row(_ t: Tensor, _ b: Int, _ i: Int) -> [Float] {
        let n = t.shape[1], c = t.shape[2]
        return Array(t.values[((b * n + i) * c)..<((b * n + i) * c + c)])
    }

    /// Cell (i, j) with position k holds token (i·sy + k // sx)·w + j·sx + k % sx.
    @Test func destinationPositionsFollowTheCellLayout() throws {
        #expect(try ToMeSD.destinationTokens(height: 4, width: 4, sx: 2, sy: 2, cells: [0, 0, 0, 0]) == [0, 2, 8, 10])
        #expect(try ToMeSD.destinationTokens(height: 4, width: 4, sx: 2, sy: 2, cells: [3, 0, 1, 2]) == [2, 5, 9, 14])
        // 3×1 cells (sy 1, sx 3) on a 2×6 grid: k is a column offset.
        #expect(try ToMeSD.destinationTokens(height: 2, width: 6, sx: 3, sy: 1, cells: [2, 0, 1, 1]) == [2, 3, 7, 10])
    }

    /// A hand-checked matching: one 2×2 cell, top-left destination 0; sources 1 (cos ≈ 0.995),
    /// 3 (cos ≈ 0.707), 2 (cos 0). r = int(4 · 0.5) = 2 merges 1 and 3 into 0 by an unweighted mean.
    @Test func handCheckedMergeIsTheUnweightedMeanIncludingTheDestination() throws {
        let metric = try Tensor(shape: [1, 4, 2], values: [1, 0, 1, 0.1, 0, 1, 1, 1])
        let y = try Tensor(shape: [1, 4, 1], values: [1, 2, 30, 6])
        let block = try ToMeSD.computeMerge(metric: metric, originalSize: (2, 2), parameters: .init(ratio: 0.5),
                                            destinations: .cells([3]))
        // Batch 1 is odd: the recorded draw is ignored, the top-left token is the destination.
        #expect(!block.plan.useRand)
        let m = block.matching
        #expect(m.destinations == [0] && m.sources == [1, 2, 3])
        #expect(m.effectiveR == 2)
        #expect(m.mergedSources[0] == [1, 3] && m.mergedDestinations[0] == [0, 0])
        #expect(m.unmergedSources[0] == [2])
        #expect(m.order(batch: 0) == [0, 2])
        #expect(m.assignment(batch: 0) == [0, 0, 2, 0])
        let merged = try ToMeSD.merge(y, matching: m)
        #expect(merged.shape == [1, 2, 1])
        #expect(merged.values == [3, 30])  // (1 + 2 + 6) / 3, y₂
        let unmerged = try ToMeSD.unmerge(merged, matching: m)
        #expect(unmerged.values == [3, 3, 30, 3])
        let result = block.result()
        #expect(result.kept == [2])
        #expect(result.merged == [MergedToken(outputIndex: 0, sources: [0, 1, 3])])
        #expect(result.achievedCount == 2 && result.requestedCount == 2 && result.noOpReason == nil)
    }

    /// unmerge(merge(y)): every token holds the mean of its group (destination + the sources merged
    /// into it); surviving sources keep their own row; N − r rows in between.
    @Test func roundTripRestoresGroupMeansAndCountsNMinusR() throws {
        for (b, oh, ow, ratio, c, seed) in [(2, 6, 8, 0.5, 5, UInt64(1)), (2, 7, 9, 0.6, 3, 2), (1, 8, 8, 0.8, 4, 3), (4, 5, 4, 0.3, 6, 4)] {
            let n = oh * ow
            let x = Self.batch(b, n, c, seed: seed), y = Self.batch(b, n, c, seed: seed + 100)
            let block = try ToMeSD.computeMerge(metric: x, originalSize: (oh, ow), parameters: .init(ratio: ratio),
                                                destinations: .seeded(seed))
            let m = block.matching
            let sourceCount = n - (oh / 2) * (ow / 2)
            #expect(m.effectiveR == min(Int(Double(n) * ratio), sourceCount))
            let merged = try ToMeSD.merge(y, matching: m)
            #expect(merged.shape == [b, n - m.effectiveR, c])
            let unmerged = try ToMeSD.unmerge(merged, matching: m)
            #expect(unmerged.shape == y.shape)
            for e in 0..<b {
                let assign = m.assignment(batch: e)
                #expect(m.order(batch: e) == Array(Set(assign)).sorted())
                for t in 0..<n {
                    let group = (0..<n).filter { assign[$0] == assign[t] }
                    var mean = [Float](repeating: 0, count: c)
                    for g in group { for k in 0..<c { mean[k] += Self.row(y, e, g)[k] / Float(group.count) } }
                    let got = Self.row(unmerged, e, t)
                    #expect(zip(got, mean).allSatisfy { abs($0 - $1) <= 1e-5 }, "batch \(e) token \(t)")
                    if group.count == 1 { #expect(got == Self.row(y, e, t)) }
                }
                // Destinations are never merged away; merged sources join a destination.
                #expect(Set(m.mergedSources[e]).isDisjoint(with: m.destinations))
                #expect(Set(m.mergedDestinations[e]).isSubset(of: m.destinations))
            }
        }
    }

    /// The merged sources are the r with the largest best cosine similarity to a destination
    /// (recomputed here in float64), and each joins its most similar destination.
    @Test func mergedSourcesAreTheMostSimilarAndJoinTheirBestDestination() throws {
        let (b, h, w, c) = (2, 6, 6, 7)
        let x = Self.batch(b, h * w, c, seed: 11)
        let m = try ToMeSD.bipartiteSoftMatchingRandom2D(metric: x, width: w, height: h, r: 13, destinations: .seeded(5))
        func cosine(_ u: [Float], _ v: [Float]) -> Double {
            let dot = zip(u, v).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let nu = u.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            let nv = v.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            return dot / (nu * nv)
        }
        for e in 0..<b {
            var best: [Int: (Double, Int)] = [:]
            for s in m.sources {
                best[s] = m.destinations.map { (cosine(Self.row(x, e, s), Self.row(x, e, $0)), $0) }.max { $0.0 < $1.0 }!
            }
            let mergedMin = m.mergedSources[e].map { best[$0]!.0 }.min()!
            let survivorMax = m.unmergedSources[e].map { best[$0]!.0 }.max()!
            #expect(mergedMin > survivorMax)
            for (s, d) in zip(m.mergedSources[e], m.mergedDestinations[e]) { #expect(best[s]!.1 == d) }
            let similarities = m.mergedSources[e].map { best[$0]!.0 }
            #expect(similarities == similarities.sorted(by: >), "edge order is descending similarity")
        }
    }

    /// Each batch element is matched on its own metric, against the shared destination set.
    @Test func batchElementsMatchIndependentlyOnSharedDestinations() throws {
        let (h, w, c) = (4, 6, 3)
        let x = Self.batch(2, h * w, c, seed: 21)
        let cells = [1, 3, 0, 2, 2, 1]
        let both = try ToMeSD.bipartiteSoftMatchingRandom2D(metric: x, width: w, height: h, r: 10, destinations: .cells(cells))
        for e in 0..<2 {
            let single = try Tensor(shape: [1, h * w, c], values: Array(x.values[(e * h * w * c)..<((e + 1) * h * w * c)]))
            let alone = try ToMeSD.bipartiteSoftMatchingRandom2D(metric: single, width: w, height: h, r: 10, destinations: .cells(cells))
            #expect(alone.destinations == both.destinations)
            #expect(alone.mergedSources[0] == both.mergedSources[e])
            #expect(alone.mergedDestinations[0] == both.mergedDestinations[e])
        }
    }

    /// Rows and columns the sy×sx cells do not cover are all sources (7×9 with 2×2 cells: 3×4 cells,
    /// row 6 and column 8 left over), so more than 3/4 of the tokens can be merged.
    @Test func leftoverRowsAndColumnsOfAnOddGridAreSources() throws {
        let (h, w) = (7, 9)
        let x = Self.batch(2, h * w, 4, seed: 31)
        let m = try ToMeSD.bipartiteSoftMatchingRandom2D(metric: x, width: w, height: h, r: 100, destinations: .seeded(9))
        #expect(m.destinations.count == 12)
        #expect(m.destinations.allSatisfy { $0 / w < 6 && $0 % w < 8 })
        let leftovers = (0..<(h * w)).filter { $0 / w == 6 || $0 % w == 8 }
        #expect(leftovers.count == 15)
        #expect(Set(leftovers).isSubset(of: m.sources))
        // One destination per cell.
        var perCell = [Int](repeating: 0, count: 12)
        for d in m.destinations { perCell[(d / w) / 2 * 4 + (d % w) / 2] += 1 }
        #expect(perCell == [Int](repeating: 1, count: 12))
        // r is clamped to the 51 sources: everything but the destinations is merged.
        #expect(m.effectiveR == 51 && m.outputCount == 12)
        #expect(Double(m.effectiveR) / Double(h * w) > 1 - 1.0 / 4)
    }

    /// r = 0 (here int(192 · 0.004)) is the code's do-nothing: identity merge and unmerge, no draw.
    @Test func zeroRIsTheIdentity() throws {
        let x = Self.batch(2, 192, 4, seed: 41), y = Self.batch(2, 192, 4, seed: 42)
        let block = try ToMeSD.computeMerge(metric: x, originalSize: (12, 16), parameters: .init(ratio: 0.004),
                                            destinations: .cells([]))
        #expect(block.plan.requestedR == 0 && block.matching.isIdentity && block.plan.noOpReason != nil)
        let merged = try ToMeSD.merge(y, matching: block.matching)
        #expect(merged.shape == y.shape && merged.values == y.values)
        #expect(try ToMeSD.unmerge(merged, matching: block.matching).values == y.values)
        let result = block.result(batch: 1)
        #expect(result.kept == Array(0..<192) && result.merged.isEmpty && result.noOpReason != nil)
        // The matcher itself: r ≤ 0 needs no valid grid.
        let direct = try ToMeSD.bipartiteSoftMatchingRandom2D(metric: x, width: 5, height: 5, r: 0, destinations: .topLeft)
        #expect(direct.isIdentity)
    }

    /// compute_merge: downsample ceil(sqrt(HW // N)), the grid, r = int(N·ratio), the odd-batch switch.
    @Test func computeMergeRules() throws {
        let sd = try ToMeSD.computeMerge(batchSize: 2, tokenCount: 4096, originalSize: (64, 64))
        #expect(sd.downsample == 1 && sd.applies && sd.height == 64 && sd.width == 64)
        #expect(sd.requestedR == 2048 && sd.effectiveR == 2048 && sd.useRand && sd.destinationCount == 1024)
        let level2 = try ToMeSD.computeMerge(batchSize: 2, tokenCount: 1024, originalSize: (64, 64))
        #expect(level2.downsample == 2 && !level2.applies && level2.effectiveR == 0 && level2.noOpReason != nil)
        let level2On = try ToMeSD.computeMerge(batchSize: 2, tokenCount: 1024, originalSize: (64, 64), parameters: .init(maxDownsample: 2))
        #expect(level2On.applies && level2On.height == 32 && level2On.requestedR == 512)
        #expect(try ToMeSD.computeMerge(batchSize: 2, tokenCount: 256, originalSize: (64, 64), parameters: .init(maxDownsample: 8)).downsample == 4)
        // 13×17 latent, N = 63: 221 // 63 = 3, ceil(sqrt 3) = 2, grid ceil(13/2)×ceil(17/2) = 7×9, r = int(37.8).
        let odd = try ToMeSD.computeMerge(batchSize: 2, tokenCount: 63, originalSize: (13, 17), parameters: .init(ratio: 0.6, maxDownsample: 2))
        #expect(odd.downsample == 2 && odd.height == 7 && odd.width == 9 && odd.requestedR == 37 && odd.effectiveR == 37)
        // Odd batch: randomness off; r = int(51.2) = 51 clamped to the 48 sources.
        let clamped = try ToMeSD.computeMerge(batchSize: 1, tokenCount: 64, originalSize: (8, 8), parameters: .init(ratio: 0.8))
        #expect(!clamped.useRand && clamped.requestedR == 51 && clamped.effectiveR == 48)
        #expect(try ToMeSD.computeMerge(batchSize: 3, tokenCount: 64, originalSize: (8, 8)).useRand == false)
        #expect(try ToMeSD.computeMerge(batchSize: 2, tokenCount: 64, originalSize: (8, 8), parameters: .init(useRand: false)).useRand == false)
    }

    /// With an odd batch the recorded draw is not used: top-left destinations.
    @Test func oddBatchUsesTopLeftDestinations() throws {
        let x = Self.batch(1, 16, 3, seed: 51)
        let block = try ToMeSD.computeMerge(metric: x, originalSize: (4, 4), destinations: .cells([3, 3, 3, 3]))
        #expect(block.matching.destinations == [0, 2, 8, 10])
        let even = try ToMeSD.computeMerge(metric: Self.batch(2, 16, 3, seed: 52), originalSize: (4, 4), destinations: .cells([3, 3, 3, 3]))
        #expect(even.matching.destinations == [5, 7, 13, 15])
    }

    /// Defaults wrap self-attention only (`merge_attn` on, cross-attention and MLP off).
    @Test func sublayersFollowTheMergeSwitches() throws {
        let x = Self.batch(2, 16, 3, seed: 61)
        let block = try ToMeSD.computeMerge(metric: x, originalSize: (4, 4), destinations: .seeded(1))
        #expect(!block.sublayerMatching(.selfAttention).isIdentity)
        #expect(block.sublayerMatching(.crossAttention).isIdentity)
        #expect(block.sublayerMatching(.mlp).isIdentity)
        let all = try ToMeSD.computeMerge(metric: x, originalSize: (4, 4),
                                          parameters: .init(mergeAttention: false, mergeCrossAttention: true, mergeMLP: true),
                                          destinations: .seeded(1))
        #expect(all.sublayerMatching(.selfAttention).isIdentity)
        #expect(all.sublayerMatching(.mlp) == all.matching)
    }

    @Test func seededDestinationsAreReproducibleAndOnePerCell() throws {
        let x = Self.batch(2, 64, 3, seed: 71)
        let a = try ToMeSD.bipartiteSoftMatchingRandom2D(metric: x, width: 8, height: 8, r: 8, destinations: .seeded(3))
        let b = try ToMeSD.bipartiteSoftMatchingRandom2D(metric: x, width: 8, height: 8, r: 8, destinations: .seeded(3))
        #expect(a == b)
        #expect(a.cells.count == 16 && a.cells.allSatisfy { (0..<4).contains($0) })
        #expect(Set(a.cells).count > 1, "16 draws of 4 positions are not all equal")
    }

    @Test func badInputsThrowWithContext() throws {
        let x = Self.batch(2, 16, 3, seed: 81)
        func expectError(_ body: () throws -> Void, _ check: (CompressionError) -> Bool) {
            do { try body(); Issue.record("expected an error") } catch let e as CompressionError {
                #expect(check(e), "\(e)")
            } catch { Issue.record("unexpected \(error)") }
        }
        func isShape(_ e: CompressionError) -> Bool { if case .shapeMismatch = e { return true }; return false }
        func isParameter(_ e: CompressionError) -> Bool { if case .invalidParameter = e { return true }; return false }
        func isUnsupported(_ e: CompressionError) -> Bool { if case .unsupportedSetting = e { return true }; return false }

        for ratio in [-0.1, 1.5, .nan, .infinity] {
            expectError({ _ = try ToMeSD.computeMerge(batchSize: 2, tokenCount: 16, originalSize: (4, 4), parameters: .init(ratio: ratio)) }, isParameter)
        }
        expectError({ _ = try ToMeSD.computeMerge(batchSize: 2, tokenCount: 16, originalSize: (4, 4), parameters: .init(sx: 0)) }, isParameter)
        expectError({ _ = try ToMeSD.computeMerge(batchSize: 2, tokenCount: 16, originalSize: (4, 4), parameters: .init(maxDownsample: 0)) }, isParameter)
        expectError({ _ = try ToMeSD.computeMerge(batchSize: 2, tokenCount: 16, originalSize: (0, 4)) }, isParameter)
        expectError({ _ = try ToMeSD.computeMerge(batchSize: 0, tokenCount: 16, originalSize: (4, 4)) }, isShape)
        expectError({ _ = try ToMeSD.computeMerge(batchSize: 2, tokenCount: 16, originalSize: (Int.max, 4)) }, isParameter)
        // More tokens than the latent: downsample 0 (a division by zero in the code).
        expectError({ _ = try ToMeSD.computeMerge(batchSize: 2, tokenCount: 17, originalSize: (4, 4)) }, isUnsupported)
        // 15 tokens on a 4×4 latent: downsample 1, but the 4×4 grid does not hold them.
        expectError({ _ = try ToMeSD.computeMerge(batchSize: 2, tokenCount: 15, originalSize: (4, 4)) }, isUnsupported)
        // A grid smaller than one cell has no destination.
        expectError({ _ = try ToMeSD.computeMerge(batchSize: 2, tokenCount: 3, originalSize: (1, 3)) }, isUnsupported)

        expectError({ _ = try ToMeSD.bipartiteSoftMatchingRandom2D(metric: try x.reshaped([32, 3]), width: 4, height: 4, r: 4, destinations: .topLeft) }, isShape)
        expectError({ _ = try ToMeSD.bipartiteSoftMatchingRandom2D(metric: x, width: 4, height: 4, r: 4, destinations: .cells([0, 1, 2])) }, isShape)
        expectError({ _ = try ToMeSD.bipartiteSoftMatchingRandom2D(metric: x, width: 4, height: 4, r: 4, destinations: .cells([0, 1, 2, 4])) }, isParameter)
        expectError({ _ = try ToMeSD.bipartiteSoftMatchingRandom2D(metric: x, width: 4, height: 4, r: 4, destinations: .cells([0, -1, 2, 3])) }, isParameter)
        var zeroRow = x.values
        for k in 0..<3 { zeroRow[5 * 3 + k] = 0 }
        let zero = try Tensor(shape: [2, 16, 3], values: zeroRow)
        expectError({ _ = try ToMeSD.bipartiteSoftMatchingRandom2D(metric: zero, width: 4, height: 4, r: 4, destinations: .topLeft) }, isParameter)
        var nanRow = x.values
        nanRow[40] = .nan
        let nan = try Tensor(shape: [2, 16, 3], values: nanRow)
        expectError({ _ = try ToMeSD.bipartiteSoftMatchingRandom2D(metric: nan, width: 4, height: 4, r: 4, destinations: .topLeft) }, isParameter)

        let m = try ToMeSD.bipartiteSoftMatchingRandom2D(metric: x, width: 4, height: 4, r: 4, destinations: .topLeft)
        expectError({ _ = try ToMeSD.merge(Self.batch(1, 16, 3, seed: 1), matching: m) }, isShape)
        expectError({ _ = try ToMeSD.merge(Self.batch(2, 15, 3, seed: 1), matching: m) }, isShape)
        expectError({ _ = try ToMeSD.unmerge(x, matching: m) }, isShape)  // 16 rows, not N − r = 12
        let identity = ToMeSD.Matching.identity(batchSize: 2, tokenCount: 16, reason: "test")
        expectError({ _ = try ToMeSD.unmerge(Self.batch(2, 12, 3, seed: 1), matching: identity) }, isShape)
    }
}
