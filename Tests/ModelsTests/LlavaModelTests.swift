import Testing
import Tensors
@testable import Models

@Suite struct LlavaModelTests {
    @Test(arguments: ["llava", "llava-legacy", "llava-full-multilayer"])
    func llava15MatchesTransformers(_ name: String) throws {
        let model = try LlavaModel.load(folder: modelsFixture(name))
        let ref = try ModelsReference(name)
        let pixels = try ref.tensor("pixel_values")
        let ids = try ref.ints("input_ids")
        let (tokens, prefill) = try model.generate(inputIDs: ids, images: [.single(try pixels.reshaped(Array(pixels.shape.dropFirst())))],
                                                   maxNewTokens: 5, stopTokens: [])
        let d = modelsMaxAbs(prefill.logits, try ref.tensor("logits"))
        #expect(d < 1e-4, "\(name): logits differ by \(d)")
        #expect(tokens == (try ref.ints("greedy")))
        #expect(prefill.expandedInputIDs == ids)
    }

    @Test func placeholderTokenExpands() throws {
        let model = try LlavaModel.load(folder: modelsFixture("llava"))
        let ref = try ModelsReference("llava")
        let pixels = try ref.tensor("pixel_values").reshaped([3, 28, 28])
        let full = try ref.ints("input_ids")
        var short: [Int] = []
        for t in full where !(t == 98 && short.last == 98) { short.append(t) }
        let a = try model.prefill(inputIDs: short, pixelValues: pixels)
        #expect(modelsMaxAbs(a.logits, try ref.tensor("logits")) < 1e-4)
        #expect(LlavaModel.expandImageTokens(short, imageTokenID: 98, count: 4) == full)
        #expect(throws: ModelError.self) { try model.prefill(inputIDs: full + [98], pixelValues: pixels) }
    }

    @Test(arguments: ["llava-next-wide", "llava-next-tall"])
    func llavaNextMatchesTransformers(_ name: String) throws {
        let model = try LlavaModel.load(folder: modelsFixture(name))
        let ref = try ModelsReference(name)
        let pixels = try ref.tensor("pixel_values")
        let tiles = try (0..<pixels.shape[0]).map { try pixels.rows(($0 * 3 * 28)..<(($0 + 1) * 3 * 28)).reshaped([3, 28, 28]) }
        let size = try ref.ints("image_size")
        let image = LlavaImage.anyRes(tiles: tiles, imageHeight: size[0], imageWidth: size[1])
        let ids = try ref.ints("input_ids")
        #expect(try model.imageTokenCount(image) == ids.filter { $0 == 98 }.count)
        let (tokens, prefill) = try model.generate(inputIDs: ids, images: [image], maxNewTokens: 5, stopTokens: [])
        let d = modelsMaxAbs(prefill.logits, try ref.tensor("logits"))
        #expect(d < 1e-4, "\(name): logits differ by \(d)")
        #expect(tokens == (try ref.ints("greedy")))
    }
}
