import Foundation
import Testing
import ModelIO
import Models
import Tensors
@testable import Runtime

/// Every supported scheduler against diffusers step by step, on config variants (spacings, prediction
/// types, beta schedules, solver options; DDPM with the noise diffusers drew): the timesteps, the scaled
/// model input and each next sample. References: tools/fixtures/make_dit_fixtures.py (schedulers.*).
@Suite struct DiffusionSchedulerTests {
    static let folder = runPath("Tests/Fixtures/models/dit-tiny")

    struct Variant {
        let name: String
        let config: JSONValue
        let steps: Int
    }

    static let variants: [Variant] = {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: folder + "/schedulers.json")),
              let list = (try? JSONValue.parse(data))?.arrayValue else { return [] }
        return list.compactMap { v in
            guard let name = v["name"]?.stringValue, let config = v["config"], let steps = v["steps"]?.intValue else { return nil }
            return Variant(name: name, config: config, steps: steps)
        }
    }()

    @Test func variantsAreListed() { #expect(Self.variants.count == 11) }

    @Test(arguments: variants.map(\.name))
    func stepsMatchDiffusers(name: String) throws {
        let variant = try #require(Self.variants.first { $0.name == name })
        let ref = try SafetensorsFile(path: Self.folder + "/schedulers.safetensors")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sched-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("scheduler_config.json").path
        try Data(variant.config.description.utf8).write(to: URL(fileURLWithPath: path))
        var scheduler = try DiffusionSchedulers.make(config: try DiffusersConfigFile(path: path))
        try scheduler.setTimesteps(variant.steps)
        #expect(scheduler.timesteps == (try ref.tensor(name + ".timesteps").values), "\(name): timesteps")

        func slice(_ t: Tensor, _ i: Int) throws -> Tensor {
            let n = t.count / t.shape[0]
            return try Tensor(shape: Array(t.shape.dropFirst()), values: Array(t.values[(i * n)..<((i + 1) * n)]))
        }
        let samples = try ref.tensor(name + ".samples"), inputs = try ref.tensor(name + ".inputs")
        let outputs = try ref.tensor(name + ".outputs"), noise = try ref.tensor(name + ".noise")
        var sample = try slice(samples, 0)
        for i in 0..<variant.steps {
            let input = scheduler.scaleModelInput(sample, index: i)
            let expectedInput = try slice(inputs, i)
            #expect(zip(input.values, expectedInput.values).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) }, "\(name): input \(i)")
            let z = try slice(noise, i)
            let next = try scheduler.step(try slice(outputs, i), index: i, sample: sample, noise: { z })
            let expected = try slice(samples, i + 1)
            let scale = max(expected.values.map(abs).max()!, 1)
            let err = zip(next.values, expected.values).map { abs($0 - $1) }.max()! / scale
            #expect(err < 1e-5, "\(name): step \(i) relative error \(err)")
            sample = expected  // each step from diffusers' own sample, so errors do not compound
        }
    }
}
