import Testing
import Tensors
import TokenCompression
@testable import Models

/// FastV through the hook: records the last row at layer K-1, prunes before layer K.
final class ModelsFastVHook: PrefillHook {
    let method: FastV
    var kept: [Int] = []
    init(layer: Int, keep: Int) throws { method = try FastV(FastV.Parameters(layer: layer, keep: .count(keep))) }
    var lastRow = 0
    func attentionRecord(layer: Int) -> AttentionRecord {
        layer == method.parameters.layer - 1 ? .probabilities(rows: [lastRow]) : .none
    }
    func beforeLayer(_ layer: Int, state: PrefillState) throws -> PruneDecision? {
        if layer == 0 { lastRow = state.hidden.rows - 1 }
        guard layer == method.parameters.layer, let row = try state.recordedAttention(row: state.hidden.rows - 1) else { return nil }
        let result = try method.select(lastRowAttention: row, layout: try state.tokenLayout())
        kept = result.compression.kept
        return PruneDecision(result.compression)
    }
}

@Suite struct PrefillStateAdapterTests {
    @Test func fastVPlugsIntoTheDecoder() throws {
        let model = try LlavaModel.load(folder: modelsFixture("llava-next-wide"))
        let ref = try ModelsReference("llava-next-wide")
        let pixels = try ref.tensor("pixel_values")
        let tiles = try (0..<pixels.shape[0]).map { try pixels.rows(($0 * 84)..<(($0 + 1) * 84)).reshaped([3, 28, 28]) }
        let size = try ref.ints("image_size")
        let ids = try ref.ints("input_ids")
        let hook = try ModelsFastVHook(layer: 1, keep: 10)
        let r = try model.prefill(inputIDs: ids, images: [.anyRes(tiles: tiles, imageHeight: size[0], imageWidth: size[1])], hook: hook)
        let n = ids.count, image = ids.filter { $0 == 98 }.count
        #expect(r.decoder.tokensPerLayer == [n, n - image + 10])
        #expect(r.cache.tokenCounts == [n, n - image + 10])
        #expect(r.decoder.keptOriginalIndices == hook.kept)
        #expect(r.cache.nextPosition == n)
    }

    @Test func noOpResultGivesNoDecision() {
        #expect(PruneDecision(CompressionResult.noOp(tokenCount: 5, requested: 9, policy: .keepOriginal, reason: "budget ≥ tokens")) == nil)
    }
}
