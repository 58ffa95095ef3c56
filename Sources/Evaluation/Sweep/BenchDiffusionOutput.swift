import Foundation
import ModelIO

/// The diffusion table as Markdown, CSV and JSON, and the image grid (rows = samples, one column per
/// table row, same noise across a row of the grid).
public enum BenchDiffusionOutput {
    static func f(_ v: Double, _ digits: Int = 2) -> String {
        v.isInfinite ? "inf" : String(format: "%.\(digits)f", v)
    }

    public static func markdown(_ r: BenchDiffusion.Result) -> String {
        let o = r.options
        var lines = [
            "### Diffusion table: \(o.model)",
            "",
            "\(o.samples) samples (class = sample mod classes, seed \(o.seed) + sample), \(o.steps) steps, guidance \(o.guidance); "
                + "quality judged by \(o.classifier) against \(r.realImages) real images of \(o.realTask).",
            "",
            "| method | setting | steps | latency s/img | TFLOPs/img | speedup measured | speedup FLOPs | peak MiB | accuracy | Fréchet (feat.) | PSNR dB | SSIM |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in r.rows {
            if let e = row.error {
                lines.append("| \(row.name) | \(row.setting) | \(row.steps) | failed: \(e.replacingOccurrences(of: "|", with: "/")) | | | | | | | | |")
                continue
            }
            lines.append("| \(row.name) | \(row.setting) | \(row.steps) | \(f(row.samplingSeconds + row.vaeSeconds, 3)) | \(String(format: row.tflops >= 0.01 ? "%.2f" : "%.3g", row.tflops)) | "
                         + "\(f(row.measuredSpeedup))× | \(f(row.predictedSpeedup))× | \(f(Double(row.peakTensorBytes) / 1_048_576, 1)) | "
                         + "\(f(100 * row.accuracy, 1)) % | \(f(row.frechet, 3)) | \(row.psnr.map { f($0) } ?? "ref") | \(row.ssim.map { f($0, 3) } ?? "ref") |")
        }
        lines += [
            "",
            "Latency: sampling + VAE per image. Speedups against the uncached row: measured on the sampling time "
                + "(the VAE is the same in every row), predicted by the transformer FLOPs (docs/flops.md's convention). "
                + "Peak MiB: tensor memory during the row. Accuracy: the classifier's top-1 against the class sampled. "
                + "Fréchet (feat.): the Fréchet distance between generated and real images in the classifier's pooled "
                + "pre-logit feature space — our stand-in for FID, not comparable to FID values. PSNR/SSIM: each image "
                + "against the uncached image from the same noise.",
        ]
        for n in r.notes { lines.append("- \(n)") }
        return lines.joined(separator: "\n") + "\n"
    }

    static let csvHeader = "method,setting,steps,latency_s,sampling_s,vae_s,tflops,speedup_measured,speedup_flops,peak_tensor_bytes,accuracy,frechet,psnr,ssim,error"

    public static func csv(_ r: BenchDiffusion.Result) -> String {
        func q(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
        var lines = [csvHeader]
        for row in r.rows {
            let ok = row.error == nil
            let values: [String] = [
                q(row.name), q(row.setting), String(row.steps),
                ok ? "\(row.samplingSeconds + row.vaeSeconds)" : "", ok ? "\(row.samplingSeconds)" : "", ok ? "\(row.vaeSeconds)" : "",
                ok ? "\(row.tflops)" : "", ok ? "\(row.measuredSpeedup)" : "", ok ? "\(row.predictedSpeedup)" : "",
                ok ? "\(row.peakTensorBytes)" : "", ok ? "\(row.accuracy)" : "", ok ? "\(row.frechet)" : "",
                row.psnr.map { "\($0)" } ?? "", row.ssim.map { "\($0)" } ?? "", q(row.error ?? ""),
            ]
            lines.append(values.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    public static func json(_ r: BenchDiffusion.Result) throws -> String {
        let o = r.options
        func num(_ v: Double?) -> Any { v.map { $0.isFinite ? $0 : ($0 > 0 ? "inf" : "-inf") as Any } ?? NSNull() }
        let rows: [[String: Any]] = r.rows.map { row in
            [
                "method": row.name, "setting": row.setting, "steps": row.steps,
                "sampling_seconds": row.samplingSeconds, "vae_seconds": row.vaeSeconds, "tflops": row.tflops,
                "speedup_measured": row.measuredSpeedup, "speedup_flops": row.predictedSpeedup,
                "peak_tensor_bytes": row.peakTensorBytes, "accuracy": row.accuracy, "frechet_features": row.frechet,
                "psnr": num(row.psnr), "ssim": num(row.ssim), "error": row.error ?? NSNull(),
            ]
        }
        let object: [String: Any] = [
            "kind": "diffusion", "model": o.model, "classifier": o.classifier, "real_task": o.realTask, "real_images": r.realImages,
            "samples": o.samples, "steps": o.steps, "guidance": o.guidance, "seed": Double(o.seed), "rows": rows, "notes": r.notes,
            "grid_columns": r.rows.filter { $0.error == nil }.map { $0.setting.isEmpty ? $0.name : "\($0.name) (\($0.setting))" },
            "frechet_note": "Fréchet distance in the classifier's pooled pre-logit feature space (FID stand-in)",
        ]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// `columns[c][s]`: image of sample s in column c. Cells are scaled up (nearest) to at least 64 px and
    /// separated by 2 white pixels.
    public static func grid(_ columns: [[RGBImage]]) throws -> RGBImage {
        guard let first = columns.first?.first else { throw BenchError("image grid: no images") }
        let samples = columns[0].count
        guard columns.allSatisfy({ $0.count == samples && $0.allSatisfy { $0.width == first.width && $0.height == first.height } }) else {
            throw BenchError("image grid: every column needs the same number of images of one size")
        }
        let scale = max(1, (64 + max(first.width, first.height) - 1) / max(first.width, first.height))
        let (cw, ch) = (first.width * scale, first.height * scale), gap = 2
        let width = columns.count * (cw + gap) + gap, height = samples * (ch + gap) + gap
        var pixels = [UInt8](repeating: 255, count: width * height * 3)
        for (c, column) in columns.enumerated() {
            for (s, image) in column.enumerated() {
                let (x0, y0) = (gap + c * (cw + gap), gap + s * (ch + gap))
                for y in 0..<ch {
                    for x in 0..<cw {
                        let src = ((y / scale) * image.width + x / scale) * 3
                        let dst = ((y0 + y) * width + x0 + x) * 3
                        pixels[dst] = image.pixels[src]
                        pixels[dst + 1] = image.pixels[src + 1]
                        pixels[dst + 2] = image.pixels[src + 2]
                    }
                }
            }
        }
        return try RGBImage(width: width, height: height, pixels: pixels)
    }

    /// Writes diffusion.md, results.csv, results.json and grid.png into `folder`.
    public static func write(_ r: BenchDiffusion.Result, to folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let dir = URL(fileURLWithPath: folder)
        try markdown(r).write(to: dir.appendingPathComponent("diffusion.md"), atomically: true, encoding: .utf8)
        try csv(r).write(to: dir.appendingPathComponent("results.csv"), atomically: true, encoding: .utf8)
        try json(r).write(to: dir.appendingPathComponent("results.json"), atomically: true, encoding: .utf8)
        try r.grid?.writePNG(path: dir.appendingPathComponent("grid.png").path)
    }
}

extension BenchDiffusion.Result {
    /// The sweep's outcome in `tokc bench`'s terms (exit status 3 when a row failed).
    public var outcome: BenchDriver.Outcome {
        BenchDriver.Outcome(markdown: BenchDiffusionOutput.markdown(self), records: [], ran: rows.count,
                            failed: rows.filter { $0.error != nil }.count, skipped: 0)
    }
}
