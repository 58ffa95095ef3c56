// Reference arithmetic the kernel tests compare against.
@testable import Tensors

func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

/// Naive triple-loop product used as the reference for BLAS calls.
func naiveMatmul(_ a: [Float], _ b: [Float], m: Int, k: Int, n: Int) -> [Float] {
    var c = [Float](repeating: 0, count: m * n)
    for i in 0..<m { for j in 0..<n { var s: Double = 0; for p in 0..<k { s += Double(a[i * k + p]) * Double(b[p * n + j]) }; c[i * n + j] = Float(s) } }
    return c
}
