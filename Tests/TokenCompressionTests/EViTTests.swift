import Foundation
import Testing
import Tensors
@testable import TokenCompression
import TestSupport

@Suite struct EViTTests {
    @Test func keepsTopAttendedTokensAndFusesTheRest() throws {
        var rng = TestRandom(1)
        let n = 30
        let x = rng.tensor(n, 4), attn = rng.softmaxRows(3, n, logitScale: 4)
        let r = try EViT.reorganize(x: x, clsAttentionHeads: attn, parameters: .init(keepRate: 0.5))
        let left = Int((0.5 * Double(n - 1)).rounded(.up))
        #expect(r.keptOrder.count == left)
        #expect(r.x.rows == 1 + left + 1)
        #expect(r.x.row(0) == x.row(0))
        // Descending attention order, and every kept token outranks every dropped one.
        let a = r.clsAttention
        #expect(zip(r.keptOrder, r.keptOrder.dropFirst()).allSatisfy { a[$0 - 1] >= a[$1 - 1] })
        #expect(r.dropped.allSatisfy { d in a[d - 1] <= a[r.keptOrder.last! - 1] })
        #expect(Set(r.keptOrder).union(r.dropped) == Set(1..<n))
        #expect(r.result.kept == r.result.kept.sorted() && r.result.kept.first == 0)
        // Fused token = raw attention-weighted sum of the dropped tokens.
        for k in 0..<4 {
            let expected = r.dropped.map { x[$0, k] * a[$0 - 1] }.reduce(0, +)
            #expect(abs(r.x[r.x.rows - 1, k] - expected) < 1e-5)
        }
    }

    @Test func float64CeilAndDeiTTokenCounts() throws {
        #expect(EViT.Parameters(keepRate: 0.55).leftTokens(tokenCount: 181) == 100)
        #expect(EViT.tokenCounts(initialTokens: 197, pruningBlocks: 3) == [197, 140, 100, 72])
        #expect(EViT.tokenCounts(initialTokens: 197, pruningBlocks: 3, parameters: .init(fuseToken: false)) == [197, 139, 98, 69])  // the spec's "139 → 98 → 70" is off by one: ceil(0.7·97) = 68
    }

    @Test func keepRateOneIsAnExplicitNoOpUnlessTokensGiven() throws {
        var rng = TestRandom(2)
        let x = rng.tensor(12, 3), attn = rng.softmaxRows(2, 12, logitScale: 4)
        let r = try EViT.reorganize(x: x, clsAttentionHeads: attn, parameters: .init(keepRate: 1))
        #expect(r.result.noOpReason != nil)
        #expect(r.x.values == x.values)
        let forced = try EViT.reorganize(x: x, clsAttentionHeads: attn, parameters: .init(keepRate: 1, fuseToken: false, tokens: 4))
        #expect(forced.x.rows == 5)
        #expect(forced.result.noOpReason == nil)
    }

    @Test func badParametersThrow() throws {
        var rng = TestRandom(3)
        let x = rng.tensor(8, 3), attn = rng.softmaxRows(2, 8, logitScale: 4)
        #expect(throws: CompressionError.self) { try EViT.reorganize(x: x, clsAttentionHeads: attn, parameters: .init(keepRate: 0)) }
        #expect(throws: CompressionError.self) { try EViT.reorganize(x: x, clsAttentionHeads: attn, parameters: .init(keepRate: 1.5)) }
        #expect(throws: CompressionError.self) { try EViT.reorganize(x: x, clsAttentionHeads: attn, parameters: .init(tokens: 20)) }
        #expect(throws: CompressionError.self) { try EViT.reorganize(x: rng.tensor(7, 3), clsAttentionHeads: attn) }
    }
}
