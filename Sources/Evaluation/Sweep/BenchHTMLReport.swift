import Foundation

/// The page a person looks at after a sweep: one self-contained HTML file (inline CSS, inline SVG
/// plots, keep maps as inline PNGs, a few lines of inline JavaScript to sort the table; nothing is
/// fetched), readable offline and attachable to a review.
///
/// Sections: what ran (manifest), the seed-style table with every efficiency column (sortable,
/// reductions against the uncompressed row, accuracy with its 95% Wilson interval and its change in
/// points), accuracy per question type, Pareto plots (accuracy against prefill latency, TFLOPs and
/// KV cache), the keep maps of the fixed samples side by side, and the notes (why a measured speedup
/// trails the FLOPs prediction, no-op budgets, errors).
public enum BenchHTMLReport {
    public static func render(rows: [BenchSummaryRow], records: [BenchRecord], manifests: [BenchManifest],
                              keepMaps: [BenchKeepMaps.Entry]) -> String {
        var h = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>TokenCompression sweep report</title>
        <style>\(css)</style>
        </head><body>
        <h1>TokenCompression sweep report</h1>

        """
        let failed = records.filter { $0.error != nil }.count
        h += "<p class=\"summary\">\(records.count - failed) rows ran, \(failed) failed; \(rows.count) \(manifests.first?.isClassifier == true ? "settings (uncompressed included)" : "method × budget settings")"
        h += " over \(Set(records.map(\.sampleIndex)).count) samples.</p>\n"
        let classifier = manifests.first?.isClassifier ?? false
        h += manifestSection(manifests)
        let video = manifests.first?.isVideo ?? false
        h += classifier ? classifierTable(rows, batchSize: manifests.first?.batchSize) : mainTable(rows, video: video)
        h += typeTable(rows, positions: !classifier)
        h += plots(rows, axes: BenchPareto.Axis.axes(classifier: classifier, video: video))
        h += classifier ? mergeMapSection(keepMaps, rows: rows, records: records) : keepMapSection(keepMaps, rows: rows, records: records, video: video)
        h += notesSection(rows)
        h += "<script>\(script)</script>\n</body></html>\n"
        return h
    }

    // MARK: sections

    static func manifestSection(_ manifests: [BenchManifest]) -> String {
        guard !manifests.isEmpty else { return "<h2>What ran</h2><p>No manifest was found (rows of an older run).</p>\n" }
        var s = "<h2>What ran</h2>\n<table class=\"manifest\"><thead><tr><th>model</th><th>weights (SHA-256)</th><th>task</th>"
        let classifier = manifests[0].isClassifier
        s += "<th>samples</th><th>seed</th><th>\(classifier ? "batch size" : "max new tokens")</th><th>repeats / warm-up</th><th>shard</th><th>machine</th>"
        s += "<th>threads</th><th>version</th><th>date</th></tr></thead><tbody>\n"
        for m in manifests {
            let hashes = m.weightsSHA256.sorted { $0.key < $1.key }.map { "\(esc($0.key)): <code>\(esc(String($0.value.prefix(16))))…</code>" }
            s += "<tr><td>\(esc(m.model))</td><td>\(hashes.joined(separator: "<br>"))</td><td>\(esc(m.task))</td><td>\(m.samples)</td>"
            s += "<td>\(m.seed)</td><td>\(classifier ? (m.batchSize.map(String.init) ?? "–") : String(m.maxNewTokens))</td><td>\(m.repeats) / \(m.warmup)</td><td>\(esc(m.shard))</td>"
            s += "<td>\(esc(m.machine)), \(m.cores) cores</td><td>\(m.threads)</td><td>\(esc(m.toolkitVersion))</td><td>\(esc(m.date))</td></tr>\n"
        }
        return s + "</tbody></table>\n"
    }

    /// 95% Wilson score interval of a rate given in percent over `n` samples.
    static func wilson(_ percent: Double, n: Int) -> (Double, Double)? {
        guard n > 0, percent.isFinite else { return nil }
        let p = percent / 100, z = 1.959964, nn = Double(n)
        let denominator = 1 + z * z / nn
        let centre = (p + z * z / (2 * nn)) / denominator
        let half = z * (p * (1 - p) / nn + z * z / (4 * nn * nn)).squareRoot() / denominator
        return (max(0, centre - half) * 100, min(1, centre + half) * 100)
    }

    /// `video`: a Frames column after the budget (the LLM and total latencies are there for every sweep).
    static func mainTable(_ rows: [BenchSummaryRow], video: Bool = false) -> String {
        let base = rows.first { $0.method == BenchPlan.uncompressed }
        var s = "<h2>Efficiency and accuracy</h2>\n"
        s += "<p class=\"hint\">Click a column to sort. Reductions (↓) and ratios (×) are against the uncompressed row; "
        s += "LLM gen. ms is the language model's part of the prefill plus decoding, total ms the whole sample from its file on disk "
        s += "(decoding the \(video ? "video's frames" : "image"), preprocessing, vision tower, projector, LLM), throughput samples per second of total time; "
        s += "accuracy has its 95% Wilson interval and its change in points.</p>\n"
        s += "<table id=\"main\" class=\"sortable\"><thead><tr>"
        var headers = ["Method", "Budget", "Tokens req / got", "TFLOPs", "Peak mem (MiB)", "KV cache (MiB)", "Prefill ms",
                       "LLM gen. ms", "Total ms", "Decode ms/tok", "Throughput (/s)", "Scoring ms", "Speedup meas. / FLOPs", "Answer agree %",
                       "Top-1 agree %", "KL", "Accuracy % [95% CI]", "Δ acc. (pts)", "Positions"]
        if video { headers.insert("Frames", at: 2) }
        s += headers.enumerated().map { "<th data-col=\"\($0.offset)\">\(esc($0.element))</th>" }.joined() + "</tr></thead><tbody>\n"
        for r in rows {
            var cells: [(String, Double?)] = []
            cells.append((esc(r.method), nil))
            cells.append((esc(r.budget), nil))
            if video { cells.append((r.frames.map { f($0, 0) } ?? "–", r.frames)) }
            cells.append(("\(f(r.requestedTokens, 0)) / \(f(r.achievedTokens, 1))", r.achievedTokens))
            cells.append(("\(f(r.tflops, 4)) \(delta(r.tflopsReduction))", r.tflops))
            cells.append(("\(f(r.peakTensorBytes / 1_048_576, 2)) \(delta(r.peakMemoryReduction))", r.peakTensorBytes))
            cells.append(("\(f(r.kvCacheBytes / 1_048_576, 2)) \(delta(r.kvReduction))", r.kvCacheBytes))
            cells.append(("\(f(r.prefillMs, 1)) \(delta(r.prefillReduction))", r.prefillMs))
            cells.append((r.llmMs.map { "\(f($0, 1)) \(delta(r.llmReduction ?? .nan))" } ?? "–", r.llmMs))
            cells.append((r.totalMs.map { "\(f($0, 1)) \(delta(r.totalReduction ?? .nan))" } ?? "–", r.totalMs))
            cells.append((f(r.decodeMsPerToken, 2), r.decodeMsPerToken))
            cells.append(("\(f(r.throughput, 2)) (\(f(r.throughputGain, 2))×)", r.throughput))
            cells.append((f(r.scoringMs, 2), r.scoringMs))
            cells.append(("\(f(r.measuredSpeedup, 2))× / \(f(r.predictedSpeedup, 2))×", r.measuredSpeedup))
            cells.append((opt(r.answerAgreement), r.answerAgreement))
            cells.append((opt(r.top1Agreement), r.top1Agreement))
            cells.append((r.meanKL.map { String(format: "%.4f", $0) } ?? "–", r.meanKL))
            var acc = opt(r.accuracy)
            if let a = r.accuracy, let (lo, hi) = wilson(a, n: r.samples) { acc += String(format: " <span class=\"ci\">[%.1f, %.1f]</span>", lo, hi) }
            if r.errors > 0 { acc += " <span class=\"failed\">\(r.samples == 0 ? "FAILED" : "\(r.errors) failed") (\(r.errors) of \(r.samples + r.errors))</span>" }
            cells.append((acc, r.accuracy))
            let d = (r.accuracy != nil && base?.accuracy != nil) ? r.accuracy! - base!.accuracy! : nil
            cells.append((d.map { String(format: "%+.1f", $0) } ?? "–", d))
            cells.append((esc(r.positions), nil))
            let cls = r.method == BenchPlan.uncompressed ? " class=\"base\"" : (r.errors > 0 ? " class=\"haserr\"" : "")
            s += "<tr\(cls)>" + cells.map { text, value in
                "<td" + (value.map { $0.isFinite ? " data-v=\"\($0)\"" : "" } ?? "") + ">\(text)</td>"
            }.joined() + "</tr>\n"
        }
        return s + "</tbody></table>\n"
    }

    /// The classifier sweep's table: tokens per block, GFLOPs per image, images/s at the batch size,
    /// peak memory, accuracy with its interval and its change, top-1 agreement and KL.
    static func classifierTable(_ rows: [BenchSummaryRow], batchSize: Int?) -> String {
        let base = rows.first { $0.method == BenchPlan.uncompressed }
        var s = "<h2>Throughput, cost and accuracy</h2>\n"
        s += "<p class=\"hint\">Click a column to sort. Reductions (↓) and ratios (×) are against the uncompressed row; images/s "
        s += "are measured at \(batchSize.map { "batch size \($0)" } ?? "the sweep's batch size"); GFLOPs are analytic from the tokens each block ran "
        s += "(a multiply-add counts 2); accuracy has its 95% Wilson interval and its change in points.</p>\n"
        s += "<table id=\"main\" class=\"sortable\"><thead><tr>"
        let headers = ["Method", "Setting", "Tokens per block", "GFLOPs / image", "Images/s", "ms / image", "Peak mem (MiB)",
                       "Scoring ms / image", "Accuracy % [95% CI]", "Δ acc. (pts)", "Top-1 agree %", "KL"]
        s += headers.enumerated().map { "<th data-col=\"\($0.offset)\">\(esc($0.element))</th>" }.joined() + "</tr></thead><tbody>\n"
        for r in rows {
            var cells: [(String, Double?)] = []
            cells.append((esc(r.method), nil))
            cells.append((r.method == BenchPlan.uncompressed ? "–" : esc(r.budget), nil))
            cells.append((esc(BenchOutput.tokensText(r)), r.achievedTokens))
            cells.append(("\(BenchOutput.gflops(r)) \(delta(r.tflopsReduction))", r.tflops))
            cells.append(("\(f(r.throughput, 1)) (\(f(r.throughputGain, 2))×)", r.throughput))
            cells.append((f(r.prefillMs, 2), r.prefillMs))
            cells.append(("\(f(r.peakTensorBytes / 1_048_576, 2)) \(delta(r.peakMemoryReduction))", r.peakTensorBytes))
            cells.append((f(r.scoringMs, 3), r.scoringMs))
            var acc = opt(r.accuracy)
            if let a = r.accuracy, let (lo, hi) = wilson(a, n: r.samples) { acc += String(format: " <span class=\"ci\">[%.1f, %.1f]</span>", lo, hi) }
            if r.errors > 0 { acc += " <span class=\"failed\">\(r.samples == 0 ? "FAILED" : "\(r.errors) failed") (\(r.errors) of \(r.samples + r.errors))</span>" }
            cells.append((acc, r.accuracy))
            let d = BenchOutput.accuracyDrop(r, base: base)
            cells.append((d.map { String(format: "%+.1f", $0) } ?? "–", d))
            cells.append((opt(r.top1Agreement), r.top1Agreement))
            cells.append((r.meanKL.map { String(format: "%.4f", $0) } ?? "–", r.meanKL))
            let cls = r.method == BenchPlan.uncompressed ? " class=\"base\"" : (r.errors > 0 ? " class=\"haserr\"" : "")
            s += "<tr\(cls)>" + cells.map { text, value in
                "<td" + (value.map { $0.isFinite ? " data-v=\"\($0)\"" : "" } ?? "") + ">\(text)</td>"
            }.joined() + "</tr>\n"
        }
        return s + "</tbody></table>\n"
    }

    /// Merge maps of the task's first samples: one row per method and setting, one column per sample.
    static func mergeMapSection(_ maps: [BenchKeepMaps.Entry], rows: [BenchSummaryRow], records: [BenchRecord]) -> String {
        guard !maps.isEmpty else { return "" }
        var s = "<h2>Which patches became one token</h2>\n"
        s += "<p class=\"hint\">The task's first samples as the model saw them: every token after the last block is outlined, a token "
        s += "of several patches (merged, or EViT's fused token) is tinted in a colour of its own, dropped patches are dimmed. Under each "
        s += "map: the predicted class (✓/✗).</p>\n"
        let samples = Set(maps.map(\.sample)).sorted()
        let answers = answerCells(records, samples: Set(samples))
        s += "<table class=\"keepmaps\"><thead><tr><th>Method</th><th>Setting</th>"
        for sample in samples {
            let info = records.first { $0.sampleIndex == sample }
            var title = esc(info?.sampleID ?? "sample \(sample)")
            if let a = info?.answer { title += "<br><small>answer: \(esc(a))</small>" }
            s += "<th class=\"sample\">\(title)</th>"
        }
        s += "</tr></thead><tbody>\n"
        for r in rows {
            s += "<tr><td>\(esc(r.method))</td><td>\(r.method == BenchPlan.uncompressed ? "–" : esc(r.budget))</td>"
            for sample in samples {
                guard let e = maps.first(where: { $0.sample == sample && $0.method == r.method && $0.budget == r.budget }) else { s += "<td>–</td>"; continue }
                s += "<td>" + img(e) + "<div class=\"ans\">\(answers[MapKey(sample, r.method, r.budget)] ?? "")</div></td>"
            }
            s += "</tr>\n"
        }
        return s + "</tbody></table>\n"
    }

    static func typeTable(_ rows: [BenchSummaryRow], positions: Bool = true) -> String {
        let types = Set(rows.flatMap { $0.accuracyByType.keys }).sorted()
        guard !types.isEmpty else { return "" }
        var s = "<h2>Accuracy by \(positions ? "question " : "")type (%)</h2>\n<table class=\"sortable\"><thead><tr><th>Method</th><th>\(positions ? "Budget" : "Setting")</th>"
        if positions { s += "<th>Visual-row positions</th>" }
        s += types.map { "<th>\(esc($0))</th>" }.joined() + "</tr></thead><tbody>\n"
        for r in rows {
            let setting = !positions && r.method == BenchPlan.uncompressed ? "–" : esc(r.budget)
            s += "<tr><td>\(esc(r.method))</td><td>\(setting)</td>" + (positions ? "<td>\(esc(r.positions))</td>" : "")
            s += types.map { t in r.accuracyByType[t].map { "<td data-v=\"\($0)\">\(f($0, 1))</td>" } ?? "<td>–</td>" }.joined()
            s += "</tr>\n"
        }
        return s + "</tbody></table>\n"
    }

    static func plots(_ rows: [BenchSummaryRow], axes: [BenchPareto.Axis]) -> String {
        var s = "<h2>Accuracy against cost</h2>\n<div class=\"plots\">\n"
        for axis in axes {
            let plot = BenchPareto(rows: rows, axis: axis)
            guard !plot.series.isEmpty || plot.reference != nil else { continue }
            s += "<figure>\(plot.svg())<figcaption>\(esc(plot.yLabel)) against \(esc(axis.rawValue))</figcaption></figure>\n"
        }
        return s + "</div>\n"
    }

    /// `video`: each map is a strip of the video's frames (drawn taller, one sample per row of budgets).
    static func keepMapSection(_ maps: [BenchKeepMaps.Entry], rows: [BenchSummaryRow], records: [BenchRecord], video: Bool = false) -> String {
        guard !maps.isEmpty else { return "" }
        var s = "<h2>Which tokens reached the LLM</h2>\n"
        s += "<p class=\"hint\">The task's first samples side by side: lit patches reached the language model, dimmed ones were "
        s += "dropped (a merged token lights every patch it holds)\(video ? "; each map is the video's sampled frames left to right, at the size the tower sees them" : ""). "
        s += "Under each map: the method's answer (✓/✗).</p>\n"
        let img = { (e: BenchKeepMaps.Entry) in video ? strip(e) : Self.img(e) }
        let methods = rows.map(\.method).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let budgets = rows.filter { $0.method != BenchPlan.uncompressed }.map(\.budget).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let samples = Set(maps.map(\.sample)).sorted()
        func map(_ sample: Int, _ m: String, _ b: String) -> BenchKeepMaps.Entry? {
            maps.first { $0.sample == sample && $0.method == m && $0.budget == b }
        }
        let answers = answerCells(records, samples: Set(samples))
        func cell(_ sample: Int, _ m: String, _ b: String, span: Int = 1) -> String {
            let open = span > 1 ? "<td colspan=\"\(span)\">" : "<td>"
            guard let e = map(sample, m, b) else { return open + "–</td>" }
            return open + img(e) + "<div class=\"ans\">\(answers[MapKey(sample, m, b)] ?? "")</div></td>"
        }
        let columns = max(budgets.count, 1)
        s += "<table class=\"keepmaps\"><thead><tr><th rowspan=\"2\">Method</th>"
        for sample in samples {
            let info = records.first { $0.sampleIndex == sample }
            var title = esc(info?.sampleID ?? "sample \(sample)")
            if let info { title += "<br><small>\(esc(info.type))\(info.answer.map { ", answer: " + esc($0) } ?? "")</small>" }
            s += "<th colspan=\"\(columns)\" class=\"sample\">\(title)</th>"
        }
        s += "</tr><tr>" + samples.map { _ in budgets.map { "<th>\(esc($0))</th>" }.joined() }.joined() + "</tr></thead><tbody>\n"
        if maps.contains(where: { $0.method == BenchPlan.uncompressed }) {
            s += "<tr><td>uncompressed</td>" + samples.map { cell($0, BenchPlan.uncompressed, "100%", span: columns) }.joined() + "</tr>\n"
        }
        for m in methods where m != BenchPlan.uncompressed {
            s += "<tr><td>\(esc(m))</td>" + samples.map { sample in budgets.map { cell(sample, m, $0) }.joined() }.joined() + "</tr>\n"
        }
        return s + "</tbody></table>\n"
    }

    static func notesSection(_ rows: [BenchSummaryRow]) -> String {
        let noted = rows.filter { !$0.notes.isEmpty }
        guard !noted.isEmpty else { return "" }
        var s = "<h2>Notes</h2>\n<p class=\"hint\">Why a measured speedup trails the FLOPs prediction, budgets a method could not use, errors.</p>\n<ul class=\"notes\">\n"
        for r in noted { for n in r.notes { s += "<li><b>\(esc(r.method)) @ \(esc(r.budget))</b>: \(esc(n))</li>\n" } }
        return s + "</ul>\n"
    }

    // MARK: pieces

    /// A map's place: sample, method, budget or setting.
    struct MapKey: Hashable {
        let sample: Int, method: String, budget: String
        init(_ sample: Int, _ method: String, _ budget: String) { self.sample = sample; self.method = method; self.budget = budget }
    }

    /// The caption under each map of `samples` (the prediction with ✓/✗, or the row's error), indexed once
    /// so that a page of many maps does not scan every record per map.
    static func answerCells(_ records: [BenchRecord], samples: Set<Int>) -> [MapKey: String] {
        var out: [MapKey: String] = [:]
        for r in records where samples.contains(r.sampleIndex) {
            let key = MapKey(r.sampleIndex, r.method, r.budget)
            guard out[key] == nil else { continue }
            out[key] = r.error.map { "<span class=\"failed\">error: \(esc(String($0.prefix(60))))</span>" }
                ?? "\(esc(r.prediction)) \(r.correct.map { $0 ? "✓" : "✗" } ?? "")"
        }
        return out
    }

    static func img(_ e: BenchKeepMaps.Entry) -> String {
        "<img alt=\"keep map: \(esc(e.method)) at \(esc(e.budget))\" src=\"data:image/png;base64,\(e.png.base64EncodedString())\">"
    }

    /// A video's keep map: a strip of frames, shown at a fixed height so the frames stay legible.
    static func strip(_ e: BenchKeepMaps.Entry) -> String {
        "<img class=\"strip\" alt=\"keep map (frames): \(esc(e.method)) at \(esc(e.budget))\" src=\"data:image/png;base64,\(e.png.base64EncodedString())\">"
    }

    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func f(_ v: Double, _ digits: Int) -> String { v.isFinite ? String(format: "%.\(digits)f", v) : "–" }
    static func opt(_ v: Double?) -> String { v.map { f($0, 1) } ?? "–" }
    /// A reduction against the uncompressed row as "↓20%" / "↑5%" (nothing when unknown or zero).
    static func delta(_ v: Double) -> String {
        guard v.isFinite else { return "" }
        let r = v.rounded()
        if r == 0 { return "" }
        return "<span class=\"delta\">" + (r > 0 ? String(format: "↓%.0f%%", r) : String(format: "↑%.0f%%", -r)) + "</span>"
    }

    static let css = """
    body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1500px}
    h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}h3{font-size:15px}
    table{border-collapse:collapse;font-size:12px;margin:8px 0}th,td{border:1px solid #ddd;padding:3px 6px;text-align:right;vertical-align:top}
    td:first-child,th:first-child,td:nth-child(2){text-align:left}th{background:#f4f4f4;cursor:pointer;position:sticky;top:0}
    tr.base td{background:#eef5ff;font-weight:600}tr.haserr td{background:#fff3f3}.delta{color:#555;font-size:11px}
    .ci{color:#777;font-size:11px}.failed{color:#b00;font-weight:600}.hint{color:#666;font-size:12px}
    .summary{font-size:14px}.plots{display:flex;flex-wrap:wrap;gap:12px}.plots svg{width:440px;height:auto}figure{margin:0}figcaption{font-size:12px;color:#555;text-align:center}
    table.keepmaps td{text-align:center;padding:2px}table.keepmaps img{width:112px;height:auto;image-rendering:pixelated;display:block;margin:auto}
    table.keepmaps img.strip{width:auto;height:64px;max-width:none}table.keepmaps th{text-align:center}table.keepmaps th.sample{border-left:3px solid #999}
    .ans{font-size:11px;color:#333}table.manifest td{text-align:left;font-size:11px}code{font-size:11px}ul.notes{font-size:12px}
    """

    /// Sorts a table by the clicked column: numbers by their `data-v`, text alphabetically; a second click reverses.
    static let script = """
    document.querySelectorAll('table.sortable').forEach(function (table) {
      table.querySelectorAll('th').forEach(function (th, col) {
        th.addEventListener('click', function () {
          var body = table.tBodies[0];
          var rows = Array.prototype.slice.call(body.rows);
          var asc = th.getAttribute('data-sorted') !== 'asc';
          rows.sort(function (a, b) {
            var x = a.cells[col], y = b.cells[col];
            var xv = x.getAttribute('data-v'), yv = y.getAttribute('data-v');
            var c = (xv !== null && yv !== null) ? parseFloat(xv) - parseFloat(yv) : x.textContent.localeCompare(y.textContent);
            return asc ? c : -c;
          });
          rows.forEach(function (r) { body.appendChild(r); });
          table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('data-sorted'); });
          th.setAttribute('data-sorted', asc ? 'asc' : 'desc');
        });
      });
    });
    """
}
