import ArgumentParser
import Models
import Testing
@testable import tokc

/// `tokc generate`: option checks before any folder is read, the parsed values, and the caching
/// schedule it builds from the same options as `tokc schedule`.
@Suite struct GenerateCommandTests {
    @Test func goodInvocationParsesAndPasses() throws {
        let c = try GenerateCommand.parse(["--model", "dit", "--class", "3", "--steps", "10", "--guidance", "0", "--seed", "7",
                                           "--scheduler", "DDIMScheduler", "--method", "toca", "--interval", "3", "--ratio", "0.1",
                                           "--param", "a=b", "--threads", "1", "--out", "o.png", "--json"])
        try c.checkOptions()
        #expect(c.model == "dit" && c.classLabel == 3 && c.promptEmbeds == nil && c.steps == 10 && c.guidance == 0 && c.seed == 7)
        #expect(c.scheduler == "DDIMScheduler" && c.method == "toca" && c.interval == 3 && c.ratio == 0.1 && c.param == ["a=b"])
        #expect(c.threads == 1 && c.out == "o.png" && c.json)
        try GenerateCommand.parse(["--model", "pixart", "--prompt-embeds", "e.safetensors"]).checkOptions()
        try GenerateCommand.parse(["--class", "0"]).checkOptions()
    }

    @Test(arguments: [
        ([], "give exactly one of --class N (DiT) and --prompt-embeds FILE"),
        (["--class", "1", "--prompt-embeds", "e.safetensors"], "give exactly one of"),
        (["--class", "1", "--guidance=-1"], "--guidance must be ≥ 0, got -1.0"),
        (["--class", "1", "--guidance", "nan"], "--guidance must be ≥ 0"),
        (["--class", "1", "--guidance", "inf"], "--guidance must be ≥ 0"),
        (["--class", "1", "--steps", "0"], "--steps must be ≥ 1, got 0"),
        (["--class", "1", "--interval", "2"], "--interval, --ratio and --param need --method"),
        (["--class", "1", "--param", "ratio=0.5"], "--interval, --ratio and --param need --method"),
    ])
    func badOptionsAreRejected(_ arguments: [String], _ expected: String) throws {
        let c = try GenerateCommand.parse(arguments)
        expectRejected(arguments, expected, as: ModelError.self, message: { $0.message }) { try c.checkOptions() }
    }

    /// The caching schedule is the one `tokc schedule` prints for the same settings.
    @Test func cachingMatchesTheScheduleCommand() throws {
        let caching = try GenerateCommand.caching(method: "fora", steps: 10, layers: 4, interval: 2, ratio: nil, family: nil, tokens: 16, params: [])
        let printed = try ScheduleCommand.foraSchedule(try ScheduleOptions(steps: 10, interval: 2, layers: 4, ratio: nil, scheduler: nil,
                                                                           model: nil, tokens: nil, params: []))
        #expect(caching.schedule == printed.schedule)
        #expect(caching.method == "fora")
    }

    @Test func cachingRejectsWhatTheModelCannotRun() {
        // T-GATE freezes cross-attention: DiT has none.
        #expect(throws: ModelError.self) {
            try GenerateCommand.caching(method: "tgate", steps: 25, layers: 4, interval: nil, ratio: nil, family: nil, tokens: 16, params: [])
        }
        #expect(throws: ModelError.self) {
            try GenerateCommand.caching(method: "nope", steps: 10, layers: 4, interval: nil, ratio: nil, family: nil, tokens: 16, params: [])
        }
        // FORA takes no ratio.
        #expect(throws: (any Error).self) {
            try GenerateCommand.caching(method: "fora", steps: 10, layers: 4, interval: 2, ratio: 0.5, family: nil, tokens: 16, params: [])
        }
    }
}
