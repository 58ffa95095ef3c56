import ArgumentParser
import Evaluation
import Foundation

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Merge tokc bench output folders (e.g. shards) into one table, CSV, JSON, Pareto plots and HTML report.",
        discussion: """
        Rows are merged by (method, budget, sample); the first folder wins on duplicates. The merged folder gets \
        report.html: one self-contained page (manifest, sortable table, per-type accuracy, Pareto plots, keep maps of \
        the first samples, notes) that opens offline. See docs/bench.md.
        """
    )

    @Argument(help: "tokc bench output folders.")
    var folders: [String]
    @Option(name: .long, help: "Where to write the merged results.csv, results.json, pareto.svg/png and report.html.")
    var out = "bench-report"
    @Option(name: .long, help: "Also write the HTML report to this path.")
    var html: String?

    func run() throws {
        do {
            guard !folders.isEmpty else { throw BenchError("give at least one tokc bench output folder") }
            let merged = try BenchOutput.merge(folders: folders)
            let md = try BenchOutput.writeAll(records: merged.records, manifests: merged.manifests, folder: out,
                                              keepMaps: BenchKeepMaps.collect(folders: folders))
            if let html { try BenchOutput.copyReport(from: out, to: html) }
            print(md, terminator: "")
            let failed = merged.records.filter { $0.error != nil }.count
            printError("\(merged.records.count - failed) rows, \(failed) failed, from \(folders.count) folders; merged results in \(out)/")
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
    }
}
