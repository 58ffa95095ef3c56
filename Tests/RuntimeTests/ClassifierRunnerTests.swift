import Foundation
import ModelIO
import Models
import Tensors
import Testing
import TokenCompression
@testable import Runtime

/// A copy of a classifier fixture folder in a temporary directory, with an optional preprocessor_config.json.
func classifierFolder(_ fixture: String, preprocessor: String? = nil) throws -> String {
    let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("tokc-cls-\(UUID().uuidString)")
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let source = runPath("Tests/Fixtures/models/\(fixture)")
    for f in ["config.json", "model.safetensors"] {
        try FileManager.default.copyItem(atPath: source + "/" + f, toPath: dir + "/" + f)
    }
    if let preprocessor { try Data(preprocessor.utf8).write(to: URL(fileURLWithPath: dir + "/preprocessor_config.json")) }
    return dir
}

/// A smooth test picture of the given size.
func classifierPicture(width: Int, height: Int, seed: Int) throws -> RGBImage {
    var px = [UInt8](repeating: 0, count: width * height * 3)
    for y in 0..<height {
        for x in 0..<width {
            let o = (y * width + x) * 3
            px[o] = UInt8((x * 255 / max(width - 1, 1) + seed * 37) % 256)
            px[o + 1] = UInt8((y * 255 / max(height - 1, 1) + seed * 91) % 256)
            px[o + 2] = UInt8(((x + y) * 7 + seed * 53) % 256)
        }
    }
    return try RGBImage(width: width, height: height, pixels: px)
}

@Suite struct ClassifierRunnerTests {
    static let vitConfig = #"{"image_processor_type": "ViTImageProcessor", "size": {"height": 32, "width": 32}}"#

    @Test func classifiesABatchWithTheFoldersPreprocessing() throws {
        let runner = try ClassifierRunner(folder: try classifierFolder("vit", preprocessor: Self.vitConfig))
        #expect(runner.loadNotes.isEmpty && runner.preprocessor.kind == .vit)
        let images = try (0..<3).map { try runner.prepare(try classifierPicture(width: 40 + 7 * $0, height: 30 + 11 * $0, seed: $0)) }
        #expect(images.allSatisfy { $0.pixels.shape == [3, 32, 32] && $0.modelInput.width == 32 })
        let result = try runner.classify(images, topK: 3)
        #expect(result.logits.shape == [3, 10] && result.batchSize == 3 && result.tokensIn == 17 && result.tokensOut == [17, 17, 17])
        // The logits are the model's on the stacked pixels; one image alone gives its row of the batch.
        let direct = try runner.model.forward(try runner.batch(images)).logits
        #expect(zip(result.logits.values, direct.values).allSatisfy { abs($0 - $1) < 1e-5 })
        let alone = try runner.classify([images[1]])
        #expect(zip(alone.logits.values, try result.logits.rows(1..<2).values).allSatisfy { abs($0 - $1) < 1e-5 })
        for (b, top) in result.predictions.enumerated() {
            #expect(top.count == 3 && top[0].probability >= top[1].probability && top[1].probability >= top[2].probability)
            #expect(top[0].label == "LABEL_\(top[0].index)")
            let row = try result.logits.rows(b..<(b + 1)).values
            #expect(top[0].index == row.indices.max { row[$0] < row[$1] })
        }
        #expect(result.method == nil && result.tokenGroups == nil && result.peakTensorBytes > 0)
        let json = result.jsonObject(paths: ["a", "b", "c"])
        #expect((json["images"] as? [[String: Any]])?.count == 3 && json["batch_size"] as? Int == 3)
    }

    /// Through a ViT method: its setting, report, token groups and merge map.
    @Test func toMeInsideTheBlocksAndItsMergeMap() throws {
        let runner = try ClassifierRunner(folder: try classifierFolder("vit"))
        #expect(runner.loadNotes.first?.contains("no preprocessor_config.json: ViTImageProcessor defaults at 32×32") == true)
        let image = try runner.prepare(try classifierPicture(width: 50, height: 50, seed: 4))
        let tome = try ViTToMeCompression.adapter.make(parameters: ["r": "4"], shape: runner.shape)
        let result = try runner.classify([image], compression: tome)
        #expect(result.method == "tome" && result.setting == "r=4" && result.tokensOut == [5])
        #expect(result.trace.rowsEnteringBlock.map { $0[0] } == [17, 13, 9])
        let groups = try #require(result.tokenGroups?[0])
        #expect(groups.count == 4 && groups.joined().sorted() == Array(0..<16))
        let map = try runner.mergeMap(image, groups: groups)
        #expect(map.width == 224 && map.height == 224)  // 32 px enlarged 7×
        #expect(map.pixels != (try runner.mergeMap(image, groups: (0..<16).map { [$0] })).pixels)
    }

    /// The model is fixed-size: preprocessing that does not end at image_size, or pixels of another
    /// size, are clear errors naming both sizes.
    @Test func wrongSizesAreClearErrors() throws {
        let runner = try ClassifierRunner(folder: try classifierFolder("vit", preprocessor: #"{"image_processor_type": "ViTImageProcessor", "size": {"height": 40, "width": 40}}"#))
        let e = #expect(throws: ClassifierRunError.self) { try runner.prepare(try classifierPicture(width: 64, height: 64, seed: 1), path: "x.png") }
        #expect(e?.message.contains("'x.png': preprocessing gives pixel values [3, 40, 40], but the model is fixed-size: it takes [3, 32, 32]") == true)
        let direct = try ClassifierRunner(folder: try classifierFolder("vit"))
        #expect { try direct.classify(pixels: Tensor(zeros: [1, 3, 48, 48])) } throws: { "\($0)".contains("fixed-size") }
        #expect(throws: ClassifierRunError.self) { try direct.classify([]) }
        #expect(throws: ClassifierRunError.self) { try direct.classify(pixels: Tensor(zeros: [1, 3, 32, 32]), topK: 0) }
        // A method built for another model is refused.
        let other = try ViTToMeCompression.adapter.make(shape: ViTModelShape(layers: 12, width: 768, heads: 12, patchesPerSide: 14, classTokens: 1))
        #expect { try direct.classify(pixels: Tensor(zeros: [1, 3, 32, 32]), compression: other) } throws: { "\($0)".contains("was built for a model") }
        // Sparse-Tuning with a head trained for 7 classes on this 10-class model.
        let path = (NSTemporaryDirectory() as NSString).appendingPathComponent("tokc-head-\(UUID().uuidString).safetensors")
        var w = SafetensorsWriter()
        for i in 0..<3 {
            for (n, shape) in [("w1", [8, 32]), ("w2", [4, 8]), ("w3", [8, 4]), ("w4", [8, 12]), ("w5", [32, 8])] {
                try w.add("adapters.\(i).\(n).weight", Tensor(zeros: shape))
                try w.add("adapters.\(i).\(n).bias", Tensor(zeros: [shape[0]]))
            }
        }
        try w.add("head.linear.weight", Tensor(zeros: [7, 32]))
        try w.add("head.linear.bias", Tensor(zeros: [7]))
        try w.write(to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let sparse = try ViTSparseTuningCompression.adapter.make(parameters: ["adapters": path], shape: direct.shape)
        #expect { try direct.classify(pixels: Tensor(zeros: [1, 3, 32, 32]), compression: sparse) } throws: {
            "\($0)".contains("its head has 7 classes, the model 10")
        }
    }

    @Test func foldersThatAreNotClassifiersAreRefused() throws {
        #expect(ClassifierRunner.isClassifier(folder: runPath("Tests/Fixtures/models/deit")))
        #expect(!ClassifierRunner.isClassifier(folder: runPath("Tests/Fixtures/models/llava")))
        #expect(!ClassifierRunner.isClassifier(folder: "/nonexistent"))
        #expect { try ClassifierRunner(folder: runPath("Tests/Fixtures/models/llava")) } throws: { "\($0)".contains("is not an image classifier") }
        #expect { try ClassifierRunner(folder: "/nonexistent") } throws: { "\($0)".contains("does not exist") }
        let anyRes = try classifierFolder("vit", preprocessor: #"{"image_processor_type": "LlavaNextImageProcessor"}"#)
        #expect { try ClassifierRunner(folder: anyRes) } throws: { "\($0)".contains("AnyRes") }
        #expect { try ClassifierRunner.loadImage(path: "/nonexistent.png") } throws: { "\($0)".contains("does not exist") }
    }
}

/// The built-in classifier and its Sparse-Tuning adapters against the PyTorch training script's reference
/// (`builtin/models/vit-shapes/adapters/reference.json`: the first four test images, logits to 5 decimals).
@Suite struct BuiltinClassifierReferenceTests {
    @Test(arguments: ["sparse", "dense"])
    func adaptersMatchThePyTorchReference(_ file: String) throws {
        let folder = runPath("builtin/models/vit-shapes")
        let data = try #require(FileManager.default.contents(atPath: folder + "/adapters/reference.json"))
        let reference = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let names = try #require(reference["images"] as? [String])
        let expected = try #require((reference[file] as? [String: Any])?["logits"] as? [[Double]])
        let runner = try ClassifierRunner(folder: folder)
        let images = try names.map { try runner.prepare(path: runPath("builtin/tasks/shapes/images/\($0).png")) }
        // The dense file was trained without sparsification: keep rate 1 (no block prunes).
        let c = try ViTSparseTuningCompression.adapter.make(parameters: ["adapters": folder + "/adapters/\(file).safetensors",
                                                                         "keep_rate": file == "dense" ? "1" : "0.7"], shape: runner.shape)
        let result = try runner.classify(images, compression: c)
        let classes = expected[0].count
        #expect(result.logits.shape == [names.count, classes])
        let got = result.logits.values
        var worst = 0.0
        for (i, row) in expected.enumerated() { for (j, v) in row.enumerated() { worst = max(worst, abs(Double(got[i * classes + j]) - v)) } }
        #expect(worst <= 2e-4, "\(file): max |Δlogit| \(worst)")
    }
}
