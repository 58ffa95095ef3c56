import Foundation

/// Threading for row- and head-parallel work.
///
/// Work below `minimumPerThread` items runs inline: dispatching costs more than it saves for
/// the small tensors that compression criteria often see.
public enum Parallel {
    /// Number of worker threads used by row/head-parallel operations (defaults to active cores).
    nonisolated(unsafe) public static var threadCount: Int = ProcessInfo.processInfo.activeProcessorCount

    /// Calls `body(range)` over contiguous chunks of `0..<count`, possibly concurrently.
    public static func forEachChunk(_ count: Int, minimumPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
        let threads = min(threadCount, max(1, count / max(minimumPerThread, 1)))
        if threads <= 1 || count <= 1 {
            if count > 0 { body(0..<count) }
            return
        }
        let chunk = (count + threads - 1) / threads
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            let start = t * chunk
            let end = min(count, start + chunk)
            if start < end { body(start..<end) }
        }
    }

    /// Calls `body(i)` for every `i` in `0..<count`, possibly concurrently.
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        forEachChunk(count) { range in for i in range { body(i) } }
    }
}
