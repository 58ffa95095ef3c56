import Foundation
import Models
import Tensors

/// Weight precision of the language model in a `tokc bench --precisions` sweep.
public enum BenchPrecision: String, CaseIterable, Sendable, Codable {
    case f32, int8, int4

    /// What `WeightQuantizer` writes for this precision.
    public var target: WeightQuantizer.Target {
        switch self {
        case .f32: .float32
        case .int8: .quantized(.int8)
        case .int4: .quantized(.int4)
        }
    }

    /// "f32,int8,int4": known names, no repeats, f32 included (the reference every change is measured
    /// against) and at least one quantized precision (otherwise there is nothing to compose).
    public static func parseList(_ text: String) throws -> [BenchPrecision] {
        var out: [BenchPrecision] = []
        for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
            guard let p = BenchPrecision(rawValue: part.lowercased()) else {
                throw BenchError("--precisions: unknown precision '\(part)' (known: \(allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            guard !out.contains(p) else { throw BenchError("--precisions: '\(part)' is given twice") }
            out.append(p)
        }
        guard out.contains(.f32), out.count >= 2 else {
            throw BenchError("--precisions needs f32 (the reference) and at least one of int8, int4; got '\(text)'")
        }
        return out
    }
}

/// `tokc bench --precisions`: the same sweep on the model's language model at several weight
/// precisions, and whether quantization and token compression compose — does the accuracy loss add
/// up, do the speedups multiply (issue #22)?
///
/// Each precision gets a converted copy of the model (`OUT/models/P`, written by `WeightQuantizer`:
/// F32 for the reference, int8/int4 for the LLM's linear layers) and its own ordinary sweep folder
/// (`OUT/P`, every output of `tokc bench`). The sweeps run interleaved: the samples are split into
/// `rounds` parts (sample i in part i mod rounds), and each round runs its part at every precision, in an order rotated from
/// round to round, so that a change of load on a shared host lands on all precisions alike rather than
/// on whichever ran last. A last pass over each folder (every row done, nothing loaded) writes its
/// complete outputs; the composition table goes to `OUT/precisions.md` and `OUT/precisions.json`.
public enum BenchPrecisionDriver {
    public struct Outcome {
        public var markdown: String
        public var table: BenchCompositionTable
        /// Each precision's own sweep, as `BenchDriver` returned it for the whole plan.
        public var sweeps: [BenchPrecision: BenchDriver.Outcome]
        public var ran: Int
        public var failed: Int
        public var skipped: Int

        public var countsLine: String { "\(ran) rows run, \(failed) failed, \(skipped) resumed over \(sweeps.count) precisions" }
        public func exitStatus(keepGoing: Bool) -> Int32 { failed > 0 && !keepGoing ? BenchDriver.failedRowsExitCode : 0 }
    }

    public static func modelFolder(_ out: String, _ p: BenchPrecision) -> String { out + "/models/" + p.rawValue }
    public static func sweepFolder(_ out: String, _ p: BenchPrecision) -> String { out + "/" + p.rawValue }

    public static func run(_ o: BenchOptions, precisions: [BenchPrecision], rounds: Int = 10,
                           log: (String) -> Void = { _ in }) throws -> Outcome {
        guard o.shard == .whole, o.sampleShard == nil else { throw BenchError("--precisions runs its own interleaved shards; it cannot be combined with --shard") }
        guard rounds >= 1 else { throw BenchError("--rounds must be at least 1, got \(rounds)") }
        guard precisions.contains(.f32), precisions.count >= 2 else {
            throw BenchError("--precisions needs f32 and at least one quantized precision")
        }
        for p in precisions {
            let summary = try WeightQuantizer.convert(folder: o.model, target: p.target, to: modelFolder(o.out, p))
            log("\(p.rawValue): \(summary.quantized.count) LLM matrices quantized, weights \(String(format: "%.1f", Double(summary.bytesBefore) / 1e6)) MB → \(String(format: "%.1f", Double(summary.bytesAfter) / 1e6)) MB in \(modelFolder(o.out, p))")
        }
        func options(_ p: BenchPrecision, samples: BenchShard?) -> BenchOptions {
            var po = o
            po.model = modelFolder(o.out, p)
            po.out = sweepFolder(o.out, p)
            po.sampleShard = samples
            return po
        }
        var ran = 0, skipped = 0
        for r in 0..<rounds {
            let order = (0..<precisions.count).map { precisions[($0 + r) % precisions.count] }
            for p in order {
                log("round \(r + 1)/\(rounds): \(p.rawValue)")
                let part = try BenchDriver.run(options(p, samples: try BenchShard(index: r, count: rounds)), log: log)
                ran += part.ran
                skipped += part.skipped
            }
        }
        var sweeps: [BenchPrecision: BenchDriver.Outcome] = [:]
        for p in precisions {
            // Every row is done (failed ones are retried here): this writes the folder's whole outputs.
            let whole = try BenchDriver.run(options(p, samples: nil), log: log)
            ran += whole.ran
            sweeps[p] = whole
        }
        let failed = sweeps.values.reduce(0) { $0 + $1.records.filter { $0.error != nil }.count }
        let table = BenchCompositionTable(cells: precisions.flatMap { p in
            BenchSummary.rows(sweeps[p]!.records).map { BenchCompositionTable.Cell(precision: p, row: $0, records: sweeps[p]!.records) }
        })
        let md = table.markdown()
        do {
            try Data(md.utf8).write(to: URL(fileURLWithPath: o.out + "/precisions.md"))
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            try enc.encode(table).write(to: URL(fileURLWithPath: o.out + "/precisions.json"))
        } catch {
            throw BenchError("cannot write \(o.out)/precisions.md or .json: \(error.localizedDescription)")
        }
        return Outcome(markdown: md, table: table, sweeps: sweeps, ran: ran, failed: failed, skipped: skipped)
    }
}
