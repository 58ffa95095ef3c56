/// The summary statistics every benchmark and table reports, in one place.
public enum Statistics {
    /// Median of `values` in any order (mean of the two middle values for an even count); NaN when empty.
    public static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return .nan }
        let s = values.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// The `q` quantile (0...1) with linear interpolation between order statistics; NaN when empty.
    public static func quantile(_ values: [Double], _ q: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let s = values.sorted(), x = min(max(q, 0), 1) * Double(s.count - 1)
        let lo = Int(x.rounded(.down)), hi = min(lo + 1, s.count - 1)
        return s[lo] + (s[hi] - s[lo]) * (x - Double(lo))
    }

    /// Arithmetic mean; NaN when empty.
    public static func mean(_ values: [Double]) -> Double {
        values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count)
    }
}
