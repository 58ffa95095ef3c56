import Foundation
import Tensors
import Testing
@testable import Runtime

/// The built-in diffusion model (`builtin/models/dit-shapes`, trained by tools/builtin/train_dit.py) sampled
/// by tokc equals diffusers' DiTPipeline on the same folder: `reference.json` (written by
/// tools/builtin/check_dit_folder.py) holds one fixed starting noise and, per run (DDIM with guidance,
/// DPM-Solver++ without), diffusers' final latents and uint8 image. Same tolerances as the random-weight
/// parity tests: latents within 1e-4 relative to their largest magnitude, pixels within 1/255.
@Suite struct BuiltinDiTModelTests {
    static let folder = runPath("builtin/models/dit-shapes")

    struct Run {
        var name: String, scheduler: String, classLabel: Int, steps: Int, guidance: Double
        var timesteps: [Int], latents: [Float], image: [Int], imageSize: [Int]
    }

    static func reference() throws -> (noise: Tensor, runs: [Run], accuracy: Double) {
        let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/reference.json"))
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let noise = try Tensor(shape: try #require(root["noise_shape"] as? [Int]),
                               values: try #require(root["noise"] as? [Double]).map(Float.init))
        let runs = try #require(root["runs"] as? [[String: Any]]).map { r in
            Run(name: try #require(r["name"] as? String), scheduler: try #require(r["scheduler"] as? String),
                classLabel: try #require(r["class"] as? Int), steps: try #require(r["steps"] as? Int),
                guidance: try #require(r["guidance"] as? Double), timesteps: try #require(r["timesteps"] as? [Int]),
                latents: try #require(r["latents"] as? [Double]).map(Float.init), image: try #require(r["image"] as? [Int]),
                imageSize: try #require(r["image_size"] as? [Int]))
        }
        let first = try #require((root["class_accuracy"] as? [[String: Any]])?.first)
        return (noise, runs, try #require(first["accuracy"] as? Double))
    }

    /// `tokc generate` without `--model` finds this folder.
    @Test func isTheDefaultModel() throws {
        let folder = try DiTPipeline.defaultFolder()
        #expect(folder.hasSuffix(DiTPipeline.builtinModel))
        #expect(FileManager.default.fileExists(atPath: folder + "/model_index.json"))
    }

    @Test func samplesAsDiffusersDoes() throws {
        let (noise, runs, _) = try Self.reference()
        #expect(runs.count >= 2)
        let pipeline = try DiTPipeline(folder: Self.folder)
        #expect(pipeline.transformer.config.classCount == 1000)
        for run in runs {
            let result = try pipeline.generate(DiTGenerationOptions(classLabel: run.classLabel, steps: run.steps, guidance: run.guidance,
                                                                    noise: noise, scheduler: run.scheduler))
            #expect(result.timesteps.map { Int($0) } == run.timesteps, "\(run.name): timesteps")
            #expect(result.latents.count == run.latents.count, "\(run.name): latent size")
            let scale = run.latents.map(abs).max()!
            let err = zip(result.latents.values, run.latents).map { abs($0 - $1) }.max()! / scale
            #expect(err < 1e-4, "\(run.name): latents relative error \(err)")
            #expect([result.image.height, result.image.width, 3] == run.imageSize, "\(run.name): image size")
            let diff = zip(result.image.pixels, run.image).map { abs(Int($0) - $1) }.max()!
            #expect(result.image.pixels.count == run.image.count && diff <= 1, "\(run.name): image differs by \(diff)/255")
        }
    }

    /// tokc's own samples (its SplitMix64 noise, not torch's) are recognisably of their class: the built-in
    /// ViT classifier (run by tokc, resizing the 32-px images to its 80 px) names the class of most of them.
    /// One image for each of 12 classes (every shape, three colours each), DDIM 20 steps, guidance 4.
    @Test func tokcSamplesAreRecognisedByTheBuiltinClassifier() throws {
        let pipeline = try DiTPipeline(folder: Self.folder)
        let classifier = try ClassifierRunner(folder: runPath("builtin/models/vit-shapes"))
        let classes = [0, 3, 4, 7, 8, 11, 12, 13, 14, 19, 20, 23]
        var correct = 0
        for (i, label) in classes.enumerated() {
            let result = try pipeline.generate(DiTGenerationOptions(classLabel: label, steps: 20, guidance: 4, seed: UInt64(i)))
            let predicted = try classifier.classify([try classifier.prepare(result.image)], topK: 1).predictions[0][0].index
            if predicted == label { correct += 1 }
        }
        #expect(correct >= 10, "tokc's samples: \(correct) of \(classes.count) classified as their class")
    }
}
