import Foundation

/// Which frames of a video a run looks at.
///
/// lmms-eval samples `N` frames uniformly as `np.linspace(0, total - 1, N, dtype=int)`: the
/// float grid `i · (total − 1)/(N − 1)` (its last point set to `total − 1` exactly) truncated
/// toward zero. The same arithmetic is done here in Double, so indices agree with NumPy's,
/// including where `i · step` lands just under an integer.
public enum FrameSampling {
    /// Indices of `count` frames out of `total`, or every frame when `count` is nil.
    ///
    /// Zero frames, a count below 1 and a count above `total` are errors (a video cannot be
    /// up-sampled by repeating frames silently).
    public static func indices(total: Int, count: Int?, path: String? = nil) throws -> [Int] {
        guard total > 0 else { throw VideoError(path: path, "the video has no frames") }
        guard let count else { return Array(0..<total) }
        guard count >= 1 else { throw VideoError(path: path, "the number of frames to sample must be at least 1, got \(count)") }
        guard count <= total else {
            throw VideoError(path: path, "asked for \(count) frames but the video has only \(total)")
        }
        if count == 1 { return [0] }
        let step = Double(total - 1) / Double(count - 1)
        var out = (0..<count).map { Int(Double($0) * step) }
        out[count - 1] = total - 1
        return out
    }
}
