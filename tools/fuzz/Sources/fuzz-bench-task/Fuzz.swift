import Foundation
import FuzzSupport
import Evaluation

/// The bench task JSONL reader (VQA tasks need a question, classification tasks do not).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBenchTask(_ bytes: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let path = FuzzScratch.write(FuzzInput.data(bytes, size), "task.jsonl")
    _ = try? BenchTask.load(jsonl: path)
    _ = try? BenchTask.load(jsonl: path, requireQuestion: false)
    return 0
}
