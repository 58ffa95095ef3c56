import Foundation
import ModelIO
import Testing
@testable import Evaluation

@Suite("Bench HTML report")
struct BenchHTMLReportTests {
    func records() -> [BenchRecord] {
        (0..<4).flatMap { s in [
            benchRecord(method: "uncompressed", budget: "100%", sample: s, prefill: 10, correct: true),
            benchRecord(method: "fastv", budget: "25%", sample: s, prefill: 8, correct: s % 2 == 0),
            benchRecord(method: "<odd>", budget: "25%", sample: s, prefill: 5, correct: true, type: "u"),
        ] }
    }

    @Test func selfContainedPageWithTablePlotsAndKeepMaps() throws {
        let recs = records()
        let rows = BenchSummary.rows(recs)
        let image = try RGBImage(width: 4, height: 4, pixels: [UInt8](repeating: 200, count: 48))
        let maps = [BenchKeepMaps.Entry(sample: 0, method: "uncompressed", budget: "100%", png: image.pngData()),
                    BenchKeepMaps.Entry(sample: 0, method: "fastv", budget: "25%", png: image.pngData())]
        let html = BenchHTMLReport.render(rows: rows, records: recs, manifests: [], keepMaps: maps)
        // Nothing is fetched: no external scripts, styles, fonts or images (the SVG namespace is a name, not a fetch).
        let withoutNamespace = html.replacingOccurrences(of: "xmlns=\"http://www.w3.org/2000/svg\"", with: "")
        #expect(!withoutNamespace.contains("http://") && !withoutNamespace.contains("https://") && !html.contains("<link"))
        #expect(html.hasPrefix("<!DOCTYPE html>") && html.hasSuffix("</html>\n"))
        // One table row per summary row, the uncompressed one first and marked.
        let main = try #require(html.components(separatedBy: "<table id=\"main\"").last?.components(separatedBy: "</table>").first)
        #expect(main.components(separatedBy: "<tr").count - 2 == rows.count)
        #expect(main.contains("<tr class=\"base\"><td>uncompressed</td>"))
        // Accuracy with its Wilson interval and change in points; names escaped.
        #expect(html.contains("50.0 <span class=\"ci\">[15.0, 85.0]</span>") && html.contains("-50.0"))
        #expect(html.contains("&lt;odd&gt;") && !html.contains("<odd>"))
        // Three plots (latency, TFLOPs, KV cache) and the two keep maps inline.
        #expect(html.components(separatedBy: "<svg").count - 1 == 3)
        #expect(html.components(separatedBy: "src=\"data:image/png;base64,").count - 1 == 2)
        #expect(html.contains("<script>") && html.contains("table.sortable"))
    }

    @Test func wilsonInterval() throws {
        let (lo, hi) = try #require(BenchHTMLReport.wilson(50, n: 4))
        #expect(abs(lo - 15.0) < 0.1 && abs(hi - 85.0) < 0.1)
        #expect(BenchHTMLReport.wilson(50, n: 0) == nil)
        let (l1, h1) = try #require(BenchHTMLReport.wilson(100, n: 500))
        #expect(h1 == 100 && l1 > 99)
    }

    @Test func keepMapNamesRoundTrip() {
        for (m, b) in [("prumerge_plus", "25%"), ("a-score", "64"), ("uncompressed", "100%")] {
            let name = BenchKeepMaps.fileName(sample: 2, method: m, budget: b)
            #expect(BenchKeepMaps.parse(name)! == (2, m, b))
        }
        #expect(BenchKeepMaps.parse("notes.txt") == nil && BenchKeepMaps.parse("x__y.png") == nil)
    }
}
