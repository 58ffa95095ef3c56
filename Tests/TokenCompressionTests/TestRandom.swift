import Tensors

/// Seeded inputs shared by the method tests: values uniform in [−1, 1), tensors `[rows, cols]`.
struct TestRandom {
    var source: SplitMix64
    init(_ seed: UInt64) { source = SplitMix64(seed: seed) }
    mutating func next() -> UInt64 { source.next() }
    mutating func float() -> Float { Float(next() >> 40) / Float(1 << 24) * 2 - 1 }
    mutating func tensor(_ rows: Int, _ cols: Int) -> Tensor {
        try! Tensor(shape: [rows, cols], values: (0..<(rows * cols)).map { _ in float() })
    }
}
