import ArgumentParser
import Testing
import TokenCompression
@testable import tokc

/// `tokc schedule`: the validation users hit, and the options → parameters mapping of the builders
/// (the same builders `tokc flops` and `tokc generate` use).
@Suite struct ScheduleCommandTests {
    static func options(steps: Int? = nil, interval: Int? = nil, layers: Int? = nil, ratio: Double? = nil, scheduler: String? = nil,
                        model: String? = nil, tokens: Int? = nil, params: [String] = []) throws -> ScheduleOptions {
        try ScheduleOptions(steps: steps, interval: interval, layers: layers, ratio: ratio, scheduler: scheduler, model: model,
                            tokens: tokens, params: params)
    }

    @Test func parsesTheGivenValues() throws {
        let c = try ScheduleCommand.parse(["--method", "TOCA", "--steps", "50", "--interval", "3", "--layers", "4", "--ratio", "0.1",
                                           "--scheduler", "constant", "--model", "DiT", "--tokens", "16", "--param", "a=1",
                                           "--param", "b=2", "--max-layers", "2"])
        #expect(c.method == "TOCA" && c.steps == 50 && c.interval == 3 && c.layers == 4 && c.ratio == 0.1)
        #expect(c.scheduler == "constant" && c.model == "DiT" && c.tokens == 16 && c.maxLayers == 2)
        #expect(c.param == ["a=1", "b=2"])
    }

    @Test func everyBuilderIsAcceptedByName() throws {
        #expect(ScheduleCommand.supported == ["delta_dit", "duca", "fora", "pab", "taylorseer", "teacache", "tgate", "toca"])
        for name in ScheduleCommand.supported { _ = try ScheduleCommand.parse(["--method", name]) }
    }

    @Test(arguments: [
        (["--method", "nope"], "unknown caching method 'nope'"),
        (["--method", "fora", "--steps", "0"], "--steps must be ≥ 1, got 0"),
        (["--method", "fora", "--interval", "0"], "--interval must be ≥ 1, got 0"),
        (["--method", "fora", "--layers", "0"], "--layers must be ≥ 1, got 0"),
        (["--method", "fora", "--max-layers", "0"], "--max-layers must be ≥ 1"),
    ])
    func badOptionsAreRejected(_ arguments: [String], _ message: String) {
        do {
            _ = try ScheduleCommand.parse(arguments)
            Issue.record("\(arguments) parsed")
        } catch {
            #expect(ScheduleCommand.message(for: error).contains(message), "\(ScheduleCommand.message(for: error))")
        }
    }

    @Test func foraMapsStepsIntervalAndLayers() throws {
        let built = try ScheduleCommand.foraSchedule(try Self.options(steps: 10, interval: 3, layers: 2))
        #expect(built.settings == "S=10, N=3, 2 layers")
        #expect(built.schedule == (try FORA.schedule(FORA.Parameters(numSteps: 10, interval: 3, numLayers: 2))))
        #expect(built.schedule.actions.count == 10 && built.schedule.actions.allSatisfy { $0.count == 2 })
        // Paper defaults when nothing is given: DDPM-250, N = 3, 28 blocks.
        #expect(try ScheduleCommand.foraSchedule(try Self.options()).settings == "S=250, N=3, 28 layers")
    }

    @Test func tocaDefaultsFollowTheStepsAndFamily() throws {
        #expect(try ScheduleCommand.tocaParameters(try Self.options()) == ToCa.Parameters())
        // --steps 50 alone selects the DDIM-50 command.
        #expect(try ScheduleCommand.tocaParameters(try Self.options(steps: 50)) == ToCa.Parameters.ditDDIM50)
        #expect(try ScheduleCommand.tocaParameters(try Self.options(model: "pixart")) == ToCa.Parameters.pixart)
        var expected = ToCa.Parameters.ditDDIM50
        expected.freshThreshold = 5
        expected.freshRatio = 0.2
        expected.numLayers = 4
        expected.numTokens = 16
        #expect(try ScheduleCommand.tocaParameters(try Self.options(steps: 50, interval: 5, layers: 4, ratio: 0.2, tokens: 16)) == expected)
        #expect(throws: ValidationError.self) { try ScheduleCommand.tocaParameters(try Self.options(model: "FLUX")) }
    }

    @Test func ducaFamilies() throws {
        #expect(try ScheduleCommand.ducaParameters(try Self.options()) == DuCa.Parameters())
        #expect(try ScheduleCommand.ducaParameters(try Self.options(model: "PixArt")) == DuCa.Parameters.pixart)
        // OpenSora has per-module intervals: a schedule, but no DiT/PixArt parameters.
        #expect(throws: ValidationError.self) { try ScheduleCommand.ducaParameters(try Self.options(model: "OpenSora")) }
        let openSora = try ScheduleCommand.ducaSchedule(try Self.options(model: "OpenSora", params: ["intervals=2,2,4,2"]))
        #expect(openSora.settings.contains("intervals spatial/temporal/cross/mlp 2/2/4/2"))
        #expect(throws: ValidationError.self) { try ScheduleCommand.ducaSchedule(try Self.options(model: "Latte")) }
    }

    @Test func tgateParamsMapToItsParameters() throws {
        let p = try ScheduleCommand.tgateParameters(try Self.options(params: ["gate=10", "sp=2", "fi=3", "warmup=1"]))
        #expect(p == (try TGate.Parameters(gateStep: 10, semanticsInterval: 2, fidelityInterval: 3, warmUp: 1)))
        #expect(try ScheduleCommand.tgateParameters(try Self.options()) == TGate.Parameters())
        #expect(throws: ValidationError.self) { try ScheduleCommand.tgateParameters(try Self.options(params: ["gate=ten"])) }
    }

    @Test func pabParamsMapToItsParameters() throws {
        let off = try ScheduleCommand.pabParameters(try Self.options(params: ["spatial=100,800,0", "mlp=off"]), temporal: true)
        #expect(off.spatial == nil)
        #expect(!off.mlpBroadcast)
        let on = try ScheduleCommand.pabParameters(try Self.options(params: ["cross=100,900,5"]), temporal: false)
        #expect(on.cross == PAB.Broadcast(lower: 100, upper: 900, range: 5))
        #expect(on.spatial == (try PAB.Parameters.openSora()).spatial)
        for bad in ["spatial=1,2", "mlp=a,b", "reuse-gate=sometimes", "mlp-skip=x"] {
            #expect(throws: ValidationError.self, "\(bad)") { try ScheduleCommand.pabParameters(try Self.options(params: [bad]), temporal: true) }
        }
        #expect(throws: ValidationError.self) { try ScheduleCommand.pabSchedule(try Self.options(model: "FLUX")) }
    }

    @Test func teaCacheNeedsDistancesMatchingTheSteps() throws {
        let built = try ScheduleCommand.teaCacheSchedule(try Self.options(model: "DiT", params: ["distances=0,0.01,0.01,0.5"]))
        #expect(built.schedule.actions.count == 4)
        #expect(built.settings.hasPrefix("dit, S=4, threshold \(TeaCache.uncalibratedThreshold)"))
        #expect(throws: ValidationError.self) { try ScheduleCommand.teaCacheSchedule(try Self.options()) }
        #expect(throws: ValidationError.self) {
            try ScheduleCommand.teaCacheSchedule(try Self.options(steps: 5, params: ["distances=0,0.1,0.1"]))
        }
        #expect(throws: ValidationError.self) { try ScheduleCommand.teaCacheSchedule(try Self.options(params: ["distances=0,x"])) }
        #expect(throws: ValidationError.self) {
            try ScheduleCommand.teaCacheSchedule(try Self.options(model: "SD3", params: ["distances=0,0.1"]))
        }
    }

    @Test func unusedOptionsAreReported() throws {
        let o = try Self.options(steps: 10, interval: 2, ratio: 0.5, params: ["order=2"])
        _ = try ScheduleCommand.foraSchedule(o)
        expectRejected(["fora", "--ratio", "--param order"], "fora does not use --param order, --ratio", as: ValidationError.self,
                       message: { $0.message }) { try o.rejectUnused(method: "fora") }
        let used = try Self.options(steps: 10, interval: 2, layers: 3)
        _ = try ScheduleCommand.foraSchedule(used)
        try used.rejectUnused(method: "fora")
    }

    @Test func paramValuesAreTyped() throws {
        let o = try Self.options(params: ["n=3", "x=0.5", "list=1, 2,3", "bad=1.5", "word=hi"])
        #expect(try o.int("n") == 3)
        #expect(try o.double("x") == 0.5)
        #expect(try o.ints("list") == [1, 2, 3])
        #expect(try o.int("missing") == nil)
        #expect(o.string("word") == "hi")
        #expect(throws: ValidationError.self) { try o.int("bad") }
        #expect(throws: ValidationError.self) { try o.ints("word") }
        #expect(throws: (any Error).self) { try Self.options(params: ["no-equals-sign"]) }
    }
}
