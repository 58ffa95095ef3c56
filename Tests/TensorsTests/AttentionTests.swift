import Foundation
import Testing
@testable import Tensors
import TestSupport

/// Reference attention computed the obvious way: full score matrix per head.
private func referenceAttention(q: Tensor, k: Tensor, v: Tensor, heads: Int, kvHeads: Int, headDim: Int,
                                causal: Bool, offset: Int) -> (out: [Float], probs: [[[Float]]], logits: [[[Float]]]) {
    let n = q.rows, m = k.rows
    var out = [Float](repeating: 0, count: n * heads * headDim)
    var probs = [[[Float]]](), logits = [[[Float]]]()
    for h in 0..<heads {
        let kvh = h / (heads / kvHeads)
        var hp = [[Float]](), hl = [[Float]]()
        for i in 0..<n {
            var s = [Double](repeating: 0, count: m)
            for j in 0..<m {
                var d = 0.0
                for c in 0..<headDim { d += Double(q[i, h * headDim + c]) * Double(k[j, kvh * headDim + c]) }
                s[j] = causal && j > offset + i ? -.infinity : d / Double(headDim).squareRoot()
            }
            let mx = s.max()!
            let e = s.map { exp($0 - mx) }
            let z = e.reduce(0, +)
            let p = e.map { $0 / z }
            hl.append(s.map(Float.init))
            hp.append(p.map(Float.init))
            for c in 0..<headDim {
                var acc = 0.0
                for j in 0..<m { acc += p[j] * Double(v[j, kvh * headDim + c]) }
                out[i * heads * headDim + h * headDim + c] = Float(acc)
            }
        }
        probs.append(hp)
        logits.append(hl)
    }
    return (out, probs, logits)
}

@Suite struct AttentionTests {
    @Test(arguments: [(false, 4, 4), (true, 4, 4), (true, 4, 2), (false, 6, 1)])
    func fusedMatchesReference(causal: Bool, heads: Int, kvHeads: Int) throws {
        var r = TestRandom(7)
        let n = 70, headDim = 8
        let q = r.tensor([n, heads * headDim]), k = r.tensor([n, kvHeads * headDim]), v = r.tensor([n, kvHeads * headDim])
        var attention = try Attention(heads: heads, kvHeads: kvHeads, headDim: headDim, causal: causal)
        attention.blockRows = 16  // several blocks, the last one partial
        let (out, recorded) = try attention(q: q, k: k, v: v)
        #expect(recorded == nil)
        let ref = referenceAttention(q: q, k: k, v: v, heads: heads, kvHeads: kvHeads, headDim: headDim, causal: causal, offset: 0)
        #expect(maxAbsDifference(out.values, ref.out) < 1e-5)
    }

    @Test func probabilityRowsMatchReferenceAndOutputIsUnchanged() throws {
        var r = TestRandom(8)
        let n = 90, heads = 2, headDim = 4
        let q = r.tensor([n, 8]), k = r.tensor([n, 8]), v = r.tensor([n, 8])
        let attention = try Attention(heads: heads, headDim: headDim, causal: true)
        let rows = [89, 3, 64]
        let (out, recorded) = try attention(q: q, k: k, v: v, record: .probabilities(rows: rows))
        let (fused, _) = try attention(q: q, k: k, v: v)
        #expect(out.values == fused.values)
        let ref = referenceAttention(q: q, k: k, v: v, heads: heads, kvHeads: heads, headDim: headDim, causal: true, offset: 0)
        let rec = try #require(recorded)
        #expect(rec.values.shape == [2, 3, 90])
        #expect(rec.rows == rows)
        for h in 0..<heads {
            for (slot, row) in rows.enumerated() {
                let got = Array(rec.values.values[((h * 3 + slot) * 90)..<((h * 3 + slot) * 90 + 90)])
                #expect(maxAbsDifference(got, ref.probs[h][row]) < 1e-6)
                #expect(got[(row + 1)...].allSatisfy { $0 == 0 })
            }
        }
        let (_, logits) = try attention(q: q, k: k, v: v, record: .logits(rows: nil))
        let lg = try #require(logits)
        #expect(lg.isLogits)
        #expect(lg.values.shape == [2, 90, 90])
        #expect(abs(lg.values[flat: 5 * 90 + 4] - ref.logits[0][5][4]) < 1e-6)
        #expect(lg.values[flat: 5 * 90 + 6] == -.infinity)
    }

    @Test func decodingWithCacheOffset() throws {
        var r = TestRandom(9)
        let q = r.tensor([1, 8]), k = r.tensor([10, 8]), v = r.tensor([10, 8])
        let attention = try Attention(heads: 2, headDim: 4, causal: true)
        let (out, _) = try attention(q: q, k: k, v: v)  // offset defaults to m − n = 9: sees every key
        let ref = referenceAttention(q: q, k: k, v: v, heads: 2, kvHeads: 2, headDim: 4, causal: false, offset: 0)
        #expect(maxAbsDifference(out.values, ref.out) < 1e-5)
    }

    /// Decoding's one-row path (its own kernels on AVX-512, the blocked path elsewhere) against the reference:
    /// grouped K/V heads, a head width that is not a multiple of 16 (72) and one over 128 (136), a causal
    /// offset that hides the last keys, spare cache rows past `keyCount`, and a key bias.
    @Test(arguments: [72, 128, 136])
    func oneQueryRowMatchesReference(headDim: Int) throws {
        var r = TestRandom(11)
        let heads = 4, kvHeads = 2, m = 37
        let q = r.tensor([1, heads * headDim]), k = r.tensor([m + 3, kvHeads * headDim]), v = r.tensor([m + 3, kvHeads * headDim])
        let attention = try Attention(heads: heads, kvHeads: kvHeads, headDim: headDim, causal: true)
        let (out, _) = try attention(q: q, k: k, v: v, queryOffset: 20, keyCount: m)
        let ref = referenceAttention(q: q, k: k, v: v, heads: heads, kvHeads: kvHeads, headDim: headDim, causal: true, offset: 20)
        #expect(maxAbsDifference(out.values, ref.out) < 1e-5)
        // A bias of -inf on every key but one: the output is that key's value row.
        var bias = [Float](repeating: -.infinity, count: m)
        bias[7] = 0.5
        let (picked, _) = try attention(q: q, k: k, v: v, queryOffset: 20, keyCount: m, keyBias: bias)
        for h in 0..<heads {
            let kvh = h / (heads / kvHeads)
            for c in 0..<headDim { #expect(abs(picked[0, h * headDim + c] - v[7, kvh * headDim + c]) < 1e-6) }
        }
    }

    @Test func badArgumentsThrow() throws {
        let attention = try Attention(heads: 2, headDim: 4, causal: true)
        let t = Tensor(zeros: [3, 8])
        #expect(throws: TensorError.self) { try attention(q: t, k: Tensor(zeros: [3, 4]), v: t) }
        #expect(throws: TensorError.self) { try attention(q: t, k: t, v: t, record: .probabilities(rows: [3])) }
        #expect(throws: TensorError.self) { try attention(q: t, k: t, v: t, queryOffset: 2) }
        #expect(throws: TensorError.self) { try Attention(heads: 3, kvHeads: 2, headDim: 4, causal: false) }
    }
}

extension AttentionTests {
    /// The additive key bias against the obvious computation (bias added to the scaled logits), with a
    /// causal mask and recorded logits; then ToMe's reason for it: a key/value row with bias log(s)
    /// gives the same output as that row repeated s times.
    @Test func keyBiasIsAddedToEveryLogitOfItsKey() throws {
        var r = TestRandom(11)
        let n = 40, heads = 3, headDim = 4
        let q = r.tensor([n, 12]), k = r.tensor([n, 12]), v = r.tensor([n, 12])
        let bias: [Float] = (0..<n).map { (j: Int) -> Float in
            if j % 5 == 3 { return -Float.infinity }
            return Float(log(Double(1 + j % 3)))
        }
        for causal in [false, true] {
            var attention = try Attention(heads: heads, headDim: headDim, causal: causal)
            attention.blockRows = 16
            let (out, recorded) = try attention(q: q, k: k, v: v, keyBias: bias, record: .logits(rows: [7]))
            var want = [Float](repeating: 0, count: n * 12)
            for h in 0..<heads {
                for i in 0..<n {
                    var s = [Double](repeating: -.infinity, count: n)
                    for j in 0..<n where !causal || j <= i {
                        var d = 0.0
                        for c in 0..<headDim { d += Double(q[i, h * headDim + c]) * Double(k[j, h * headDim + c]) }
                        s[j] = d / Double(headDim).squareRoot() + Double(bias[j])
                    }
                    if i == 7 {
                        let got = Array(recorded!.values.values[(h * n)..<(h * n + n)])
                        for j in 0..<n {
                            if s[j] == -.infinity { #expect(got[j] == -.infinity) } else { #expect(abs(Double(got[j]) - s[j]) < 1e-5) }
                        }
                    }
                    let mx = s.max()!
                    let e = s.map { $0 == -.infinity ? 0 : exp($0 - mx) }
                    let z = e.reduce(0, +)
                    for c in 0..<headDim {
                        var acc = 0.0
                        for j in 0..<n { acc += e[j] / z * Double(v[j, h * headDim + c]) }
                        want[i * 12 + h * headDim + c] = Float(acc)
                    }
                }
            }
            #expect(maxAbsDifference(out.values, want) < 1e-5, "causal \(causal)")
        }

        // Proportional attention: key 2 with size 3 equals keys [0, 1, 2, 2, 2, 3] without bias.
        let q2 = r.tensor([5, 8]), k2 = r.tensor([4, 8]), v2 = r.tensor([4, 8])
        let attention = try Attention(heads: 2, headDim: 4, causal: false)
        let merged = try attention(q: q2, k: k2, v: v2, keyBias: [0, 0, log(3), 0]).output
        let copies = [0, 1, 2, 2, 2, 3]
        let repeated = try attention(q: q2, k: try k2.gatherRows(copies), v: try v2.gatherRows(copies)).output
        #expect(maxAbsDifference(merged.values, repeated.values) < 1e-5)
        #expect(throws: TensorError.self) { try attention(q: q2, k: k2, v: v2, keyBias: [0, 0, 0]) }
        #expect(throws: TensorError.self) { try attention(q: q2, k: k2, v: v2, keyBias: [0, .nan, 0, 0]) }
    }
}
