import Foundation
import ModelIO
import Models
import Tensors
import Testing
@testable import Runtime

/// `VLMRunner` on the tiny LLaVA-OneVision fixture (tools/fixtures/make_onevision_fixtures.py): image
/// file in, the checkpoint's preprocessing, prefill and greedy decoding, compared with transformers.
@Suite struct VLMRunnerOnevisionTests {
    static let folder = runPath("Tests/Fixtures/models/llava-onevision")

    static func reference() throws -> SafetensorsFile {
        try SafetensorsFile(path: folder + "/reference.safetensors")
    }

    @Test(arguments: ["a", "b"])
    func imagePromptMatchesTransformers(_ key: String) throws {
        let runner = try VLMRunner(folder: Self.folder)
        #expect(runner.model.config.variant == .onevision && runner.preprocessor.kind == .llavaOnevision)
        #expect(runner.loadNotes.contains { $0.contains("no tokenizer.json") })
        let ref = try Self.reference()
        let image = try runner.prepare(try VLMRunner.loadImage(path: Self.folder + "/image_\(key).png"))
        let expanded = try ref.integers("input_ids_\(key)").map { Int($0) }
        #expect(try runner.visualTokenCount(image) == expanded.filter { $0 == 157 }.count)
        let prompt = VLMPrompt(inputIDs: [1, 15, 27, 157, 33, 8, 91])
        let result = try runner.run(prompt: prompt, image: image, maxNewTokens: 5)
        let logits = try ref.tensor("logits_\(key)")
        let d = zip(result.logits.values, logits.values).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
        #expect(d < 1e-4, "runner logits for image \(key) differ by \(d)")
        let greedy = try ref.integers("greedy_\(key)").map { Int($0) }
        #expect(Array(greedy.prefix(result.generatedIDs.count)) == result.generatedIDs)
        #expect(result.promptTokens == expanded.count)
    }

    /// Keep maps are drawn where the tokens are patches (unpadding only) and refused where the
    /// OneVision grid is downscaled (tokens are interpolated cells).
    @Test func keepMapsFollowTheGrid() throws {
        let runner = try VLMRunner(folder: Self.folder)
        let b = try runner.prepare(try VLMRunner.loadImage(path: Self.folder + "/image_b.png"))
        let map = try runner.keepMap(kept: Array(0..<60), image: b)
        #expect(map.width > 0 && map.height > 0)
        let a = try runner.prepare(try VLMRunner.loadImage(path: Self.folder + "/image_a.png"))
        #expect(throws: VLMRunError.self) { try runner.keepMap(kept: [0, 1], image: a) }
    }
}
