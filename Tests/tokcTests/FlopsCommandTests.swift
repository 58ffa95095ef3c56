import ArgumentParser
import Evaluation
import Models
import Testing
import TokenCompression
@testable import tokc

/// `tokc flops`: option validation, and the options → request mapping (VLM and diffusion presets).
@Suite struct FlopsCommandTests {
    static func message(_ arguments: [String]) -> String? {
        do {
            _ = try FlopsCommand.parse(arguments)
            return nil
        } catch {
            return FlopsCommand.message(for: error)
        }
    }

    @Test(arguments: [
        ([], "give exactly one of --config and --preset"),
        (["--config", "c.json", "--preset", "llava-1.5-7b"], "give exactly one of --config and --preset"),
        (["--preset", "llava-1.5-7b", "--convention", "toca-code"], "--convention must be design or macs"),
        (["--preset", "llava-1.5-7b", "--ffn-matrices", "4"], "--ffn-matrices must be 2 or 3"),
        (["--preset", "llava-1.5-7b", "--keep", "64"], "--keep needs --method"),
        (["--preset", "llava-1.5-7b", "--method", "fastv", "--schedule", "576x32"], "give --method or --schedule, not both"),
        (["--preset", "llava-onevision-7b", "--frames", "8", "--visual-tokens", "100"], "give --frames or --visual-tokens, not both"),
    ])
    func badCombinationsAreRejectedAtParse(_ arguments: [String], _ expected: String) {
        let m = Self.message(arguments)
        #expect(m?.contains(expected) == true, "\(arguments): \(m ?? "parsed")")
    }

    // MARK: VLM presets

    @Test func fastVFollowsItsSchedule() throws {
        let r = try FlopsCommand.parse(["--preset", "llava-1.5-7b", "--method", "fastv"]).request()
        #expect(r.visualTokens == 576 && r.systemTokens == 35 && r.textTokens == 30 && r.decodeTokens == 0)
        #expect(r.convention == .design && r.bytesPerElement == 2 && r.videoFrames == nil)
        // K = 2, R = 50%: all 576 visual tokens in layers 0 and 1, 288 from layer 2 on.
        #expect(r.plan.llmVisual.count == 32)
        #expect(r.plan.llmVisual.prefix(2).allSatisfy { $0 == 576 })
        #expect(r.plan.llmVisual.dropFirst(2).allSatisfy { $0 == 288 })
        // The same plan written out as --schedule.
        let custom = try FlopsCommand.parse(["--preset", "llava-1.5-7b", "--schedule", "576x2,288x30"]).request()
        #expect(custom.plan.method == "custom" && custom.plan.llmVisual == r.plan.llmVisual)
    }

    @Test func conventionAndCountsMapToTheRequest() throws {
        let r = try FlopsCommand.parse(["--preset", "llava-1.5-7b", "--convention", "macs", "--ffn-matrices", "2", "--text-tokens", "12",
                                        "--system-tokens", "5", "--decode-tokens", "7", "--bytes-per-element", "1", "--visual-tokens", "100"]).request()
        #expect(r.convention == FlopsConvention.fastVPaper)
        #expect(r.textTokens == 12 && r.systemTokens == 5 && r.decodeTokens == 7 && r.bytesPerElement == 1)
        #expect(r.visualTokens == 100 && r.plan.llmVisual == Array(repeating: 100, count: 32))
    }

    @Test func framesGiveAVideosTokens() throws {
        let r = try FlopsCommand.parse(["--preset", "llava-onevision-7b", "--frames", "32"]).request()
        #expect(r.videoFrames == 32)
        #expect(r.visualTokens == 32 * 196 + 1)
        // A video on a model without a video path is an error, not a silent image count.
        #expect(throws: (any Error).self) { try FlopsCommand.parse(["--preset", "llava-1.5-7b", "--frames", "8"]).request() }
    }

    @Test func unknownPresetAndMethodAreErrors() {
        #expect(throws: (any Error).self) { try FlopsCommand.parse(["--preset", "no-such-model"]).request() }
        #expect(throws: (any Error).self) { try FlopsCommand.parse(["--preset", "llava-1.5-7b", "--method", "nope"]).request() }
    }

    // MARK: Diffusion presets

    static func diffusion(_ arguments: [String]) throws -> DiffusionFlopsRequest {
        let c = try FlopsCommand.parse(arguments)
        let preset = try #require(c.preset.flatMap(DiffusionPresets.named))
        return try c.diffusionRequest(preset)
    }

    @Test func diffusionDefaultsAreThePresets() throws {
        let r = try Self.diffusion(["--preset", "pixart-alpha-256"])
        #expect(r.model == "pixart-alpha-256" && r.steps == 20 && r.guidance == 4.5 && r.method == nil && r.fractions == nil)
        #expect(r.shape.captionTokens == 120 && r.shape.convention == .design)
        let dit = try Self.diffusion(["--preset", "dit-xl-2-256", "--steps", "10", "--guidance", "1"])
        #expect(dit.steps == 10 && dit.guidance == 1 && dit.batch == 1 && dit.shape.family == .dit)
    }

    @Test func captionTokensAndConventionMapToTheShape() throws {
        let r = try Self.diffusion(["--preset", "pixart-alpha-256", "--caption-tokens", "32", "--convention", "toca-code"])
        #expect(r.shape.captionTokens == 32 && r.shape.convention == .tocaCode)
        #expect(try Self.diffusion(["--preset", "pixart-alpha-512", "--caption-tokens", "1"]).shape.captionTokens == 1)
    }

    @Test(arguments: ["0", "121", "-1"])
    func captionTokensOutsideOneTo120AreRejected(_ l: String) {
        #expect(throws: FlopsError.self) { try Self.diffusion(["--preset", "pixart-alpha-256", "--caption-tokens=\(l)"]) }
    }

    @Test(arguments: [
        ["--preset", "dit-xl-2-256", "--caption-tokens", "16"],   // DiT has no captions
        ["--preset", "pixart-alpha-256", "--steps", "0"],
        ["--preset", "pixart-alpha-256", "--convention", "macs"],
        ["--preset", "pixart-alpha-256", "--frames", "4"],
        ["--preset", "pixart-alpha-256", "--keep", "4", "--method", "fora"],
        ["--preset", "pixart-alpha-256", "--decode-tokens", "4"],
        ["--preset", "pixart-alpha-256", "--interval", "2"],      // needs --method
        ["--preset", "pixart-alpha-256", "--method", "nope"],
        ["--preset", "pixart-alpha-256", "--method", "fora", "--ratio", "0.5"],   // fora has no ratio
        ["--preset", "pixart-alpha-256", "--method", "fora", "--param", "bogus=1"],
    ])
    func badDiffusionOptionsAreRejected(_ arguments: [String]) {
        #expect(throws: (any Error).self, "\(arguments)") { try Self.diffusion(arguments) }
    }

    @Test func foraComputesTheCallsItsScheduleComputes() throws {
        let r = try Self.diffusion(["--preset", "pixart-alpha-256", "--steps", "20", "--method", "fora", "--interval", "2"])
        #expect(r.method == "fora" && r.steps == 20)
        let fractions = try #require(r.fractions)
        #expect(fractions.count == 20)
        #expect(fractions.allSatisfy { $0.count == 28 && $0.allSatisfy { $0.count == r.shape.moduleNames.count } })
        // Whole calls compute or reuse, as FORA's own schedule says (its attn/mlp action applied to
        // all three PixArt modules): calls 0 and 1 compute (the loop counts down from S − 1 = 19,
        // computing at odd indices, and the first call always computes), then every other one.
        let fora = try FORA.schedule(FORA.Parameters(numSteps: 20, interval: 2, numLayers: 28))
        for (call, layers) in fractions.enumerated() {
            let expected: Double = fora.actions[call][0][0] == .compute ? 1 : 0
            #expect(layers.joined().allSatisfy { $0 == expected }, "call \(call)")
        }
        #expect(fractions.filter { $0.joined().allSatisfy { $0 == 1 } }.count == 11)
    }

    @Test func tocaHasPartialCallsOnTheFamilysSchedule() throws {
        let r = try Self.diffusion(["--preset", "pixart-alpha-256", "--method", "toca", "--interval", "3", "--ratio", "0.1"])
        #expect(r.method == "toca" && r.settings.hasPrefix("PixArt, S=20, N0=3, r0=0.1"))
        let values = try #require(r.fractions).joined().joined()
        #expect(values.contains { $0 > 0 && $0 < 1 }, "no partial module in a ToCa run")
    }
}
