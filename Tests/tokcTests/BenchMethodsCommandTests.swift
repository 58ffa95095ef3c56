import ArgumentParser
import Testing
@testable import tokc

/// `tokc bench-methods`: its checks run in `run` before any signal is built, so a bad value
/// returns at once.
@Suite struct BenchMethodsCommandTests {
    @Test func defaultsAndGivenValues() throws {
        let d = try BenchMethodsCommand.parse([])
        #expect(d.methods == nil && d.tokens == "576,2880" && d.repeats == 5 && d.warmups == 2 && d.width == 4096 && d.heads == 32)
        let c = try BenchMethodsCommand.parse(["--methods", "fastv,dart", "--tokens", "64", "--repeats", "1", "--warmups", "0",
                                               "--width", "256", "--heads", "4", "--threads", "1"])
        #expect(c.methods == "fastv,dart" && c.tokens == "64" && c.repeats == 1 && c.warmups == 0 && c.width == 256 && c.heads == 4 && c.threads == 1)
    }

    @Test(arguments: [
        (["--repeats", "0"], "--repeats and --threads must be positive"),
        (["--warmups=-1"], "--warmups ≥ 0"),
        (["--threads", "0"], "--repeats and --threads must be positive"),
        (["--tokens", "576,0"], "--tokens must be positive integers separated by commas, got '0'"),
        (["--tokens", "many"], "--tokens must be positive integers"),
        (["--methods", "fastv,nope"], "unknown image-VLM method 'nope'"),
        (["--methods", ","], "nothing to run"),
    ])
    func badOptionsStopBeforeAnyWork(_ arguments: [String], _ expected: String) throws {
        let c = try BenchMethodsCommand.parse(arguments)
        expectRejected(arguments, expected, as: ValidationError.self, message: { $0.message }) { try c.run() }
    }
}
