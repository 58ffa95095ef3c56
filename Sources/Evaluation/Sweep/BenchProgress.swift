import Foundation

/// Progress on standard error: a redrawn bar with ETA on a terminal, one plain line per item
/// otherwise (logs of batch jobs stay readable).
public final class BenchProgress {
    let total: Int
    let start = Date()
    let isTerminal: Bool
    var lastDraw = Date.distantPast
    let write: (String) -> Void

    public init(total: Int, isTerminal: Bool = isatty(STDERR_FILENO) != 0,
                write: @escaping (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) }) {
        self.total = total
        self.isTerminal = isTerminal
        self.write = write
    }

    static func clock(_ s: Double) -> String {
        guard s.isFinite, s >= 0 else { return "--:--" }
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%02d:%02d", t / 60, t % 60)
    }

    /// The text shown after `done` of `total` items (testable without a terminal).
    public func line(done: Int, label: String, now: Date = Date()) -> String {
        let elapsed = now.timeIntervalSince(start)
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : .nan
        let frac = total > 0 ? Double(done) / Double(total) : 1
        if isTerminal {
            let w = 30, filled = Int(frac * Double(w))
            let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: w - filled)
            return String(format: "\r%@ %3.0f%% %d/%d  elapsed %@  ETA %@  %@\u{1B}[K", bar, frac * 100, done, total,
                          Self.clock(elapsed), Self.clock(eta), label)
        }
        return String(format: "[%d/%d] %3.0f%% elapsed %@ ETA %@ %@\n", done, total, frac * 100, Self.clock(elapsed), Self.clock(eta), label)
    }

    public func update(done: Int, label: String) {
        let now = Date()
        if isTerminal && done < total && now.timeIntervalSince(lastDraw) < 0.1 { return }
        lastDraw = now
        write(line(done: done, label: label, now: now))
        if isTerminal && done >= total { write("\n") }
    }
}
