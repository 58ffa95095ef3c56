import Foundation
import Models
import TokenCompression

/// One budget of a sweep: a fraction of the visual tokens or a token count.
public struct BenchBudget: Sendable, Equatable, Hashable, Codable {
    /// "ratio" or "count".
    public var kind: String
    public var value: Double

    public static func ratio(_ r: Double) -> BenchBudget { BenchBudget(kind: "ratio", value: r) }
    public static func count(_ k: Int) -> BenchBudget { BenchBudget(kind: "count", value: Double(k)) }

    public var budget: Budget { kind == "count" ? .count(Int(value)) : .ratio(value) }

    /// "25%" or "64 tok".
    public var label: String {
        if kind == "count" { return "\(Int(value)) tok" }
        let pct = value * 100
        return pct == pct.rounded() ? "\(Int(pct))%" : String(format: "%.1f%%", pct)
    }

    /// `0.5,0.25,0.11` (fractions, written with a point) or `128,64` (counts); both may be mixed.
    public static func parseList(_ text: String) throws -> [BenchBudget] {
        var out: [BenchBudget] = []
        for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
            if part.contains(".") || part.hasSuffix("%") {
                let pct = part.hasSuffix("%")
                guard let v = Double(pct ? String(part.dropLast()) : part) else { throw BenchError("--budgets: '\(part)' is not a number") }
                let r = pct ? v / 100 : v
                guard r > 0, r <= 1 else { throw BenchError("--budgets: fraction '\(part)' must be in (0, 1]") }
                out.append(.ratio(r))
            } else {
                guard let k = Int(part), k >= 1 else { throw BenchError("--budgets: '\(part)' must be a fraction like 0.25 or a token count ≥ 1") }
                out.append(.count(k))
            }
        }
        guard !out.isEmpty else { throw BenchError("--budgets is empty") }
        return out
    }

    public static let defaults: [BenchBudget] = [.ratio(0.5), .ratio(0.25), .ratio(0.11)]
}

/// `--shard i/n`: this process does work items k with k mod n == i (i counts from 0, as a Slurm
/// array task id does).
public struct BenchShard: Sendable, Equatable, Codable {
    public var index: Int
    public var count: Int
    public init(index: Int, count: Int) throws {
        guard count >= 1, index >= 0, index < count else {
            throw BenchError("--shard \(index)/\(count): need 0 ≤ i < n")
        }
        self.index = index
        self.count = count
    }
    public static func parse(_ text: String) throws -> BenchShard {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]) else {
            throw BenchError("--shard '\(text)' must be i/n, e.g. 0/4")
        }
        return try BenchShard(index: i, count: n)
    }
    public static let whole = try! BenchShard(index: 0, count: 1)

    public func takes(_ k: Int) -> Bool { k % count == index }
}

/// One unit of work: a method (or "uncompressed") at a budget on one sample.
public struct BenchWorkItem: Sendable, Equatable, Hashable {
    public var method: String
    public var budget: BenchBudget?
    public var sampleIndex: Int
    /// Row key in the results file; a done key is skipped on resume.
    public var key: String { "\(method)|\(budget?.label ?? "100%")|\(sampleIndex)" }
}

/// Which methods, budgets and samples a sweep covers, in one fixed order (sample-major, so one
/// prepared image and one uncompressed reference serve all the sample's rows).
public struct BenchPlan: Sendable {
    public static let uncompressed = "uncompressed"
    /// Baselines every sweep includes, as the seed paper insists.
    public static let baselines = ["random", "pooling"]

    public var methods: [String]
    public var budgets: [BenchBudget]
    public var sampleCount: Int

    /// `requested` nil → every runnable method that needs no parameter; the baselines are added when missing.
    ///
    /// `video`: a sweep over video prompts. Its defaults are the seed's video set (`BenchVideo.methods`),
    /// only `random` is added as a baseline (pooling acts on image tiles), and any method the catalog
    /// knows is accepted: one that cannot run on a video prompt yet fails its rows with the reason
    /// instead of vanishing from the table.
    public init(methods requested: [String]?, budgets: [BenchBudget], sampleCount: Int, video: Bool = false) throws {
        var m = requested ?? (video ? BenchVideo.methods : MethodCatalog.defaultSweepMethods)
        m = m.map { $0.lowercased() }.filter { $0 != Self.uncompressed && $0 != "none" }
        for b in (video ? ["random"] : Self.baselines) where !m.contains(b) { m.append(b) }
        var seen = Set<String>()
        m = m.filter { seen.insert($0).inserted }
        if video {
            if let bad = m.first(where: { MethodCatalog.entry(named: $0) == nil }) {
                throw BenchError("unknown method '\(bad)'; known: \(MethodCatalog.all.map(\.name).sorted().joined(separator: ", "))")
            }
        } else {
            let runnable = Set(MethodCatalog.llavaMethods)
            if let bad = m.first(where: { !runnable.contains($0) }) {
                let vit = MethodCatalog.vitMethods.contains(bad) ? " (it runs inside ViT classifiers: give --model a ViT/DeiT folder)" : ""
                throw BenchError("method '\(bad)' cannot run inside a LLaVA model\(vit); runnable: \(MethodCatalog.llavaMethods.joined(separator: ", "))")
            }
        }
        methods = m
        self.budgets = budgets
        self.sampleCount = sampleCount
    }

    /// Every work item in order: per sample, the uncompressed run, then each method × budget.
    public var items: [BenchWorkItem] {
        var out: [BenchWorkItem] = []
        for s in 0..<sampleCount {
            out.append(BenchWorkItem(method: Self.uncompressed, budget: nil, sampleIndex: s))
            for m in methods { for b in budgets { out.append(BenchWorkItem(method: m, budget: b, sampleIndex: s)) } }
        }
        return out
    }

    public func items(shard: BenchShard) -> [BenchWorkItem] {
        items.enumerated().filter { shard.takes($0.offset) }.map(\.element)
    }
}
