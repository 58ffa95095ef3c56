import Foundation
import ModelIO

/// Keep maps of a sweep's first samples: for each method and budget, the image with the patches
/// that reached the LLM lit and the rest dimmed — what the report shows side by side.
///
/// The sweep draws them as rows finish (`keepmaps/` in the output folder, one PNG per sample,
/// method and budget), so `tokc report` can merge them from shard folders without the model.
public enum BenchKeepMaps {
    /// Samples (task order) whose keep maps are drawn: the report's fixed examples.
    public static let sampleCount = 3

    public struct Entry: Sendable {
        public var sample: Int
        public var method: String
        public var budget: String
        public var png: Data
    }

    public static func folder(in out: String) -> String { (out as NSString).appendingPathComponent("keepmaps") }

    /// `s0__fastv__25pct.png`: a double underscore separates fields (method names hold `_` and `-`).
    static func fileName(sample: Int, method: String, budget: String) -> String {
        "s\(sample)__\(method)__\(budget.replacingOccurrences(of: "%", with: "pct")).png"
    }

    static func parse(_ name: String) -> (sample: Int, method: String, budget: String)? {
        guard name.hasSuffix(".png") else { return nil }
        let parts = name.dropLast(4).components(separatedBy: "__")
        guard parts.count == 3, parts[0].hasPrefix("s"), let sample = Int(parts[0].dropFirst()) else { return nil }
        return (sample, parts[1], parts[2].replacingOccurrences(of: "pct", with: "%"))
    }

    public static func write(_ image: RGBImage, folder: String, sample: Int, method: String, budget: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try image.writePNG(path: (folder as NSString).appendingPathComponent(fileName(sample: sample, method: method, budget: budget)))
    }

    /// The keep maps of output folders (the first folder's wins for the same sample, method and budget).
    public static func collect(folders: [String]) -> [Entry] {
        var seen = Set<String>()
        var out: [Entry] = []
        for f in folders {
            let dir = folder(in: f)
            for name in ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted() {
                guard let key = parse(name), seen.insert(name).inserted,
                      let data = FileManager.default.contents(atPath: (dir as NSString).appendingPathComponent(name)) else { continue }
                out.append(Entry(sample: key.sample, method: key.method, budget: key.budget, png: data))
            }
        }
        return out
    }
}
