import Foundation
import ModelIO

/// The seed paper's figure: accuracy (or, without answers, answer agreement with the
/// uncompressed run) against a cost — prefill latency by default, or TFLOPs or KV cache — one
/// polyline per method across its budgets, the uncompressed run as a square. Written as SVG by hand
/// and rasterised into a PNG with the same geometry, so both files show the same picture without a
/// plotting library.
public struct BenchPareto {
    public struct Series { public var method: String; public var points: [(x: Double, y: Double, label: String)] }

    /// The cost on the x axis.
    public enum Axis: String, CaseIterable, Sendable {
        case prefillMs = "prefill latency (ms)"
        case tflops = "TFLOPs per sample"
        case kvCacheMiB = "KV cache (MiB)"
        case imagesPerSecond = "images/s"
        case gflopsPerImage = "GFLOPs per image"
        case llmMs = "llm generation latency (ms)"
        case totalMs = "total latency (ms)"

        func value(_ r: BenchSummaryRow) -> Double {
            switch self {
            case .prefillMs: return r.prefillMs
            case .tflops: return r.tflops
            case .kvCacheMiB: return r.kvCacheBytes / 1_048_576
            case .imagesPerSecond: return r.throughput
            case .gflopsPerImage: return r.tflops * 1000
            case .llmMs: return r.llmMs ?? .nan
            case .totalMs: return r.totalMs ?? .nan
            }
        }

        /// The axes of a sweep's plots: LLaVA (prefill, TFLOPs, KV cache) or classifier (throughput, GFLOPs).
        /// A video sweep is plotted against the seed's video latencies (the LLM's and the total) first.
        public static func axes(classifier: Bool, video: Bool = false) -> [Axis] {
            if classifier { return [.imagesPerSecond, .gflopsPerImage] }
            return video ? [.llmMs, .totalMs, .tflops, .kvCacheMiB] : [.prefillMs, .tflops, .kvCacheMiB]
        }
    }

    public var series: [Series] = []
    public var reference: (x: Double, y: Double)?
    public var yLabel: String
    public let axis: Axis
    let width = 720, height = 480
    let left = 70.0, right = 170.0, top = 30.0, bottom = 50.0

    public init(rows: [BenchSummaryRow], axis: Axis = .prefillMs) {
        self.axis = axis
        let useAccuracy = rows.contains { $0.accuracy != nil }
        yLabel = useAccuracy ? "accuracy (%)" : "answer agreement with uncompressed (%)"
        func y(_ r: BenchSummaryRow) -> Double? { useAccuracy ? r.accuracy : r.answerAgreement }
        var order: [String] = []
        var byMethod: [String: [BenchSummaryRow]] = [:]
        for r in rows where axis.value(r).isFinite && y(r) != nil {
            if r.method == BenchPlan.uncompressed { reference = (axis.value(r), y(r)!); continue }
            if byMethod[r.method] == nil { order.append(r.method) }
            byMethod[r.method, default: []].append(r)
        }
        series = order.map { m in
            Series(method: m, points: byMethod[m]!.sorted { axis.value($0) < axis.value($1) }.map { (axis.value($0), y($0)!, $0.budget) })
        }
    }

    /// Tick labels with as many decimals as the range needs (TFLOPs are small numbers).
    func tick(_ v: Double) -> String {
        let (lo, hi) = xRange
        let span = hi - lo
        let digits = span >= 10 ? 1 : span >= 0.1 ? 2 : span >= 0.001 ? 4 : 6
        return String(format: "%.\(digits)f", v)
    }

    static let palette: [(UInt8, UInt8, UInt8)] = [
        (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75), (227, 119, 194),
        (127, 127, 127), (188, 189, 34), (23, 190, 207), (0, 0, 128), (128, 0, 0), (0, 128, 128), (128, 128, 0), (75, 0, 130), (255, 99, 71),
    ]

    var xRange: (Double, Double) {
        let xs = series.flatMap { $0.points.map(\.x) } + (reference.map { [$0.x] } ?? [])
        let lo = xs.min() ?? 0, hi = xs.max() ?? 1
        let pad = max((hi - lo) * 0.05, axis == .prefillMs || axis == .imagesPerSecond ? 0.5 : max(abs(hi) * 0.02, 1e-9))
        return (max(0, lo - pad), hi + pad)
    }

    /// Plot coordinates of a data point (y from 0 to 100 %).
    func map(_ x: Double, _ y: Double) -> (Double, Double) {
        let (lo, hi) = xRange
        let w = Double(width) - left - right, h = Double(height) - top - bottom
        return (left + (x - lo) / (hi - lo) * w, top + (1 - y / 100) * h)
    }

    public func svg() -> String {
        func hex(_ c: (UInt8, UInt8, UInt8)) -> String { String(format: "#%02x%02x%02x", c.0, c.1, c.2) }
        func esc(_ s: String) -> String { s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;") }
        let pw = Double(width) - left - right, ph = Double(height) - top - bottom
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" font-family=\"sans-serif\" font-size=\"11\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"black\"/>\n", left, top, pw, ph)
        for t in stride(from: 0.0, through: 100.0, by: 20.0) {
            let (_, y) = map(xRange.0, t)
            s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>", left, y, left + pw, y)
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.0f</text>\n", left - 5, y + 4, t)
        }
        let (lo, hi) = xRange
        for i in 0...4 {
            let v = lo + (hi - lo) * Double(i) / 4
            let (x, _) = map(v, 0)
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>\n", x, top + ph + 15, tick(v))
        }
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>\n", left + pw / 2, Double(height) - 12, esc(axis.rawValue))
        s += String(format: "<text transform=\"translate(16 %.1f) rotate(-90)\" text-anchor=\"middle\">%@</text>\n", top + ph / 2, esc(yLabel))
        for (i, se) in series.enumerated() {
            let c = hex(Self.palette[i % Self.palette.count])
            let pts = se.points.map { p -> String in let (x, y) = map(p.x, p.y); return String(format: "%.1f,%.1f", x, y) }
            s += "<polyline fill=\"none\" stroke=\"\(c)\" stroke-width=\"1.5\" points=\"\(pts.joined(separator: " "))\"/>\n"
            for p in se.points {
                let (x, y) = map(p.x, p.y)
                s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%@\"><title>%@ %@</title></circle>\n", x, y, c, esc(se.method), esc(p.label))
            }
            let ly = top + 14 * Double(i) + 8
            s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%@\" stroke-width=\"2\"/>", left + pw + 10, ly, left + pw + 28, ly, c)
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\">%@</text>\n", left + pw + 32, ly + 4, esc(se.method))
        }
        if let r = reference {
            let (x, y) = map(r.x, r.y)
            s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"8\" height=\"8\" fill=\"black\"><title>uncompressed</title></rect>\n", x - 4, y - 4)
            let ly = top + 14 * Double(series.count) + 8
            s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"8\" height=\"8\" fill=\"black\"/><text x=\"%.1f\" y=\"%.1f\">uncompressed</text>\n",
                        left + pw + 15, ly - 4, left + pw + 32, ly + 4)
        }
        s += "</svg>\n"
        return s
    }

    /// The same geometry rasterised: axes, grid, lines, points and the labels (tick values, axis
    /// titles, legend) in a 5×7 bitmap font (`BenchBitmapFont`).
    public func png() throws -> RGBImage {
        var px = [UInt8](repeating: 255, count: width * height * 3)
        func put(_ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8)) {
            guard x >= 0, y >= 0, x < width, y < height else { return }
            let i = (y * width + x) * 3
            px[i] = c.0; px[i + 1] = c.1; px[i + 2] = c.2
        }
        func line(_ a: (Double, Double), _ b: (Double, Double), _ c: (UInt8, UInt8, UInt8), thick: Int = 1) {
            let steps = max(Int(max(abs(b.0 - a.0), abs(b.1 - a.1))), 1)
            for i in 0...steps {
                let t = Double(i) / Double(steps)
                let x = Int((a.0 + (b.0 - a.0) * t).rounded()), y = Int((a.1 + (b.1 - a.1) * t).rounded())
                for dx in 0..<thick { for dy in 0..<thick { put(x + dx, y + dy, c) } }
            }
        }
        func dot(_ p: (Double, Double), _ c: (UInt8, UInt8, UInt8), r: Int = 3) {
            for dy in -r...r { for dx in -r...r where dx * dx + dy * dy <= r * r { put(Int(p.0) + dx, Int(p.1) + dy, c) } }
        }
        let black: (UInt8, UInt8, UInt8) = (0, 0, 0)
        /// Text with its baseline at y (as in the SVG), anchored at x by its start, middle or end.
        func text(_ t: String, x: Double, baseline y: Double, anchor: Double = 0) {
            let x0 = Int((x - anchor * Double(BenchBitmapFont.width(t))).rounded())
            BenchBitmapFont.draw(t, x: x0, y: Int(y.rounded()) - BenchBitmapFont.glyphHeight) { put($0, $1, black) }
        }
        let pw = Double(width) - left - right, ph = Double(height) - top - bottom
        for t in stride(from: 0.0, through: 100.0, by: 20.0) {
            let (_, y) = map(xRange.0, t)
            line((left, y), (left + pw, y), (221, 221, 221))
            text(String(format: "%.0f", t), x: left - 5, baseline: y + 4, anchor: 1)
        }
        let (lo, hi) = xRange
        for i in 0...4 {
            let v = lo + (hi - lo) * Double(i) / 4
            text(tick(v), x: map(v, 0).0, baseline: top + ph + 15, anchor: 0.5)
        }
        text(axis.rawValue, x: left + pw / 2, baseline: Double(height) - 12, anchor: 0.5)
        BenchBitmapFont.draw(yLabel, x: 10, y: Int(top + ph / 2) + BenchBitmapFont.width(yLabel) / 2, vertical: true) { put($0, $1, black) }
        line((left, top), (left + pw, top), black); line((left, top + ph), (left + pw, top + ph), black)
        line((left, top), (left, top + ph), black); line((left + pw, top), (left + pw, top + ph), black)
        for (i, se) in series.enumerated() {
            let c = Self.palette[i % Self.palette.count]
            let pts = se.points.map { map($0.x, $0.y) }
            for j in pts.indices.dropFirst() { line(pts[j - 1], pts[j], c, thick: 2) }
            for p in pts { dot(p, c) }
            let ly = top + 14 * Double(i) + 8
            line((left + pw + 10, ly), (left + pw + 28, ly), c, thick: 2)
            text(se.method, x: left + pw + 32, baseline: ly + 4)
        }
        if let r = reference {
            let (x, y) = map(r.x, r.y)
            for dy in -4...4 { for dx in -4...4 { put(Int(x) + dx, Int(y) + dy, black) } }
            let ly = top + 14 * Double(series.count) + 8
            for dy in -4...3 { for dx in 0..<8 { put(Int(left + pw + 15) + dx, Int(ly) + dy, black) } }
            text("uncompressed", x: left + pw + 32, baseline: ly + 4)
        }
        return try RGBImage(width: width, height: height, pixels: px)
    }
}
