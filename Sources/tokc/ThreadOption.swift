import Evaluation
import Tensors

/// `--threads N` of the commands that run models: one setting for BLAS and for the package's own
/// parallel loops, so that a measurement states one thread count.
func applyThreads(_ threads: Int?) throws {
    guard let t = try checkedThreads(threads) else { return }
    BLAS.threads = t
    Parallel.threadCount = t
}

/// The thread count `--threads` asks for (nil: leave the pools as they are), refused when not positive.
/// Separate from `applyThreads` so that it can be tested without changing the process-wide pools, which
/// tests running beside it read.
func checkedThreads(_ threads: Int?) throws -> Int? {
    guard let t = threads else { return nil }
    guard t >= 1 else { throw BenchError("--threads must be positive") }
    return t
}
