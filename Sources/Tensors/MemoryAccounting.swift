import Foundation
import Synchronization

/// Bytes held by tensor storage, counted as buffers are allocated and freed.
///
/// Compression claims ("the KV cache shrinks", "peak memory drops") must be measured, not
/// assumed, so every `TensorStorage` reports its allocation here. Process-level figures
/// (peak RSS) come from the kernel and include everything else the process holds.
public enum MemoryAccounting {
    /// The counter every `TensorStorage` reports to.
    static let shared = MemoryCounter()

    /// Bytes currently held by live tensors.
    public static var currentBytes: Int { shared.currentBytes }
    /// Largest value `currentBytes` reached since start or the last `resetPeak()`.
    public static var peakBytes: Int { shared.peakBytes }

    /// Starts a new peak window at the current level (e.g. before timing one prefill).
    public static func resetPeak() { shared.resetPeak() }

    static func allocated(_ bytes: Int) { shared.allocated(bytes) }
    static func freed(_ bytes: Int) { shared.freed(bytes) }

    /// Peak resident set size of the whole process in bytes (VmHWM on Linux, ru_maxrss elsewhere).
    public static var processPeakRSS: Int {
        #if os(Linux)
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) {
            for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
                let digits = line.split(separator: " ").compactMap { Int($0) }
                if let kib = digits.first { return kib * 1024 }
            }
        }
        return 0
        #else
        var usage = rusage()
        getrusage(RUSAGE_SELF, &usage)
        return Int(usage.ru_maxrss)
        #endif
    }
}

/// A current/peak byte counter, lock-free. One shared instance counts tensor storage; separate
/// instances let the counting rules be tested without other threads' allocations in the way.
final class MemoryCounter: Sendable {
    private let current = Atomic<Int>(0)
    private let peak = Atomic<Int>(0)

    var currentBytes: Int { current.load(ordering: .relaxed) }
    var peakBytes: Int { peak.load(ordering: .relaxed) }

    func resetPeak() {
        peak.store(current.load(ordering: .relaxed), ordering: .relaxed)
    }

    func allocated(_ bytes: Int) {
        let now = current.add(bytes, ordering: .relaxed).newValue
        var seen = peak.load(ordering: .relaxed)
        while now > seen {
            let (exchanged, original) = peak.compareExchange(expected: seen, desired: now, ordering: .relaxed)
            if exchanged { break }
            seen = original
        }
    }

    func freed(_ bytes: Int) {
        current.subtract(bytes, ordering: .relaxed)
    }
}
