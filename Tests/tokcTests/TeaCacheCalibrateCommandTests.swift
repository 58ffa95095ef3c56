import ArgumentParser
import Models
import Testing
@testable import tokc

/// `tokc teacache-calibrate`: every option check runs before a pipeline loads.
@Suite struct TeaCacheCalibrateCommandTests {
    @Test func goodInvocationsPass() throws {
        let c = try TeaCacheCalibrateCommand.parse(["--model", "p", "--class", "1,2, 3", "--seeds", "4,5", "--steps", "2", "--degree", "0"])
        try c.checkOptions()
        #expect(c.classes == "1,2, 3" && c.seeds == "4,5" && c.steps == 2 && c.degree == 0)
        let d = try TeaCacheCalibrateCommand.parse(["--model", "p", "--prompt-embeds", "e.safetensors"])
        try d.checkOptions()
        #expect(d.seeds == "0,1" && d.degree == 4 && d.steps == nil)
    }

    /// --degree used to be checked only by the fit, after every sampling run.
    @Test(arguments: [
        (["--class", "1", "--degree=-1"], "--degree must be ≥ 0, got -1"),
        ([], "give exactly one of --class"),
        (["--class", "1", "--prompt-embeds", "e.safetensors"], "give exactly one of --class"),
        (["--class", "1", "--steps", "1"], "--steps must be ≥ 2"),
        (["--class", "1,x"], "--class must be a comma-separated list, got '1,x'"),
        (["--class", "1", "--seeds=-1"], "--seeds must be a comma-separated list"),
        (["--class", "1", "--seeds", ""], "--seeds must be a comma-separated list"),
    ])
    func badOptionsAreRejected(_ arguments: [String], _ expected: String) throws {
        let c = try TeaCacheCalibrateCommand.parse(["--model", "p"] + arguments)
        expectRejected(arguments, expected, as: ModelError.self, message: { $0.message }) { try c.checkOptions() }
    }

    @Test func listParsesTrimmedItems() throws {
        #expect(try TeaCacheCalibrateCommand.list(" 1, 2 ,3", name: "--class") { Int($0) } == [1, 2, 3])
        #expect(throws: ModelError.self) { try TeaCacheCalibrateCommand.list("1,a", name: "--class") { Int($0) } }
    }
}
