import Foundation

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny seedable generator that gives the same stream on
/// every platform — for seeded baselines (random pruning) and reproducible benchmark inputs.
public struct SplitMix64: Sendable {
    private var state: UInt64
    private var spare: Float?

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 24 random bits.
    public mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) }

    /// Standard normal by Box–Muller (pairs; the second value is kept for the next call).
    public mutating func gaussian() -> Float {
        if let s = spare { spare = nil; return s }
        let u = max(uniform(), 1e-7), v = uniform()
        let r = (-2 * logf(u)).squareRoot()
        spare = r * sinf(2 * .pi * v)
        return r * cosf(2 * .pi * v)
    }
}
