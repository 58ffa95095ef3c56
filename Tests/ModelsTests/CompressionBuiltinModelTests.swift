import Foundation
import ModelIO
import Testing
import Evaluation
import Tensors
import TokenCompression
@testable import Models

/// Every runnable method on the bundled trained LLaVA (builtin/models/llava: 256 visual tokens on
/// a 16×16 grid, 4 decoder layers, F16 weights): sizes closer to real use than the tiny fixtures.
@Suite struct CompressionBuiltinModelTests {
    static var folder: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("builtin/models/llava").path
    }

    @Test func everyRunnableMethodRunsAndReports() throws {
        let model = try LlavaModel.load(folder: Self.folder)
        let root = URL(fileURLWithPath: Self.folder).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let preprocess = try ImagePreprocessor(config: try JSONValue.parse(try Data(contentsOf: URL(fileURLWithPath: Self.folder + "/preprocessor_config.json"))))
        let image = try RGBImage.load(path: root.appendingPathComponent("builtin/tasks/scenes/images/sample-00000.png").path)
        let pixels = try preprocess(image)
        let imageID = model.config.imageTokenID
        let ids = [1, 10, 11, imageID] + Array(20..<32)
        let baseline = try model.prefill(inputIDs: ids, pixelValues: pixels)
        let visual = baseline.visualTokensBefore[0]
        #expect(visual == 256)
        for method in MethodCatalog.llavaMethods {
            let c = try MethodCatalog.compression(method: method, budget: .count(64),
                                                  parameters: method == "fitprune" ? ["scheme": "0,96,64,32"] : [:])
            let p = try model.prefill(inputIDs: ids, pixelValues: pixels, hook: c.prefillHook, visionHook: c.visionHook)
            let r = c.report()
            #expect(r.visualTokensBefore == visual, "\(method)")
            #expect(r.requestedVisualTokens == 64, "\(method)")
            if method != "globalcom2" { #expect(r.achievedVisualTokens < visual, "\(method): \(r.notes)") }
            #expect(p.cache.byteCount <= baseline.cache.byteCount, "\(method)")
            let t = try model.decodeStep(token: DecoderLM.argmax(p.logits), cache: p.cache)
            #expect(t.values.allSatisfy { $0.isFinite }, "\(method)")
            print("builtin \(method): before \(r.visualTokensBefore) requested \(r.requestedVisualTokens) achieved \(r.achievedVisualTokens) kv \(p.cache.tokenCounts) scoring \(String(format: "%.4f", r.scoringSeconds)) s")
        }
    }
}
