import Foundation

/// One table row: a method at a budget, averaged over the samples it ran on, with reductions and
/// speedups against the uncompressed row on the same samples.
public struct BenchSummaryRow: Sendable, Codable, Equatable {
    public var method: String
    public var budget: String
    public var samples: Int
    public var errors: Int
    public var requestedTokens: Double
    public var achievedTokens: Double
    public var tflops: Double
    public var tflopsReduction: Double
    public var peakTensorBytes: Double
    public var peakMemoryReduction: Double
    public var peakRSSBytes: Double
    public var kvCacheBytes: Double
    public var kvReduction: Double
    public var prefillMs: Double
    public var prefillReduction: Double
    public var decodeMsPerToken: Double
    public var throughput: Double
    public var throughputGain: Double
    public var scoringMs: Double
    public var measuredSpeedup: Double
    public var predictedSpeedup: Double
    /// measured / predicted prefill speedup.
    public var speedupEfficiency: Double
    public var answerAgreement: Double?
    public var top1Agreement: Double?
    public var meanKL: Double?
    public var accuracy: Double?
    public var accuracyByType: [String: Double]
    /// Why the measured speedup falls short of the predicted one, flops notes, first error.
    public var notes: [String]
    /// Where the kept image rows sat in the LLM: "original" (positions kept, or nothing dropped),
    /// "renumbered" (contiguous after dropping), "mixed" across samples, "–" when not recorded.
    public var positions: String = "–"
    /// Classifier sweeps: tokens entering the first block, and the mean tokens entering each block
    /// followed by the mean left after the last one (nil for LLaVA sweeps).
    public var inputTokens: Double? = nil
    public var tokensPerBlock: [Double]? = nil
    /// Video rows: mean frames per sample (nil for image rows).
    public var frames: Double? = nil
    /// Mean LLM generation latency (the language model's part of the prefill plus decoding), ms, and
    /// its reduction against uncompressed in % (nil when the rows did not record it).
    public var llmMs: Double? = nil
    public var llmReduction: Double? = nil
    /// Mean total latency from the input file on disk to the answer, ms, and its reduction in %.
    public var totalMs: Double? = nil
    public var totalReduction: Double? = nil
    /// Accuracy minus the uncompressed row's accuracy, in points (nil when either is unknown).
    public var accuracyChange: Double? = nil
}

public enum BenchSummary {
    /// Rows in plan order: uncompressed first, then methods in first-seen order, budgets in first-seen order.
    /// `methods`/`budgets` (the manifest's) fix the row order; otherwise first-seen order.
    /// `classifier`: the rows of a classifier sweep (their time is one forward pass, not a prefill).
    public static func rows(_ records: [BenchRecord], methods: [String]? = nil, budgets: [String]? = nil,
                            classifier: Bool = false) -> [BenchSummaryRow] {
        var order: [String] = []
        var groups: [String: [BenchRecord]] = [:]
        for r in records {
            let k = r.method + "|" + r.budget
            if groups[k] == nil { order.append(k) }
            groups[k, default: []].append(r)
        }
        // Uncompressed first, the rest in first-seen (plan) order.
        let isBase = { (k: String) in k.hasPrefix(BenchPlan.uncompressed + "|") }
        order = order.filter(isBase) + order.filter { !isBase($0) }
        if let methods, let budgets {
            func rank(_ k: String) -> (Int, Int) {
                let parts = k.split(separator: "|", maxSplits: 1).map(String.init)
                if parts[0] == BenchPlan.uncompressed { return (-1, 0) }
                return (methods.firstIndex(of: parts[0]) ?? Int.max, budgets.firstIndex(of: parts.count > 1 ? parts[1] : "") ?? Int.max)
            }
            order = order.enumerated().sorted { (rank($0.element).0, rank($0.element).1, $0.offset) < (rank($1.element).0, rank($1.element).1, $1.offset) }.map(\.element)
        }
        let base = groups[BenchPlan.uncompressed + "|100%"]?.filter { $0.error == nil } ?? []
        let baseAgg = aggregate(base)
        return order.map { k in
            let g = groups[k]!
            let ok = g.filter { $0.error == nil }
            let a = aggregate(ok) ?? Agg(tflops: .nan, prefillTFLOPs: .nan, peak: .nan, kv: .nan, prefillMs: .nan, throughput: .nan, scoringMs: .nan)
            func red(_ v: Double, _ ref: Double?) -> Double { guard let ref, ref > 0 else { return .nan }; return (1 - v / ref) * 100 }
            var notes: [String] = []
            if let e = g.first(where: { $0.error != nil })?.error { notes.append("error: \(e)") }
            for n in Set(ok.compactMap(\.flopsNote)).sorted() { notes.append(n) }
            // The method's own notes (no-op budgets, fallbacks), not the ones every run shares.
            if g.first?.method != BenchPlan.uncompressed {
                notes += collapse(ok.flatMap(\.notes), excluding: Set(base.flatMap(\.notes)))
            }
            let measured = baseAgg.map { $0.prefillMs / a.prefillMs } ?? .nan
            let predicted = baseAgg.map { $0.prefillTFLOPs / a.prefillTFLOPs } ?? .nan
            let eff = (measured - 1) / max(predicted - 1, 1e-9)
            if g.first?.method != BenchPlan.uncompressed, predicted > 1.05, eff < 0.85, let baseAgg {
                notes.append(shortfall(method: g.first!.method, scoringMs: a.scoringMs, prefillMs: a.prefillMs,
                                       baseMs: baseAgg.prefillMs, predicted: predicted, stage: classifier ? "forward-pass" : "prefill"))
            }
            var byType: [String: Double] = [:]
            for t in Set(ok.map(\.type)) where !t.isEmpty {
                if let r = BenchMetrics.rate(ok.filter { $0.type == t }.compactMap(\.correct)) { byType[t] = r * 100 }
            }
            let first = g[0]
            let renumbered = Set(ok.compactMap(\.positionsRenumbered))
            var row = BenchSummaryRow(
                method: first.method, budget: first.budget, samples: ok.count, errors: g.count - ok.count,
                requestedTokens: Statistics.mean(ok.map { Double($0.requestedTokens) }),
                achievedTokens: Statistics.mean(ok.map { Double($0.achievedTokens) }),
                tflops: a.tflops, tflopsReduction: red(a.tflops, baseAgg?.tflops),
                peakTensorBytes: a.peak, peakMemoryReduction: red(a.peak, baseAgg?.peak),
                peakRSSBytes: Statistics.mean(ok.map { Double($0.peakRSSBytes) }),
                kvCacheBytes: a.kv, kvReduction: red(a.kv, baseAgg?.kv),
                prefillMs: a.prefillMs, prefillReduction: red(a.prefillMs, baseAgg?.prefillMs),
                decodeMsPerToken: Statistics.mean(ok.map(\.decodeMsPerToken)),
                throughput: a.throughput, throughputGain: baseAgg.map { a.throughput / $0.throughput } ?? .nan,
                scoringMs: a.scoringMs, measuredSpeedup: measured, predictedSpeedup: predicted,
                speedupEfficiency: predicted > 1.0001 ? eff : .nan,
                answerAgreement: BenchMetrics.rate(ok.compactMap(\.answerAgrees)).map { $0 * 100 },
                top1Agreement: BenchMetrics.rate(ok.compactMap(\.top1Agrees)).map { $0 * 100 },
                meanKL: ok.compactMap(\.klDivergence).isEmpty ? nil : Statistics.mean(ok.compactMap(\.klDivergence)),
                accuracy: BenchMetrics.rate(ok.compactMap(\.correct)).map { $0 * 100 },
                accuracyByType: byType, notes: notes)
            row.positions = renumbered.count > 1 ? "mixed" : renumbered.first.map { $0 ? "renumbered" : "original" } ?? "–"
            // Latencies a row recorded in every successful sample (rows of older runs have none).
            func recorded(_ v: [Double?]) -> Double? { v.isEmpty || v.contains(nil) ? nil : Statistics.mean(v.map { $0! }) }
            row.frames = recorded(ok.map { $0.frames.map(Double.init) })
            row.llmMs = recorded(ok.map(\.llmMs))
            row.totalMs = recorded(ok.map(\.totalMs))
            let baseLLM = recorded(base.map(\.llmMs)), baseTotal = recorded(base.map(\.totalMs))
            row.llmReduction = row.llmMs.map { red($0, baseLLM) }
            row.totalReduction = row.totalMs.map { red($0, baseTotal) }
            let baseAccuracy = BenchMetrics.rate(base.compactMap(\.correct)).map { $0 * 100 }
            if let a = row.accuracy, let b = baseAccuracy { row.accuracyChange = a - b }
            let traced = ok.compactMap(\.tokensPerBlock)
            if !traced.isEmpty, traced.count == ok.count, Set(traced.map(\.count)).count == 1 {
                row.inputTokens = Statistics.mean(ok.map { Double($0.visualTokens) })
                row.tokensPerBlock = (0..<traced[0].count).map { l in Statistics.mean(traced.map { Double($0[l]) }) } + [row.achievedTokens]
            }
            return row
        }
    }

    /// Distinct notes, those differing only in numbers (per-sample counts) shown once with a marker.
    static func collapse(_ notes: [String], excluding: Set<String>) -> [String] {
        var order: [String] = []
        var first: [String: String] = [:]
        var variants: [String: Set<String>] = [:]
        for n in notes where !excluding.contains(n) {
            var shape = ""
            for c in n { if c.isNumber || c == "." && shape.last == "#" { if shape.last != "#" { shape.append("#") } } else { shape.append(c) } }
            if first[shape] == nil { order.append(shape); first[shape] = n }
            variants[shape, default: []].insert(n)
        }
        return order.map { variants[$0]!.count > 1 ? first[$0]! + " (numbers vary by sample; first shown)" : first[$0]! }
    }

    struct Agg { var tflops, prefillTFLOPs, peak, kv, prefillMs, throughput, scoringMs: Double }

    static func aggregate(_ rs: [BenchRecord]) -> Agg? {
        guard !rs.isEmpty else { return nil }
        // Throughput counts the whole sample (its total latency, input decoding included) when every
        // row recorded it; rows of older runs and classifier rows (a batch's per-image share) have only
        // the end-to-end time from the prepared input.
        let total = rs.allSatisfy { $0.totalMs != nil } ? rs.map { $0.totalMs! } : rs.map(\.endToEndMs)
        let e2e = total.reduce(0, +)
        return Agg(tflops: Statistics.mean(rs.map(\.tflops)), prefillTFLOPs: Statistics.mean(rs.map(\.prefillTFLOPs)),
                   peak: Statistics.mean(rs.map { Double($0.peakTensorBytes) }), kv: Statistics.mean(rs.map { Double($0.kvCacheBytes) }),
                   prefillMs: Statistics.mean(rs.map(\.prefillMs)), throughput: e2e > 0 ? Double(rs.count) / (e2e / 1000) : .nan,
                   scoringMs: Statistics.mean(rs.map(\.scoringMs)))
    }

    /// The likeliest reason a method's measured prefill speedup trails its FLOPs prediction.
    static func shortfall(method: String, scoringMs: Double, prefillMs: Double, baseMs: Double, predicted: Double,
                          stage: String = "prefill") -> String {
        var why: [String] = []
        let ideal = baseMs / predicted
        if scoringMs > 0.1 * max(prefillMs - ideal, 1e-9) && scoringMs > 0.05 * prefillMs {
            why.append(String(format: "scoring overhead %.1f ms", scoringMs))
        }
        if ["fastv", "a-score", "sparsevlm", "pdrop", "mustdrop"].contains(method) {
            why.append("attention-probability path (the cut layer materialises attention rows)")
        }
        if ["evit", "sparse_tuning"].contains(method) {
            why.append("attention-probability path (the pruning blocks record the [CLS] row)")
        }
        why.append("costs FLOPs do not count (memory traffic, allocation, small-matrix BLAS efficiency, per-layer overhead)")
        return String(format: "measured \(stage) gain (speedup − 1) is %.0f%% of the FLOPs-predicted gain (%.2f×); likely causes: ", (prefillMs > 0 ? (baseMs / prefillMs - 1) / max(predicted - 1, 1e-9) : 0) * 100, predicted) + why.joined(separator: "; ")
    }
}
