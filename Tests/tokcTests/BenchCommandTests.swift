import ArgumentParser
import Evaluation
import Testing
@testable import tokc

/// `tokc bench`: the sweep options it hands to the driver, built from its flags alone.
@Suite struct BenchCommandTests {
    @Test func flagsMapToTheSweepOptions() throws {
        let c = try BenchCommand.parse(["--methods", "fastv, dart,,random", "--budgets", "0.5,64", "--batch", "8", "--limit", "20",
                                        "--max-new-tokens", "4", "--repeats", "3", "--warmup", "1", "--out", "o", "--shard", "1/4",
                                        "--seed", "9", "--param", "fastv.layer=3", "--param", "dart.pivots=2", "--threads", "2", "--frames", "6"])
        let o = try c.options(model: "m", task: "t.jsonl")
        #expect(o.model == "m" && o.task == "t.jsonl" && o.out == "o")
        #expect(o.methods == ["fastv", "dart", "random"])
        #expect(o.budgetsGiven)
        #expect(o.budgets.map(\.kind) == ["ratio", "count"] && o.budgets.map(\.value) == [0.5, 64])
        #expect(o.batchSize == 8 && o.limit == 20 && o.frames == 6 && o.threads == 2)
        #expect(o.settings.maxNewTokens == 4 && o.settings.repeats == 3 && o.settings.warmup == 1 && o.settings.seed == 9)
        #expect(o.settings.parameters == ["fastv": ["layer": "3"], "dart": ["pivots": "2"]])
        #expect(o.shard.index == 1 && o.shard.count == 4)
        #expect(o.toolkitVersion == ToolkitVersion.string)
    }

    @Test func defaultsAreTheSeedsSweep() throws {
        let o = try BenchCommand.parse([]).options(model: "m", task: "t.jsonl")
        #expect(o.methods == nil && !o.budgetsGiven && o.budgets == BenchBudget.defaults)
        #expect(o.settings.maxNewTokens == 8 && o.settings.repeats == 1 && o.settings.warmup == 0 && o.out == "bench-out")
        #expect(o.threads >= 1)
    }

    @Test(arguments: [["--budgets", "half"], ["--shard", "4/4"], ["--shard", "x"], ["--param", "layer=3"]])
    func badListsAreErrors(_ arguments: [String]) throws {
        let c = try BenchCommand.parse(arguments)
        #expect(throws: (any Error).self, "\(arguments)") { try c.options(model: "m", task: "t.jsonl") }
    }
}
