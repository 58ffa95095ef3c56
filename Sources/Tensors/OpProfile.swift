import Foundation

/// Opt-in wall-clock breakdown of a forward pass by operation (`tokc bench-prefill --profile`).
///
/// Why: the prefill benchmark says how far a pass is from its sgemm floor, not where the rest goes.
/// Models wrap each step of a layer in `measure`; with `isEnabled` false (the default) that is one
/// branch on a global flag per step.
public enum OpProfile {
    nonisolated(unsafe) public static var isEnabled = false

    public struct Entry: Sendable {
        public var label: String
        public var milliseconds: Double
        public var calls: Int

        public init(label: String, milliseconds: Double, calls: Int) {
            self.label = label
            self.milliseconds = milliseconds
            self.calls = calls
        }
    }

    nonisolated(unsafe) private static var totals: [String: (ns: UInt64, calls: Int)] = [:]
    nonisolated(unsafe) private static var order: [String] = []
    private static let lock = NSLock()

    /// Runs `body`, adding its wall time to `label` when profiling is on.
    @inlinable
    public static func measure<T>(_ label: String, _ body: () throws -> T) rethrows -> T {
        guard isEnabled else { return try body() }
        let start = DispatchTime.now().uptimeNanoseconds
        defer { add(label, DispatchTime.now().uptimeNanoseconds - start) }
        return try body()
    }

    public static func add(_ label: String, _ nanoseconds: UInt64) {
        lock.lock(); defer { lock.unlock() }
        if totals[label] == nil { order.append(label) }
        totals[label, default: (0, 0)].ns += nanoseconds
        totals[label, default: (0, 0)].calls += 1
    }

    /// Totals in first-seen order.
    public static func entries() -> [Entry] {
        lock.lock(); defer { lock.unlock() }
        return order.map { Entry(label: $0, milliseconds: Double(totals[$0]!.ns) / 1e6, calls: totals[$0]!.calls) }
    }

    public static func reset() {
        lock.lock(); defer { lock.unlock() }
        totals = [:]
        order = []
    }
}
