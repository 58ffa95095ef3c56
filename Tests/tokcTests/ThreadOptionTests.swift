import Evaluation
import Tensors
import Testing
@testable import tokc

@Suite(.serialized) struct ThreadOptionTests {
    @Test func nonPositiveIsRejected() {
        #expect(throws: BenchError("--threads must be positive")) { try applyThreads(0) }
        #expect(throws: BenchError.self) { try applyThreads(-3) }
    }

    @Test func givenCountSetsBothPools() throws {
        let saved = (BLAS.threads, Parallel.threadCount)
        defer { BLAS.threads = saved.0; Parallel.threadCount = saved.1 }
        try applyThreads(1)
        #expect(Parallel.threadCount == 1)
        #if !canImport(Accelerate)
        #expect(BLAS.threads == 1)
        #endif
        // nil leaves both as they are.
        Parallel.threadCount = 3
        try applyThreads(nil)
        #expect(Parallel.threadCount == 3)
    }
}
