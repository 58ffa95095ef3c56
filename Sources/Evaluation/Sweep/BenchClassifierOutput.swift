import Foundation

/// The classifier table: per method and setting, the tokens through the blocks, GFLOPs per image,
/// images/s at the sweep's batch size, peak tensor memory, accuracy and its drop against the
/// uncompressed model, and how often the top-1 class agrees with the uncompressed one.
extension BenchOutput {
    static func tokensText(_ r: BenchSummaryRow) -> String {
        guard let t = r.tokensPerBlock, !t.isEmpty else { return "–" }
        return t.map { $0 == $0.rounded() ? String(Int($0)) : String(format: "%.1f", $0) }.joined(separator: "→")
    }

    /// GFLOPs per image with four significant digits (a tiny test model has thousandths).
    static func gflops(_ r: BenchSummaryRow) -> String { r.tflops.isFinite ? String(format: "%.4g", r.tflops * 1000) : "–" }

    static func accuracyDrop(_ r: BenchSummaryRow, base: BenchSummaryRow?) -> Double? {
        guard let a = r.accuracy, let b = base?.accuracy else { return nil }
        return a - b
    }

    public static func classifierMarkdown(_ rows: [BenchSummaryRow], batchSize: Int?) -> String {
        let base = rows.first { $0.method == BenchPlan.uncompressed }
        let batch = batchSize.map { " @ batch \($0)" } ?? ""
        var s = "| Method | Setting | Tokens per block (in→…→out) | GFLOPs/img (↓%) | Images/s\(batch) (×) | Peak mem (↓%) | Scoring ms/img | Accuracy | Δ acc. (pts) | Top-1 agree | KL |\n"
        s += "|---|---|---|---|---|---|---|---|---|---|---|\n"
        for r in rows {
            let drop = accuracyDrop(r, base: base).map { String(format: "%+.1f", $0) } ?? "–"
            s += "| \(r.method) | \(r.method == BenchPlan.uncompressed ? "–" : r.budget) | \(tokensText(r))"
            s += " | \(gflops(r)) (\(pct(r.tflopsReduction))) | \(f(r.throughput, 1)) (\(f(r.throughputGain, 2))×)"
            s += " | \(mib(r.peakTensorBytes)) (\(pct(r.peakMemoryReduction))) | \(f(r.scoringMs, 2)) | \(accuracyCell(r)) | \(drop)"
            s += " | \(opt(r.top1Agreement)) | \(r.meanKL.map { String(format: "%.4f", $0) } ?? "–") |\n"
        }
        let types = Set(rows.flatMap { $0.accuracyByType.keys }).sorted()
        if !types.isEmpty {
            s += "\nAccuracy by type (%):\n\n| Method | Setting | " + types.joined(separator: " | ") + " |\n"
            s += "|---|---|" + types.map { _ in "---|" }.joined() + "\n"
            for r in rows { s += "| \(r.method) | \(r.method == BenchPlan.uncompressed ? "–" : r.budget) | " + types.map { opt(r.accuracyByType[$0], "") }.joined(separator: " | ") + " |\n" }
        }
        let noted = rows.filter { !$0.notes.isEmpty }
        if !noted.isEmpty {
            s += "\nNotes:\n"
            for r in noted { for n in r.notes { s += "- \(r.method) @ \(r.budget): \(n)\n" } }
        }
        return s
    }

    static let classifierCSVColumns = ["method", "setting", "samples", "errors", "tokens_in", "tokens_out", "tokens_per_block",
                                       "gflops_per_image", "gflops_reduction_pct", "images_per_s", "throughput_gain", "ms_per_image",
                                       "peak_tensor_bytes", "peak_memory_reduction_pct", "peak_rss_bytes", "scoring_ms_per_image",
                                       "accuracy_pct", "accuracy_change_pts", "top1_agreement_pct", "mean_kl", "accuracy_by_type", "notes"]

    public static func classifierCSV(_ rows: [BenchSummaryRow]) -> String {
        let base = rows.first { $0.method == BenchPlan.uncompressed }
        var out = classifierCSVColumns.joined(separator: ",") + "\n"
        func n(_ v: Double) -> String { v.isFinite ? String(format: "%.6g", v) : "" }
        func o(_ v: Double?) -> String { v.map(n) ?? "" }
        for r in rows {
            let types = r.accuracyByType.keys.sorted().map { "\($0)=\(n(r.accuracyByType[$0]!))" }.joined(separator: ";")
            let blocks = r.tokensPerBlock.map { $0.map(n).joined(separator: ";") } ?? ""
            let fields = [r.method, r.budget, "\(r.samples)", "\(r.errors)", o(r.inputTokens), n(r.achievedTokens), blocks,
                          n(r.tflops * 1000), n(r.tflopsReduction), n(r.throughput), n(r.throughputGain), n(r.prefillMs),
                          n(r.peakTensorBytes), n(r.peakMemoryReduction), n(r.peakRSSBytes), n(r.scoringMs),
                          o(r.accuracy), o(accuracyDrop(r, base: base)), o(r.top1Agreement), o(r.meanKL), types,
                          r.notes.joined(separator: " | ")]
            out += fields.map(csvField).joined(separator: ",") + "\n"
        }
        return out
    }
}
