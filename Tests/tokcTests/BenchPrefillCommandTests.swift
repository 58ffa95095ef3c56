import ArgumentParser
import Testing
@testable import tokc

@Suite struct BenchPrefillCommandTests {
    @Test func defaultsAndGivenValues() throws {
        let d = try BenchPrefillCommand.parse([])
        #expect(d.repeats == 3 && d.threads >= 1 && !d.profile && !d.pytorch)
        let c = try BenchPrefillCommand.parse(["--repeats", "5", "--threads", "1", "--profile"])
        #expect(c.repeats == 5 && c.threads == 1 && c.profile && !c.pytorch)
    }

    @Test(arguments: [["--repeats", "0"], ["--threads", "0"], ["--threads", "-1"]])
    func nonPositiveCountsAreRejected(_ bad: [String]) {
        #expect(throws: (any Error).self) { try BenchPrefillCommand.parse(bad) }
    }
}
