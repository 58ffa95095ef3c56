import Foundation

extension Tensor {
    private func checkSameShape(_ other: Tensor, _ op: String) throws {
        guard shape == other.shape else { throw TensorError.shape(op, "\(shape) vs \(other.shape)") }
    }

    private func zipped(_ other: Tensor, _ op: String, _ f: (Float, Float) -> Float) throws -> Tensor {
        try checkSameShape(other, op)
        var out = self
        out.withUnsafeMutableBufferPointer { o in
            other.withUnsafeBufferPointer { b in
                for i in 0..<o.count { o[i] = f(o[i], b[i]) }
            }
        }
        return out
    }

    public static func + (lhs: Tensor, rhs: Tensor) throws -> Tensor { try lhs.zipped(rhs, "add", +) }
    public static func - (lhs: Tensor, rhs: Tensor) throws -> Tensor { try lhs.zipped(rhs, "subtract", -) }
    public static func * (lhs: Tensor, rhs: Tensor) throws -> Tensor { try lhs.zipped(rhs, "multiply", *) }

    /// Every element times `factor`.
    public func scaled(by factor: Float) -> Tensor { map { $0 * factor } }

    /// Applies `f` to every element; large tensors in parallel chunks (activations of the MLP's
    /// widest tensors are a visible share of a prefill).
    public func map(_ f: (Float) -> Float) -> Tensor {
        var out = self
        let n = out.count
        let o = out.withUnsafeMutableBufferPointer { $0.baseAddress! }
        withoutActuallyEscaping(f) { f in
            Parallel.forEachChunk(n, minimumPerThread: 1 << 15) { range in for i in range { o[i] = f(o[i]) } }
        }
        return out
    }

    /// Adds `vector` (length = columns) to every row: bias addition.
    public func addingRowVector(_ vector: Tensor) throws -> Tensor {
        try broadcastRows(vector, "addingRowVector", +)
    }

    /// Multiplies every row element-wise by `vector` (length = columns): per-channel scale.
    public func multiplyingRowVector(_ vector: Tensor) throws -> Tensor {
        try broadcastRows(vector, "multiplyingRowVector", *)
    }

    private func broadcastRows(_ vector: Tensor, _ op: String, _ f: (Float, Float) -> Float) throws -> Tensor {
        guard vector.count == columns else { throw TensorError.shape(op, "\(shape) with vector \(vector.shape)") }
        var out = self
        let c = columns
        out.withUnsafeMutableBufferPointer { o in
            vector.withUnsafeBufferPointer { v in
                for r in 0..<rows { for j in 0..<c { o[r * c + j] = f(o[r * c + j], v[j]) } }
            }
        }
        return out
    }

    /// GELU with the exact erf form (`nn.GELU()`, `gelu` in HF configs).
    public func gelu() -> Tensor { map { 0.5 * $0 * (1 + erff($0 / Float(2).squareRoot())) } }

    /// GELU with the tanh approximation (`gelu_pytorch_tanh`, `gelu_new`, `quick` forms differ),
    /// with `tanh(u) = 1 − 2 / (e^{2u} + 1)` so that it runs on `FastMath.exp`.
    public func geluTanh() -> Tensor {
        let c = Float((2.0 / Double.pi).squareRoot())
        return mapChunks { x, n in
            for i in 0..<n {
                let v = x[i]
                let u = c * (v + 0.044715 * v * v * v)
                x[i] = 0.5 * v * (2 - 2 / (FastMath.exp(2 * u) + 1))
            }
        }
    }

    /// `x · sigmoid(1.702 x)` as in OpenAI CLIP (`quick_gelu`).
    public func quickGelu() -> Tensor {
        mapChunks { x, n in FastMath.xSigmoid(x, scale: 1.702, into: x, count: n) }
    }

    /// SiLU / swish: `x · sigmoid(x)`.
    public func silu() -> Tensor {
        mapChunks { x, n in FastMath.xSigmoid(x, scale: 1, into: x, count: n) }
    }

    /// Runs `body(pointer, count)` over parallel chunks of a copy of `self`. Unlike `map`, the
    /// loop is inside `body`, so it is compiled (and vectorised) with the element function inlined.
    func mapChunks(_ body: (UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
        var out = self
        let n = out.count
        let o = out.withUnsafeMutableBufferPointer { $0.baseAddress! }
        Parallel.forEachChunk(n, minimumPerThread: 1 << 15) { range in body(o + range.lowerBound, range.count) }
        return out
    }
}
