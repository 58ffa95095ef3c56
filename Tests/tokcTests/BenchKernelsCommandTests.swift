import ArgumentParser
import Testing
@testable import tokc

@Suite struct BenchKernelsCommandTests {
    @Test func defaultsAndGivenValues() throws {
        let d = try BenchKernelsCommand.parse([])
        #expect(d.repeats == 5 && d.threads >= 1 && !d.numpy)
        #expect(d.attentionTokens == [576, 2880])
        let c = try BenchKernelsCommand.parse(["--repeats", "2", "--threads", "1", "--attention-tokens", "64", "128", "--numpy"])
        #expect(c.repeats == 2 && c.threads == 1 && c.numpy)
        #expect(c.attentionTokens == [64, 128])
    }

    @Test(arguments: [["--repeats", "0"], ["--threads", "0"]])
    func nonPositiveCountsAreRejected(_ bad: [String]) {
        #expect(throws: (any Error).self) { try BenchKernelsCommand.parse(bad) }
    }

    /// A sequence length below 1 used to pass to the attention benchmark (after every sgemm had been
    /// timed), where a negative one traps allocating its tensors.
    @Test(arguments: [["--attention-tokens", "0"], ["--attention-tokens=-1"], ["--attention-tokens", "576", "--attention-tokens=-4"]])
    func nonPositiveSequenceLengthsAreRejected(_ bad: [String]) {
        do {
            _ = try BenchKernelsCommand.parse(bad)
            Issue.record("\(bad) parsed")
        } catch {
            #expect(BenchKernelsCommand.message(for: error).contains("--attention-tokens must be positive"))
        }
    }
}
