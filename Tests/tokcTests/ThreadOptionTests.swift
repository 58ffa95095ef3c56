import Evaluation
import Testing
@testable import tokc

/// `--threads`. The tests never set the process-wide pools: other suites run beside them, and a thread count
/// changed under a parity test that compares floats exactly changes its sums.
@Suite struct ThreadOptionTests {
    @Test func nonPositiveIsRejected() {
        #expect(throws: BenchError("--threads must be positive")) { try applyThreads(0) }
        #expect(throws: BenchError.self) { try applyThreads(-3) }
        #expect(throws: BenchError.self) { try checkedThreads(0) }
    }

    @Test func givenCountIsTheOneApplied() throws {
        #expect(try checkedThreads(1) == 1)
        #expect(try checkedThreads(7) == 7)
        // nil leaves both pools as they are.
        #expect(try checkedThreads(nil) == nil)
    }
}
