import Foundation
import Runtime
import ModelIO
import Testing
@testable import Evaluation

/// The shipped test split of the built-in task is what `tokc bench` runs by default.
@Suite struct BuiltinTaskTests {
    @Test func testSplitHas500DecodableScenesOfEveryQuestionType() throws {
        let samples = try BenchTask.load(jsonl: benchRepoRoot + "/" + VLMPaths.builtinTestSplit)
        #expect(samples.count == 500)
        #expect(Set(samples.map(\.id)).count == 500)
        #expect(Set(samples.map(\.type)) == ["color", "shape", "count", "exist", "position"])
        #expect(samples.allSatisfy { !($0.answer ?? "").isEmpty })
        // Every image exists; a spread of them decodes to the 224×224 scenes the model expects.
        #expect(samples.allSatisfy { FileManager.default.fileExists(atPath: $0.imagePath) })
        for s in samples where s.id.hasSuffix("0") && s.id.dropLast().hasSuffix("0") {
            let image = try RGBImage.load(path: s.imagePath)
            #expect(image.width == 224 && image.height == 224, "\(s.id)")
        }
    }
}
