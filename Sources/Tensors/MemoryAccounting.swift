import Foundation
import Synchronization

/// Bytes held by tensor storage, counted as buffers are allocated and freed.
///
/// Compression claims ("the KV cache shrinks", "peak memory drops") must be measured, not
/// assumed, so every `TensorStorage` reports its allocation here. Process-level figures
/// (peak RSS) come from the kernel and include everything else the process holds.
public enum MemoryAccounting {
    private static let current = Atomic<Int>(0)
    private static let peak = Atomic<Int>(0)

    /// Bytes currently held by live tensors.
    public static var currentBytes: Int { current.load(ordering: .relaxed) }
    /// Largest value `currentBytes` reached since start or the last `resetPeak()`.
    public static var peakBytes: Int { peak.load(ordering: .relaxed) }

    /// Starts a new peak window at the current level (e.g. before timing one prefill).
    public static func resetPeak() {
        peak.store(current.load(ordering: .relaxed), ordering: .relaxed)
    }

    static func allocated(_ bytes: Int) {
        let now = current.add(bytes, ordering: .relaxed).newValue
        var seen = peak.load(ordering: .relaxed)
        while now > seen {
            let (exchanged, original) = peak.compareExchange(expected: seen, desired: now, ordering: .relaxed)
            if exchanged { break }
            seen = original
        }
    }

    static func freed(_ bytes: Int) {
        current.subtract(bytes, ordering: .relaxed)
    }

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
