import Testing
import Tensors
@testable import Models

/// Keeps the first `keep` feature rows of every tile (or all with nil) and checks the signals.
final class ModelsKeepFirstHook: VisionFeatureHook {
    let keep: Int?
    var calls = 0
    var lastImage: VisionImageFeatures?
    init(keep: Int?) { self.keep = keep }
    var captureRequest: VisionCaptureRequest { VisionCaptureRequest(attention: [-2: .probabilities(rows: [0])]) }
    func selectFeatures(_ image: VisionImageFeatures) throws -> [KeptFeatures]? {
        calls += 1
        lastImage = image
        return try image.tiles.map { t in try KeptFeatures.selecting(Array(0..<min(keep ?? t.features.rows, t.features.rows)), of: t) }
    }
}

@Suite struct VisionFeatureHookTests {
    @Test func keepAllIsIdentityAndKeepingFewerShrinksThePrompt() throws {
        let model = try LlavaModel.load(folder: modelsFixture("llava"))
        let ref = try ModelsReference("llava")
        let pixels = try ref.tensor("pixel_values").reshaped([3, 28, 28])
        let ids = try ref.ints("input_ids")
        let all = ModelsKeepFirstHook(keep: nil)
        let same = try model.prefill(inputIDs: ids, pixelValues: pixels, visionHook: all)
        #expect(modelsMaxAbs(same.logits, try ref.tensor("logits")) < 1e-4)
        let tile = try #require(all.lastImage?.tiles.first)
        #expect(tile.classTokenDropped)
        #expect(tile.captures[1]?.attention?.values.shape == [4, 1, 5])
        let two = try model.prefill(inputIDs: ids, pixelValues: pixels, visionHook: ModelsKeepFirstHook(keep: 2))
        #expect(two.visualTokensBefore == [4])
        #expect(two.visualTokensAfter == [2])
        #expect(two.expandedInputIDs.count == ids.count - 2)
        #expect(two.imageSpans == [3..<5])
        #expect(two.cache.tokenCounts.allSatisfy { $0 == ids.count - 2 })
    }

    @Test func nextKeepsNewlinesOfRowsWithPatches() throws {
        let name = "llava-next-wide"
        let model = try LlavaModel.load(folder: modelsFixture(name))
        let ref = try ModelsReference(name)
        let pixels = try ref.tensor("pixel_values")
        let tiles = try (0..<pixels.shape[0]).map { try pixels.rows(($0 * 84)..<(($0 + 1) * 84)).reshaped([3, 28, 28]) }
        let size = try ref.ints("image_size")
        let image = LlavaImage.anyRes(tiles: tiles, imageHeight: size[0], imageWidth: size[1])
        let ids = try ref.ints("input_ids")
        let full = try model.prefill(inputIDs: ids, images: [image], visionHook: ModelsKeepFirstHook(keep: nil))
        #expect(modelsMaxAbs(full.logits, try ref.tensor("logits")) < 1e-4)
        // Keep the first 4 patches (first patch row) of every 4×4 tile: grid rows 1..<3 of the 4×8
        // unpadded grid lose all patches, so only the thumbnail's 4 rows remain.
        let r = try model.prefill(inputIDs: ids, images: [image], visionHook: ModelsKeepFirstHook(keep: 4))
        #expect(r.visualTokensAfter == [4])
        // Keep 8 (two patch rows): grid row 1 keeps 8 patches + newline; row 2 none.
        let r8 = try model.prefill(inputIDs: ids, images: [image], visionHook: ModelsKeepFirstHook(keep: 8))
        #expect(r8.visualTokensAfter == [8 + 8 + 1])
    }
}
