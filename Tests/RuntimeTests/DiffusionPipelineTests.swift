import Foundation
import Testing
import ModelIO
import Models
import Tensors
@testable import Runtime

/// `DiTPipeline` against diffusers' DiTPipeline on the tiny random pipeline of
/// tools/fixtures/make_dit_fixtures.py: DDIM and DPM-Solver++ (10 steps, class 3), with and without
/// guidance, from the same starting noise. Final latents within 1e-4 relative, images within 1/255.
@Suite struct DiffusionPipelineTests {
    static let folder = runPath("Tests/Fixtures/models/dit-tiny")
    static let reference = Result { try SafetensorsFile(path: folder + "/reference.safetensors") }
    static let pipeline = Result { try DiTPipeline(folder: folder) }

    static func run(_ scheduler: String?, guidance: Double, steps: Int = 10, classLabel: Int = 3, noise: Tensor? = nil) throws -> DiffusionGenerationResult {
        let ref = try reference.get()
        return try pipeline.get().generate(DiTGenerationOptions(classLabel: classLabel, steps: steps, guidance: guidance,
                                                                noise: try noise ?? ref.tensor("noise"), scheduler: scheduler))
    }

    @Test(arguments: [("ddim", "DDIMScheduler", 1.0), ("ddim", "DDIMScheduler", 4.0),
                      ("dpm", "DPMSolverMultistepScheduler", 1.0), ("dpm", "DPMSolverMultistepScheduler", 4.0)])
    func matchesDiffusers(run: String, scheduler: String, guidance: Double) throws {
        let ref = try Self.reference.get()
        let key = "\(run)_g\(Int(guidance))"
        let result = try Self.run(scheduler, guidance: guidance)
        #expect(result.timesteps.map { Int($0) } == (try ref.integers(key + "_timesteps").map { Int($0) }))
        let expected = try ref.tensor(key + "_latents")
        let scale = expected.values.map(abs).max()!
        let err = zip(result.latents.values, expected.values).map { abs($0 - $1) }.max()! / scale
        #expect(result.latents.count == expected.count)
        #expect(err < 1e-4, "\(key): latents relative error \(err)")
        let pixels = try ref.integers(key + "_image").map { Int($0) }
        let diff = zip(result.image.pixels, pixels).map { abs(Int($0) - $1) }.max()!
        #expect(result.image.width == 16 && result.image.pixels.count == pixels.count)
        #expect(diff <= 1, "\(key): image differs by \(diff)/255")
        #expect(result.stepSeconds.count == 10 && result.transformerFLOPsPerStep > 0)
    }

    @Test func badInputIsAClearError() throws {
        func message(_ body: () throws -> Void) -> String { do { try body(); return "" } catch { return "\(error)" } }
        #expect(message { _ = try Self.run(nil, guidance: 4, classLabel: 1000) }.contains("out of range"))
        #expect(message { _ = try Self.run(nil, guidance: 4, classLabel: -1) }.contains("out of range"))
        #expect(message { _ = try Self.run(nil, guidance: -0.5) }.contains("guidance"))
        #expect(message { _ = try Self.run(nil, guidance: 4, noise: Tensor(zeros: [1, 4, 4, 4])) }.contains("shape"))
        #expect(message { _ = try Self.run("PNDMScheduler", guidance: 4) }.contains("unknown scheduler"))
        #expect(message { _ = try Self.run(nil, guidance: 4, steps: 0) }.contains("inference steps"))
        #expect(message { _ = try DiTPipeline(folder: "/nonexistent/dit") }.contains("no such folder"))
    }

    /// A copy of the fixture with `scheduler_config.json` replaced.
    func pipelineWithScheduler(_ json: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dit-sched-\(UUID().uuidString)")
        try FileManager.default.copyItem(atPath: Self.folder, toPath: dir.path)
        try Data(json.utf8).write(to: dir.appendingPathComponent("scheduler/scheduler_config.json"))
        return dir.path
    }

    @Test func schedulerConfigErrorsNameTheField() throws {
        func message(_ json: String) throws -> String {
            let dir = try pipelineWithScheduler(json)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            do { _ = try DiTPipeline(folder: dir); return "" } catch { return "\(error)" }
        }
        #expect(try message(#"{"_class_name": "LMSDiscreteScheduler"}"#).contains("unknown scheduler 'LMSDiscreteScheduler'"))
        #expect(try message(#"{"_class_name": "DDIMScheduler", "beta_schedule": "sigmoid"}"#).contains("beta_schedule"))
        #expect(try message(#"{"_class_name": "DDIMScheduler", "prediction_type": "flow"}"#).contains("prediction_type"))
        #expect(try message(#"{"_class_name": "DDIMScheduler", "timestep_spacing": "karras"}"#).contains("timestep_spacing"))
        #expect(try message(#"{"_class_name": "DPMSolverMultistepScheduler", "solver_order": 3}"#).contains("solver_order"))
        #expect(try message(#"{"beta_start": 0.0001}"#).contains("_class_name"))
    }

    @Test func otherSchedulersRunAndSeedsAreReproducible() throws {
        let p = try Self.pipeline.get()
        for name in ["DDPMScheduler", "EulerDiscreteScheduler"] {
            let a = try p.generate(DiTGenerationOptions(classLabel: 1, steps: 4, guidance: 2, seed: 5, scheduler: name))
            let b = try p.generate(DiTGenerationOptions(classLabel: 1, steps: 4, guidance: 2, seed: 5, scheduler: name))
            let c = try p.generate(DiTGenerationOptions(classLabel: 1, steps: 4, guidance: 2, seed: 6, scheduler: name))
            #expect(a.latents.values == b.latents.values, "\(name): same seed, same latents")
            #expect(a.latents.values != c.latents.values, "\(name): another seed, other latents")
            #expect(a.latents.values.allSatisfy { $0.isFinite })
        }
    }

    @Test func timestepGridsFollowDiffusers() throws {
        func grid(_ json: String, steps: Int) throws -> [Float] {
            let dir = try pipelineWithScheduler(json)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let file = try DiffusersConfigFile(path: dir + "/scheduler/scheduler_config.json")
            var s = try DiffusionSchedulers.make(config: file)
            try s.setTimesteps(steps)
            return s.timesteps
        }
        // Values printed by diffusers 0.42 for the same configs.
        #expect(try grid(#"{"_class_name": "DDIMScheduler", "steps_offset": 1}"#, steps: 4) == [751, 501, 251, 1])
        #expect(try grid(#"{"_class_name": "DDIMScheduler", "timestep_spacing": "trailing"}"#, steps: 3) == [999, 666, 332])
        #expect(try grid(#"{"_class_name": "DDIMScheduler", "timestep_spacing": "linspace"}"#, steps: 4) == [999, 666, 333, 0])
        #expect(try grid(#"{"_class_name": "DPMSolverMultistepScheduler"}"#, steps: 4) == [999, 749, 500, 250])
        #expect(try grid(#"{"_class_name": "EulerDiscreteScheduler"}"#, steps: 3) == [999, 499.5, 0])
    }
}
