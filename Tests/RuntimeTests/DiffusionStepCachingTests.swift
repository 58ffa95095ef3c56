import Foundation
import Testing
import ModelIO
import Models
import Tensors
import TokenCompression
@testable import Runtime

/// TeaCache and Δ-DiT inside the DiT and PixArt-α samplers (`DiTStepCache`: whole blocks skipped),
/// and TeaCache's calibration on the tiny fixture pipelines.
@Suite struct DiffusionStepCachingTests {
    static func dit(_ policy: DiTStepCache.Policy?, guidance: Double = 4, steps: Int = 10) throws -> DiffusionGenerationResult {
        let ref = try DiffusionPipelineTests.reference.get()
        return try DiffusionPipelineTests.pipeline.get().generate(
            DiTGenerationOptions(classLabel: 3, steps: steps, guidance: guidance, noise: try ref.tensor("noise"), stepCaching: policy))
    }

    static func pixArt(_ policy: DiTStepCache.Policy?) throws -> DiffusionGenerationResult {
        try DiffusionPixArtPipelineTests.pipeline.get().generate(PixArtGenerationOptions(
            captions: try DiffusionPixArtPipelineTests.captions.get(), steps: 10, guidance: 4.5,
            noise: try DiffusionPixArtPipelineTests.noise.get(), stepCaching: policy))
    }

    static func teaCache(_ threshold: Double, _ coefficients: [Double] = TeaCache.identityCoefficients) throws -> DiTStepCache.Policy {
        .teaCache(try TeaCache.Parameters(relL1Threshold: threshold, coefficients: coefficients))
    }

    /// What `tokc schedule --method teacache --param distances=...` computes from the logged series.
    static func scheduleFromLog(_ report: DiffusionStepCacheReport, layers: Int) throws -> CacheSchedule {
        guard case .teaCache(let p) = report.policy else { throw ModelError("not TeaCache") }
        let calls = report.calls.count
        return try TeaCache.schedule(distances: report.inputChanges, forced: try TeaCache.Forcing.counter(calls: calls, steps: calls),
                                     layers: layers, parameters: p)
    }

    /// The indicator is the tensor diffusers' block 0 attention reads (tools/fixtures/make_teacache_fixtures.py):
    /// its relative L1 change between two calls, measured through the step cache, equals diffusers'.
    @Test func indicatorChangeMatchesDiffusers() throws {
        let dit = try DiffusionPipelineTests.pipeline.get().transformer
        let pixArt = try DiffusionPixArtPipelineTests.pipeline.get().transformer
        let caption = try DiffusionPixArtPipelineTests.captions.get().positive
        for folder in [DiffusionPipelineTests.folder, DiffusionPixArtPipelineTests.folder] {
            let ref = try SafetensorsFile(path: folder + "/teacache.safetensors")
            let xs = [try ref.tensor("x0").reshaped([4, 8, 8]), try ref.tensor("x1").reshaped([4, 8, 8])]
            let ts = try ref.integers("t").map { Float($0) }
            let cache = try DiTStepCache(policy: .calibrate, calls: 2, layers: 2)
            for (x, t) in zip(xs, ts) {
                if folder == DiffusionPipelineTests.folder {
                    _ = try dit([x], timesteps: [t], classes: [3], stepCache: cache)
                } else {
                    _ = try pixArt([x], timesteps: [t], captions: [caption.embeddings], masks: [caption.mask], stepCache: cache)
                }
            }
            let expected = try ref.tensor("rel_l1").values[0]
            let measured = try #require(cache.log[1].inputChange)
            #expect(abs(measured - expected) <= 1e-5 * expected, "\(folder): \(measured) vs diffusers \(expected)")
        }
    }

    @Test func teaCacheAtThresholdZeroEqualsUncachedBitForBit() throws {
        for guidance in [1.0, 4.0] {
            let plain = try Self.dit(nil, guidance: guidance)
            let cached = try Self.dit(try Self.teaCache(0), guidance: guidance)
            #expect(cached.latents.values == plain.latents.values)
            #expect(cached.image == plain.image)
            #expect(cached.stepCache?.blocksRun.joined().allSatisfy { $0 } == true)
        }
        let plain = try Self.pixArt(nil), cached = try Self.pixArt(try Self.teaCache(0))
        #expect(cached.latents.values == plain.latents.values && cached.image == plain.image)
        #expect(cached.transformerFLOPsTotal == plain.transformerFLOPsTotal)
    }

    @Test(arguments: [1.5, 3.0])
    func teaCacheDecisionsEqualTheScheduleOfItsLoggedDistances(threshold: Double) throws {
        let plain = try Self.dit(nil)
        let run = try Self.dit(try Self.teaCache(threshold))
        let report = try #require(run.stepCache)
        #expect(report.schedule == (try Self.scheduleFromLog(report, layers: 2)))
        let decisions = report.calls.compactMap(\.teaCache)
        #expect(decisions.count == 10)
        #expect(decisions.first?.compute == true && decisions.last?.compute == true)
        let skipped = decisions.filter { !$0.compute }.count
        #expect(skipped > 0, "threshold \(threshold) skipped nothing: \(report.inputChanges)")
        // Skipped calls ran no block at all; their work is off the FLOPs total.
        for (d, ran) in zip(decisions, report.blocksRun) { #expect(ran == [d.compute, d.compute]) }
        #expect(run.transformerFLOPsTotal < plain.transformerFLOPsTotal * (1 - 0.8 * Double(skipped) / 10))
        #expect(run.latents.values != plain.latents.values && run.latents.values.allSatisfy { $0.isFinite })
        // The logged distances are the modulated input's: an uncached calibration run records the same
        // series up to the first skip (skips change the later inputs).
        let calibration = try Self.dit(.calibrate)
        let firstSkip = try #require(decisions.firstIndex { !$0.compute })
        #expect(Array(report.inputChanges.prefix(firstSkip + 1)) == Array(try #require(calibration.stepCache).inputChanges.prefix(firstSkip + 1)))
    }

    @Test func pixArtTeaCacheFollowsItsScheduleToo() throws {
        let run = try Self.pixArt(try Self.teaCache(2))
        let report = try #require(run.stepCache)
        #expect(report.schedule == (try Self.scheduleFromLog(report, layers: 2)))
        #expect(report.blocksRun.joined().contains(false))
        #expect(run.transformerFLOPsTotal < (try Self.pixArt(nil)).transformerFLOPsTotal)
    }

    @Test func skippedStackAddsTheStoredResidual() throws {
        // Two calls with the same input: δ = 0, so call 1 skips and returns h_in + (h_out − h_in) of call 0.
        let model = try DiffusionPipelineTests.pipeline.get().transformer
        let cache = try DiTStepCache(policy: try Self.teaCache(0.5), calls: 3, layers: 2)
        let x = try DiffusionSampling.loadTensor(path: DiffusionPipelineTests.folder + "/noise.safetensors", name: "latents").reshaped([4, 8, 8])
        let first = try model([x, x], timesteps: [500, 500], classes: [3, 1000], stepCache: cache)
        let second = try model([x, x], timesteps: [500, 500], classes: [3, 1000], stepCache: cache)
        #expect(cache.blocksRun == [[true, true], [false, false]])
        #expect(cache.log[1].teaCache?.relL1 == 0)
        for (a, b) in zip(first, second) {
            let err = zip(a.values, b.values).map { abs($0 - $1) }.max()!
            #expect(err < 1e-5 * a.values.map(abs).max()!, "reused stack differs by \(err)")
        }
        // A batch of another shape cannot be compared with the previous indicator: a clear error.
        #expect(throws: ModelError.self) { try model([x], timesteps: [100], classes: [3], stepCache: cache) }
        _ = try model([x, x], timesteps: [100, 100], classes: [3, 1000], stepCache: cache)
        #expect(throws: ModelError.self) { try model([x, x], timesteps: [0, 0], classes: [3, 1000], stepCache: cache) }  // a 4th call
    }

    @Test func deltaDiTAtIntervalOneEqualsUncachedBitForBit() throws {
        let every = DiTStepCache.Policy.deltaDiT(try DeltaDiT.Parameters(interval: 1))
        for guidance in [1.0, 4.0] {
            let plain = try Self.dit(nil, guidance: guidance), cached = try Self.dit(every, guidance: guidance)
            #expect(cached.latents.values == plain.latents.values && cached.image == plain.image)
            #expect(cached.transformerFLOPsTotal == plain.transformerFLOPsTotal)
        }
        let plain = try Self.pixArt(nil), cached = try Self.pixArt(every)
        #expect(cached.latents.values == plain.latents.values && cached.image == plain.image)
    }

    @Test(arguments: [(2, nil as Int?), (3, 4), (2, 0)])
    func deltaDiTDecisionsFollowItsRule(interval: Int, boundary: Int?) throws {
        let p = try DeltaDiT.Parameters(interval: interval, boundary: boundary)
        let expected = try DeltaDiT.schedule(calls: 10, layers: 2, parameters: p)
        let plain = try Self.dit(nil)
        for run in [try Self.dit(.deltaDiT(p)), try Self.pixArt(.deltaDiT(p))] {
            let report = try #require(run.stepCache)
            #expect(report.schedule == expected)
            #expect(run.latents.values.allSatisfy { $0.isFinite })
        }
        let dit = try Self.dit(.deltaDiT(p))
        let skipped = expected.actions.joined().filter { $0 == [.reuse] }.count
        #expect(skipped > 0)
        let perBlock = (plain.transformerFLOPsTotal - dit.transformerFLOPsTotal) / Double(skipped)
        #expect(perBlock > 0.3 * plain.transformerFLOPsPerStep / 2, "each skipped block saves about half a call of this 2-block model")
        #expect(dit.latents.values != plain.latents.values)
    }

    @Test func deltaCacheAddsTheGroupsDeviationToTheCurrentInput() throws {
        // Same input twice: call 1 (cached, rear block skipped) gives block 0's output + call 0's rear deviation.
        let model = try DiffusionPipelineTests.pipeline.get().transformer
        let p = try DeltaDiT.Parameters(interval: 2, boundary: 10, cachedBlocks: 1)
        let cache = try DiTStepCache(policy: .deltaDiT(p), calls: 10, layers: 2)
        let x = try DiffusionSampling.loadTensor(path: DiffusionPipelineTests.folder + "/noise.safetensors", name: "latents").reshaped([4, 8, 8])
        let first = try model([x], timesteps: [500], classes: [3], stepCache: cache)
        let second = try model([x], timesteps: [500], classes: [3], stepCache: cache)
        #expect(cache.blocksRun == [[true, true], [true, false]])
        let err = zip(first[0].values, second[0].values).map { abs($0 - $1) }.max()!
        #expect(err < 1e-5 * first[0].values.map(abs).max()!)
    }

    @Test func stepAndModuleCachingAreExclusive() throws {
        let fora = DiTCaching(method: "fora", schedule: try FORA.schedule(FORA.Parameters(numSteps: 10, interval: 2, numLayers: 2)))
        let ref = try DiffusionPipelineTests.reference.get()
        #expect(throws: ModelError.self) {
            try DiffusionPipelineTests.pipeline.get().generate(DiTGenerationOptions(
                classLabel: 3, steps: 10, noise: try ref.tensor("noise"), caching: fora, stepCaching: try Self.teaCache(1)))
        }
        #expect(throws: ModelError.self) { try DiTStepCache(policy: .deltaDiT(try DeltaDiT.Parameters()), calls: 10, layers: 1) }
    }

    @Test func calibrationRunsFitsAndRoundTrips() throws {
        let pipeline = try DiffusionPipelineTests.pipeline.get()
        let pairs = try TeaCacheCalibration.record(pipeline, classes: [1, 3], seeds: [0, 1], steps: 8, guidance: 4, scheduler: nil)
        #expect(pairs.count == 2 * 2 * 7)
        #expect(pairs.allSatisfy { $0.input > 0 && $0.output > 0 && $0.input.isFinite && $0.output.isFinite })
        let calibration = try TeaCacheCalibration(inputChanges: pairs.map { Double($0.input) }, outputChanges: pairs.map { Double($0.output) },
                                                  source: "dit-tiny")
        #expect(calibration.coefficients.count == 5)
        // The fit is least squares: no worse than the best constant.
        let mean = calibration.outputChanges.reduce(0, +) / Double(pairs.count)
        let constant = (calibration.outputChanges.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(pairs.count)).squareRoot()
        #expect(calibration.rmsError <= constant)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("teacache-calibration-\(getpid()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try calibration.write(to: path)
        let read = try TeaCacheCalibration(file: path)
        #expect(read == calibration)
        // The coefficients drive a run.
        let run = try Self.dit(try Self.teaCache(0.5, read.coefficients), steps: 8)
        #expect(run.stepCache?.calls.count == 8)
        // PixArt-α records its pairs the same way.
        let pixPairs = try TeaCacheCalibration.record(try DiffusionPixArtPipelineTests.pipeline.get(), captions: try DiffusionPixArtPipelineTests.captions.get(),
                                                      seeds: [0], steps: 6, guidance: 4.5, scheduler: nil)
        #expect(pixPairs.count == 5)
    }

    @Test func badCalibrationFilesAreClearErrors() throws {
        func message(_ text: String) -> String {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("bad-calibration-\(getpid()).json").path
            defer { try? FileManager.default.removeItem(atPath: path) }
            _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
            do { _ = try TeaCacheCalibration(file: path); return "" } catch { return "\(error)" }
        }
        #expect(message("{}").contains("coefficients"))
        #expect(message("not json").contains("not JSON"))
        #expect(message(#"{"coefficients": [1, "x"]}"#).contains("finite numbers"))
        #expect(message(#"{"coefficients": [1, 0], "input_rel_l1": [0.1], "output_rel_l1": []}"#).contains("input changes"))
        #expect(throws: ModelError.self) { try TeaCacheCalibration(file: "/nonexistent/calibration.json") }
    }
}
