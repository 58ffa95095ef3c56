import Evaluation
import Tensors

/// `--threads N` of the commands that run models: one setting for BLAS and for the package's own
/// parallel loops, so that a measurement states one thread count.
func applyThreads(_ threads: Int?) throws {
    guard let t = threads else { return }
    guard t >= 1 else { throw BenchError("--threads must be positive") }
    BLAS.threads = t
    Parallel.threadCount = t
}
