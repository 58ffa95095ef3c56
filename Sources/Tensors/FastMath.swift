/// Vectorised exponential for attention softmax, the one place where `expf` dominates (heads × n²
/// calls per layer).
///
/// exp(x) = 2^n · 2^f with n = round(x·log2 e) and |f| ≤ ½, 2^f by a degree-6 polynomial
/// (relative error below 3e-7, about two float32 ulps) — well inside the 1e-4 logit parity the
/// models are held to. Inputs below −87 flush to 0, as softmax after max subtraction expects.
enum FastMath {
    static let lanes = 8

    @inline(__always)
    static func exp(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let clamped = x.clamped(lowerBound: SIMD8(repeating: -87.3), upperBound: SIMD8(repeating: 88.7))
        let n = (clamped * 1.442_695_04).rounded(.toNearestOrEven)
        // f = x − n·ln2 in two parts (Cody–Waite), so large |x| keeps full precision.
        let f = (clamped - n * 0.693_145_75) - n * 1.428_606_8e-6
        // e^f on |f| ≤ ln2/2 by Taylor–Horner to degree 6.
        var p = SIMD8<Float>(repeating: 1.0 / 720)
        p = p * f + 1.0 / 120
        p = p * f + 1.0 / 24
        p = p * f + 1.0 / 6
        p = p * f + 0.5
        p = p * f + 1
        p = p * f + 1
        let exponentBits = (SIMD8<Int32>(n) &+ 127) &<< 23
        let scale = unsafeBitCast(exponentBits, to: SIMD8<Float>.self)
        let result = p * scale
        return result.replacing(with: 0, where: x .< -87.3)
    }

    /// Stable in-place softmax of `count` floats using the vectorised exponential.
    static func softmaxInPlace(_ x: UnsafeMutablePointer<Float>, count: Int) {
        var maxValue = -Float.infinity
        for j in 0..<count where x[j] > maxValue { maxValue = x[j] }
        if maxValue == -.infinity {
            for j in 0..<count { x[j] = 0 }
            return
        }
        let m = SIMD8<Float>(repeating: maxValue)
        var sums = SIMD8<Float>(repeating: 0)
        var j = 0
        let raw = UnsafeMutableRawPointer(x)
        while j + lanes <= count {
            let v = raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self)
            let e = exp(v - m)
            raw.storeBytes(of: e, toByteOffset: j * 4, as: SIMD8<Float>.self)
            sums += e
            j += lanes
        }
        var sum = sums.sum()
        while j < count {
            var tail = SIMD8<Float>(repeating: -.infinity)
            tail[0] = x[j] - maxValue
            let e = exp(tail)[0]
            x[j] = e
            sum += e
            j += 1
        }
        let inv = 1 / sum
        for k in 0..<count { x[k] *= inv }
    }
}
