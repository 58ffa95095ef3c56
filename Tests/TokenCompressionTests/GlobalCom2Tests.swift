import Testing
@testable import TokenCompression
import Tensors
import Foundation
import TestSupport

func globalCom2Inputs(parts: Int, s: Int, c: Int, seed: UInt64) -> (logits: Tensor, features: Tensor, newline: [Float]) {
    var rng = TestRandom(seed)
    return (rng.tensor([parts, s * s]), rng.tensor([parts, s * s, c]), (0..<c).map { _ in rng.uniform() })
}

@Suite struct GlobalCom2Tests {
    @Test func countsAndLayout() throws {
        let grid = GlobalCom2.Grid(numPatchWidth: 2, numPatchHeight: 2, patchesPerSide: 6, originalWidth: 800, originalHeight: 600)
        let x = globalCom2Inputs(parts: 5, s: 6, c: 4, seed: 1)
        let r = try GlobalCom2().compress(clsLogits: x.logits, features: x.features, imageNewline: x.newline, grid: grid)
        #expect(r.count == Int(36 * 0.25) + r.cropBudgets.reduce(0, +) + 12)
        #expect(r.outputSource.filter { $0 < 0 }.count == 12)
        #expect(r.kept == r.kept.sorted() && Set(r.kept).count == r.kept.count)
        #expect(r.output.shape == [r.count, 4])
        for (i, src) in r.outputSource.enumerated() where src < 0 { #expect(r.output.row(i) == x.newline) }
        // Thumbnail part first, in descending logit order.
        let thumb = Array(r.outputSource.prefix(9))
        #expect(thumb == r.thumbnailKept)
        for i in 1..<thumb.count { #expect(x.logits[0, thumb[i - 1]] >= x.logits[0, thumb[i]]) }
        for (c, kv) in r.cropKeptValid.enumerated() {
            #expect(kv.count == r.cropBudgets[c])
            #expect(kv.allSatisfy { $0 < r.cropValidCounts[c] })
        }
        #expect(r.cropValidCounts.reduce(0, +) < 4 * 36)   // 800×600 on a square grid: rows are padded
    }

    @Test func uniformThumbnailGivesEqualScales() throws {
        let grid = GlobalCom2.Grid(numPatchWidth: 3, numPatchHeight: 1, patchesPerSide: 6, originalWidth: 1000, originalHeight: 400)
        var x = globalCom2Inputs(parts: 4, s: 6, c: 2, seed: 2)
        for j in 0..<36 { x.logits[0, j] = 0.5 }
        let r = try GlobalCom2(.init(retentionRatio: 0.5)).compress(clsLogits: x.logits, features: x.features, imageNewline: x.newline, grid: grid)
        for s in r.cropScales { #expect(abs(s - 0.5) < 1e-7) }
    }

    @Test func scalesAreClippedAtOne() throws {
        let grid = GlobalCom2.Grid(numPatchWidth: 2, numPatchHeight: 1, patchesPerSide: 4, originalWidth: 600, originalHeight: 300)
        var x = globalCom2Inputs(parts: 3, s: 4, c: 2, seed: 3)
        for j in 0..<16 { x.logits[0, j] = j % 4 < 2 ? 50 : -50 }
        let r = try GlobalCom2(.init(retentionRatio: 0.9)).compress(clsLogits: x.logits, features: x.features, imageNewline: x.newline, grid: grid)
        #expect(r.cropScales[0] == 1.0)
        #expect(r.cropScales[1] < 0.9)
        #expect(r.cropBudgets[0] == r.cropValidCounts[0])
    }

    @Test func truePositionVariantKeepsRasterOrder() throws {
        let grid = GlobalCom2.Grid(numPatchWidth: 1, numPatchHeight: 2, patchesPerSide: 6, originalWidth: 300, originalHeight: 400)
        let x = globalCom2Inputs(parts: 3, s: 6, c: 2, seed: 4)
        let quirk = try GlobalCom2().compress(clsLogits: x.logits, features: x.features, imageNewline: x.newline, grid: grid)
        let clean = try GlobalCom2(.init(placeAtTruePositions: true)).compress(clsLogits: x.logits, features: x.features, imageNewline: x.newline, grid: grid)
        #expect(quirk.kept == clean.kept)
        let cropPart = clean.outputSource.dropFirst(clean.thumbnailKept.count).filter { $0 >= 0 }
        // One crop column: stitched raster order = ascending flattened index.
        #expect(Array(cropPart) == cropPart.sorted())
    }

    @Test func singleImageIsAnExplicitNoOp() throws {
        let grid = GlobalCom2.Grid(numPatchWidth: 1, numPatchHeight: 1, patchesPerSide: 4, originalWidth: 100, originalHeight: 100)
        let x = globalCom2Inputs(parts: 1, s: 4, c: 3, seed: 5)
        let r = try GlobalCom2().compress(clsLogits: x.logits, features: x.features, imageNewline: x.newline, grid: grid)
        #expect(r.compression.noOpReason != nil)
        #expect(r.count == 17)
    }

    @Test func badInputsThrow() throws {
        #expect(throws: CompressionError.self) { try GlobalCom2(.init(retentionRatio: 0)) }
        #expect(throws: CompressionError.self) { try GlobalCom2(.init(temperature: -1)) }
        let grid = GlobalCom2.Grid(numPatchWidth: 2, numPatchHeight: 2, patchesPerSide: 4, originalWidth: 100, originalHeight: 100)
        let x = globalCom2Inputs(parts: 3, s: 4, c: 3, seed: 6)   // 3 partitions, grid needs 5
        #expect(throws: CompressionError.self) {
            try GlobalCom2().compress(clsLogits: x.logits, features: x.features, imageNewline: x.newline, grid: grid)
        }
        let y = globalCom2Inputs(parts: 5, s: 4, c: 3, seed: 7)
        #expect(throws: CompressionError.self) {
            try GlobalCom2().compress(clsLogits: y.logits, features: y.features, imageNewline: [1], grid: grid)
        }
    }
}
