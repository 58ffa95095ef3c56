import Foundation
import Tensors

/// Seeded inputs for the test targets: the library's SplitMix64 with the few distributions the tests
/// draw from. One generator for every test, so that a seed means the same numbers everywhere and no test
/// file carries its own copy of a random-number generator.
///
/// Every value is a function of the seed and of the order of the calls only, on every platform.
public struct TestRandom {
    public var source: SplitMix64

    public init(_ seed: UInt64) { source = SplitMix64(seed: seed) }

    public mutating func next() -> UInt64 { source.next() }

    /// Uniform in [0, 1), 24 random bits.
    public mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) }

    /// Uniform in [−1, 1), 24 random bits.
    public mutating func signed() -> Float { uniform() * 2 - 1 }

    /// Standard normal by Box–Muller, one value per pair of uniforms (the cosine branch).
    public mutating func normal() -> Float {
        let u = max(uniform(), 1e-7), v = uniform()
        return (-2 * Foundation.log(u)).squareRoot() * Foundation.cos(2 * Float.pi * v)
    }

    /// Uniform integer in `range`.
    public mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.count))
    }

    /// What the entries of a random tensor are drawn from.
    public enum Values: Sendable {
        /// `signed()`, uniform in [−1, 1).
        case signed
        /// `uniform()`, uniform in [0, 1).
        case unit
        /// `normal()`, standard normal.
        case normal
    }

    /// A tensor of `shape` filled in row-major order.
    public mutating func tensor(_ shape: [Int], _ values: Values = .signed) -> Tensor {
        let count = shape.reduce(1, *)
        let entries: [Float]
        switch values {
        case .signed: entries = (0..<count).map { _ in signed() }
        case .unit: entries = (0..<count).map { _ in uniform() }
        case .normal: entries = (0..<count).map { _ in normal() }
        }
        return try! Tensor(shape: shape, values: entries)
    }

    /// A `[rows, cols]` tensor.
    public mutating func tensor(_ rows: Int, _ cols: Int, _ values: Values = .signed) -> Tensor {
        tensor([rows, cols], values)
    }

    /// `[rows, n]` rows of softmax probabilities of `logitScale · logits` (attention-like rows).
    public mutating func softmaxRows(_ rows: Int, _ n: Int, logitScale: Float, logits: Values = .unit) -> Tensor {
        tensor([rows, n], logits).scaled(by: logitScale).softmaxRows()
    }
}
