import Foundation

/// The fidelity and accuracy measures of the harness, as plain functions so they can be tested
/// without a model.
public enum BenchMetrics {
    /// Log-softmax of a logit vector (max-shifted, so large logits do not overflow).
    public static func logSoftmax(_ logits: [Float]) -> [Double] {
        guard let m = logits.max() else { return [] }
        let shifted = logits.map { Double($0) - Double(m) }
        let lse = log(shifted.reduce(0) { $0 + exp($1) })
        return shifted.map { $0 - lse }
    }

    /// KL(P‖Q) in nats, P = softmax(reference), Q = softmax(candidate): how much information the
    /// compressed run loses about the uncompressed next-token distribution. 0 for identical logits.
    public static func klDivergence(reference: [Float], candidate: [Float]) throws -> Double {
        guard reference.count == candidate.count, !reference.isEmpty else {
            throw BenchError("KL divergence needs two non-empty logit vectors of one size, got \(reference.count) and \(candidate.count)")
        }
        let lp = logSoftmax(reference), lq = logSoftmax(candidate)
        var kl = 0.0
        for i in 0..<lp.count where lp[i] > -80 {
            kl += exp(lp[i]) * (lp[i] - lq[i])
        }
        return max(kl, 0)
    }

    /// Index of the largest logit (the first on ties, as greedy decoding picks).
    public static func argmax(_ v: [Float]) -> Int {
        var best = 0
        for i in v.indices where v[i] > v[best] { best = i }
        return best
    }

    /// Whether both runs would generate the same first token.
    public static func top1Agreement(reference: [Float], candidate: [Float]) -> Bool {
        !reference.isEmpty && reference.count == candidate.count && argmax(reference) == argmax(candidate)
    }

    /// Answer normalisation: trimmed, lowercased, one trailing period dropped ("Yes." = "yes").
    public static func normalize(_ answer: String) -> String {
        var s = answer.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        if s.hasSuffix(".") { s.removeLast(); s = s.trimmingCharacters(in: .whitespaces) }
        return s
    }

    /// Case-insensitive exact match of the trimmed answers.
    public static func isCorrect(prediction: String, answer: String) -> Bool {
        normalize(prediction) == normalize(answer)
    }

    /// Fraction of true values (nil for an empty list).
    public static func rate(_ flags: [Bool]) -> Double? {
        flags.isEmpty ? nil : Double(flags.filter { $0 }.count) / Double(flags.count)
    }

}
