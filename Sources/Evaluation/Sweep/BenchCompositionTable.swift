import Foundation

/// Whether weight quantization and token compression compose, from the summary rows of one sweep per
/// precision (`BenchPrecisionDriver`).
///
/// For a quantized precision q and a method m at a budget, against F32 uncompressed (the reference):
/// accuracy changes Δ(q) = acc(q, none) − ref, Δ(m) = acc(f32, m) − ref, Δ(q+m) = acc(q, m) − ref; the
/// losses *add up* when Δ(q+m) ≈ Δ(q) + Δ(m) (the interaction Δ(q+m) − Δ(q) − Δ(m) is near 0, within the
/// sampling noise the table states). Speedups s = ref time / time, for prefill and for decoding; they
/// *multiply* when s(q+m) ≈ s(q) · s(m) (the ratio s(q+m) / (s(q) · s(m)) is near 1).
public struct BenchCompositionTable: Sendable, Codable {
    /// One method × budget at one precision: accuracy over its samples, and the **medians** of the
    /// samples' prefill and decode times with their quartiles (a shared host's spikes move a mean, not
    /// a median).
    public struct Cell: Sendable, Codable {
        public var precision: BenchPrecision
        public var method: String
        public var budget: String
        public var samples: Int
        public var accuracy: Double?
        public var prefillMs: Double
        public var decodeMsPerToken: Double
        /// 25th and 75th percentiles over the samples (equal to the median when built from it alone).
        public var prefillQuartiles: [Double]
        public var decodeQuartiles: [Double]

        public init(precision: BenchPrecision, method: String, budget: String, samples: Int, accuracy: Double?,
                    prefillMs: Double, decodeMsPerToken: Double) {
            self.precision = precision
            self.method = method
            self.budget = budget
            self.samples = samples
            self.accuracy = accuracy
            self.prefillMs = prefillMs
            self.decodeMsPerToken = decodeMsPerToken
            prefillQuartiles = [prefillMs, prefillMs]
            decodeQuartiles = [decodeMsPerToken, decodeMsPerToken]
        }

        /// From a sweep's summary row (accuracy) and the successful records of that row (times).
        public init(precision: BenchPrecision, row: BenchSummaryRow, records: [BenchRecord]) {
            let ok = records.filter { $0.error == nil && $0.method == row.method && $0.budget == row.budget }
            let prefill = ok.map(\.prefillMs), decode = ok.map(\.decodeMsPerToken)
            self.init(precision: precision, method: row.method, budget: row.budget, samples: row.samples, accuracy: row.accuracy,
                      prefillMs: Statistics.median(prefill), decodeMsPerToken: Statistics.median(decode))
            prefillQuartiles = [Statistics.quantile(prefill, 0.25), Statistics.quantile(prefill, 0.75)]
            decodeQuartiles = [Statistics.quantile(decode, 0.25), Statistics.quantile(decode, 0.75)]
        }
    }

    /// A speedup of quantization alone, of the method alone, of both, and both / (quant × method).
    public struct Speedups: Sendable, Codable {
        public var quantization: Double
        public var method: Double
        public var both: Double
        public var product: Double { quantization * method }
        /// 1 when the speedups multiply exactly.
        public var bothOverProduct: Double { both / product }
        /// The speedup if the two *time savings* add instead (each removes its own part of the time:
        /// t(both) = t(q) + t(m) − t(ref)), i.e. 1 / (1/s_q + 1/s_m − 1); NaN when that leaves no time.
        /// When quantization shortens the weight products and a method the attention over the KV
        /// cache, this is the model that fits, and it exceeds the product.
        public var additive: Double {
            let inverse = 1 / quantization + 1 / method - 1
            return inverse > 0 ? 1 / inverse : .nan
        }
    }

    /// One quantized precision with one method at one budget.
    public struct Composition: Sendable, Codable {
        public var precision: BenchPrecision
        public var method: String
        public var budget: String
        /// Accuracy changes in points against F32 uncompressed (nil where a sweep has no answers).
        public var accuracyChangeQuantization: Double?
        public var accuracyChangeMethod: Double?
        public var accuracyChangeBoth: Double?
        public var accuracyChangeSum: Double? {
            guard let q = accuracyChangeQuantization, let m = accuracyChangeMethod else { return nil }
            return q + m
        }
        /// Δ(q+m) − (Δ(q) + Δ(m)): 0 when the losses add up.
        public var interaction: Double? {
            guard let b = accuracyChangeBoth, let s = accuracyChangeSum else { return nil }
            return b - s
        }
        public var prefill: Speedups
        public var decode: Speedups
    }

    public var cells: [Cell]

    public init(cells: [Cell]) { self.cells = cells }

    static let uncompressed = BenchPlan.uncompressed

    func cell(_ p: BenchPrecision, _ method: String, _ budget: String) -> Cell? {
        cells.first { $0.precision == p && $0.method == method && $0.budget == budget }
    }
    var reference: Cell? { cells.first { $0.precision == .f32 && $0.method == Self.uncompressed } }
    var precisions: [BenchPrecision] { BenchPrecision.allCases.filter { p in cells.contains { $0.precision == p } } }
    /// Method × budget pairs in the F32 sweep's row order (uncompressed first).
    var settings: [(method: String, budget: String)] {
        cells.filter { $0.precision == .f32 }.map { ($0.method, $0.budget) }
    }

    /// Every quantized precision × compressed setting that all three runs it needs have.
    public var compositions: [Composition] {
        guard let ref = reference else { return [] }
        var out: [Composition] = []
        for p in precisions where p != .f32 {
            guard let quant = cell(p, Self.uncompressed, ref.budget) else { continue }
            for (m, b) in settings where m != Self.uncompressed {
                guard let method = cell(.f32, m, b), let both = cell(p, m, b) else { continue }
                let change = { (c: Cell) in c.accuracy.flatMap { a in ref.accuracy.map { a - $0 } } }
                let speedups = { (t: KeyPath<Cell, Double>) in
                    Speedups(quantization: ref[keyPath: t] / quant[keyPath: t], method: ref[keyPath: t] / method[keyPath: t],
                             both: ref[keyPath: t] / both[keyPath: t])
                }
                out.append(Composition(precision: p, method: m, budget: b, accuracyChangeQuantization: change(quant),
                                       accuracyChangeMethod: change(method), accuracyChangeBoth: change(both),
                                       prefill: speedups(\.prefillMs), decode: speedups(\.decodeMsPerToken)))
            }
        }
        return out
    }

    /// The two tables (each setting at each precision; then the compositions) and a closing summary.
    public func markdown() -> String {
        let ps = precisions
        let f = BenchOutput.f
        let signed = { (v: Double?) in v.map { String(format: "%+.1f", $0) } ?? "–" }
        var s = "Accuracy (%), prefill ms and decode ms/token (medians over samples, quartiles in brackets) per weight precision of the language model:\n\n"
        s += "| Method | Budget | " + ps.map { "\($0.rawValue) acc." }.joined(separator: " | ")
        s += " | " + ps.map { "\($0.rawValue) prefill ms" }.joined(separator: " | ")
        s += " | " + ps.map { "\($0.rawValue) decode ms/tok" }.joined(separator: " | ") + " |\n"
        s += "|---|---|" + String(repeating: "---|", count: 3 * ps.count) + "\n"
        for (m, b) in settings {
            let row = ps.map { cell($0, m, b) }
            s += "| \(m) | \(b) | " + row.map { BenchOutput.opt($0?.accuracy, "") }.joined(separator: " | ")
            let timed = { (v: Double, q: [Double], digits: Int) in
                q.count == 2 && q[0] != q[1] ? "\(f(v, digits)) [\(f(q[0], digits))–\(f(q[1], digits))]" : f(v, digits)
            }
            s += " | " + row.map { $0.map { timed($0.prefillMs, $0.prefillQuartiles, 1) } ?? "–" }.joined(separator: " | ")
            s += " | " + row.map { $0.map { timed($0.decodeMsPerToken, $0.decodeQuartiles, 2) } ?? "–" }.joined(separator: " | ") + " |\n"
        }
        let comps = compositions
        s += "\nDo they compose? Against F32 uncompressed: Δ accuracy in points (quantization alone, method alone, their sum, "
        s += "both together, interaction = both − sum) and speedups (quantization alone × method alone = product, both together, both/product; "
        s += "'savings add': the speedup if each removed its own part of the time, t(both) = t(q) + t(m) − t(ref)):\n\n"
        s += "| Precision | Method | Budget | Δq | Δm | Δq+Δm | Δ both | interaction | prefill sq × sm = product | prefill both | both/product | prefill if savings add "
        s += "| decode sq × sm = product | decode both | both/product | decode if savings add |\n"
        s += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        for c in comps {
            s += "| \(c.precision.rawValue) | \(c.method) | \(c.budget) | \(signed(c.accuracyChangeQuantization)) | \(signed(c.accuracyChangeMethod))"
            s += " | \(signed(c.accuracyChangeSum)) | \(signed(c.accuracyChangeBoth)) | \(signed(c.interaction))"
            for sp in [c.prefill, c.decode] {
                s += " | \(f(sp.quantization, 2))× × \(f(sp.method, 2))× = \(f(sp.product, 2))× | \(f(sp.both, 2))× | \(f(sp.bothOverProduct, 2)) | \(f(sp.additive, 2))×"
            }
            s += " |\n"
        }
        s += "\n" + verdict(comps)
        return s
    }

    /// The answer in one paragraph: the largest |interaction| against the sampling noise, and the range
    /// of both/product for prefill and decode.
    func verdict(_ comps: [Composition]) -> String {
        guard !comps.isEmpty, let ref = reference else { return "No composition: the sweeps lack F32 uncompressed or a quantized run.\n" }
        var lines: [String] = []
        let interactions = comps.compactMap(\.interaction)
        if let worst = interactions.max(by: { abs($0) < abs($1) }), let acc = ref.accuracy,
           let (lo, hi) = BenchHTMLReport.wilson(acc, n: ref.samples) {
            // Half the width of one accuracy's 95% Wilson interval on this many samples (it stays wide at
            // 0% or 100%, unlike the normal approximation): the scale below which an interaction (a sum
            // of four accuracies' errors, partly shared) is indistinguishable from noise.
            let half = (hi - lo) / 2
            let within = interactions.filter { abs($0) <= half }.count
            lines.append("Accuracy: interaction (both − sum of the two losses) from \(String(format: "%+.1f", interactions.min()!)) to "
                + "\(String(format: "%+.1f", interactions.max()!)) points (largest |\(String(format: "%.1f", abs(worst)))|); "
                + "\(within) of \(interactions.count) within ±\(String(format: "%.1f", half)) points, half the 95% interval of one accuracy "
                + "on \(ref.samples) samples.")
        }
        for (name, key) in [("Prefill", \Composition.prefill), ("Decode", \Composition.decode)] {
            let ratios = comps.map { $0[keyPath: key].bothOverProduct }.filter(\.isFinite)
            guard let lo = ratios.min(), let hi = ratios.max() else { continue }
            let additive = comps.map { $0[keyPath: key].both / $0[keyPath: key].additive }.filter(\.isFinite)
            lines.append("\(name): measured speedup of both / product of the two alone from \(String(format: "%.2f", lo)) to \(String(format: "%.2f", hi)) (1 = they multiply)"
                + (additive.isEmpty ? "." : "; both / the speedup if the time savings add from \(String(format: "%.2f", additive.min()!)) to \(String(format: "%.2f", additive.max()!))."))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
