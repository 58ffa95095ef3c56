import Foundation
import Testing
import Tensors
@testable import TokenCompression
import TestSupport

@Suite struct SparseTuningTests {
    /// The stages reproduce `forward_features`' literal loop for ViT-B (12 blocks, drop_loc 3, 6, 9):
    /// `i < 3` summed with x_embed and added at i == 2; 3…5 at 5; 6…8 at 8; 9, 10 (not 11) at 11.
    @Test func stagesOfTheReleasedLoop() throws {
        #expect(SparseTuning.pruningBlocks(depth: 12) == [3, 6, 9])
        let stages = try SparseTuning.stages(depth: 12, pruningBlocks: [3, 6, 9])
        #expect(stages == [
            .init(blocks: 0..<3, summed: 0..<3, addsEmbedding: true),
            .init(blocks: 3..<6, summed: 3..<6, addsEmbedding: false),
            .init(blocks: 6..<9, summed: 6..<9, addsEmbedding: false),
            .init(blocks: 9..<12, summed: 9..<11, addsEmbedding: false),
        ])
        // The literal loop, as the release writes it, on symbolic block outputs.
        var literal: [Int: [String]] = [:]
        var p0 = ["embed"], p1: [String] = [], p2: [String] = [], p3: [String] = []
        for i in 0..<12 {
            if i < 3 { p0.append("a\(i)") }
            if i == 2 { literal[i] = p0 }
            if i > 2 && i < 6 { p1.append("a\(i)") }
            if i == 5 { literal[i] = p1 }
            if i > 5 && i < 9 { p2.append("a\(i)") }
            if i == 8 { literal[i] = p2 }
            if i > 8 && i < 11 { p3.append("a\(i)") }
            if i == 11 { literal[i] = p3 }
        }
        var ours: [Int: [String]] = [:]
        for s in stages { ours[s.last] = (s.addsEmbedding ? ["embed"] : []) + s.summed.map { "a\($0)" } }
        #expect(ours == literal)
        // Other depths: the stage boundaries follow the scaled pruning blocks.
        #expect(SparseTuning.pruningBlocks(depth: 3) == [1, 2] && SparseTuning.pruningBlocks(depth: 1) == [])
        #expect(try SparseTuning.stages(depth: 3, pruningBlocks: [1, 2]).map(\.summed) == [0..<1, 1..<2, 2..<2])
        #expect(throws: CompressionError.self) { try SparseTuning.stages(depth: 12, pruningBlocks: [6, 3]) }
        #expect(throws: CompressionError.self) { try SparseTuning.stages(depth: 12, pruningBlocks: [0, 3]) }
    }

    /// The adapter against its equations written out per token.
    @Test func denseAdapterForward() throws {
        var rng = TestRandom(5)
        let d = 6, h = 4, s = 3, n = 5
        let w1 = rng.tensor(h, d), b1 = rng.tensor([h]), w2 = rng.tensor(s, h), b2 = rng.tensor([s])
        let w3 = rng.tensor(h, s), b3 = rng.tensor([h]), w4 = rng.tensor(h, s + h), b4 = rng.tensor([h])
        let w5 = rng.tensor(d, h), b5 = rng.tensor([d])
        let adapter = try SparseTuning.DenseAdapter(w1: w1, b1: b1, w2: w2, b2: b2, w3: w3, b3: b3, w4: w4, b4: b4, w5: w5, b5: b5)
        let u = rng.tensor(n, d)
        let out = try adapter(u)
        func lin(_ w: Tensor, _ b: Tensor, _ x: [Double]) -> [Double] {
            (0..<w.rows).map { o in Double(b[flat: o]) + (0..<w.columns).reduce(0.0) { $0 + Double(w[o, $1]) * x[$1] } }
        }
        for t in 0..<n {
            let x = u.row(t).map(Double.init)
            let h0 = lin(w1, b1, x).map { max($0, 0) }
            let h1 = lin(w2, b2, h0)
            let h2 = lin(w3, b3, h1)
            let h3 = zip(lin(w4, b4, h1 + h2), h0).map { $0 + $1 }
            let a = lin(w5, b5, h3)
            for j in 0..<d { #expect(abs(Double(out[t, j]) - a[j]) < 1e-5) }
        }
        #expect(adapter.flops(rows: 10) == 2 * 10 * Double(d * h + h * s + s * h + (s + h) * h + h * d))
        // Layers that do not chain are refused, naming the layer.
        #expect { try SparseTuning.DenseAdapter(w1: w1, b1: b1, w2: w2, b2: b2, w3: w3, b3: b3, w4: rng.tensor(h, h), b4: b4, w5: w5, b5: b5) } throws: {
            "\($0)".contains("w4 weight has shape [4, 4], expected [4, 7]")
        }
        #expect(throws: CompressionError.self) { try adapter(rng.tensor(2, d + 1)) }
    }
}
