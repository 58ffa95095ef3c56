import ArgumentParser
import Evaluation
import Foundation
import Models
import Runtime
import Tensors

struct FitPruneFitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fitprune-fit",
        abstract: "Fit FitPrune's per-layer delete schemes on a model and a calibration task.",
        discussion: """
        Runs FitPrune's offline search (the authors' statistical_analysis: a statistics pass, then a binary search over \
        the retained attention mass α, 7 steps, against a FLOPs budget with this model's sizes) on the task's first \
        samples, once per reduction ratio, and writes the schemes to a JSON file. Use it with \
        `tokc run --method fitprune --param scheme=@FILE` or `tokc bench --methods fitprune --param fitprune.scheme=@FILE`: \
        each run picks the scheme whose reduction is closest to 1 − the kept fraction of its budget. The default \
        calibration task is the built-in task's validation split (disjoint from the test split the main job scores).
        """
    )

    @Option(name: .long, help: "LLaVA model folder (default: builtin/models/llava).")
    var model: String?
    @Option(name: .long, help: "Calibration task JSONL (default: builtin/tasks/scenes/val.jsonl).")
    var task: String?
    @Option(name: .long, help: "Calibration samples (the task's first N).")
    var samples = 16
    @Option(name: .long, help: "Comma-separated reduction ratios: fractions of the visual-token FLOPs to remove.")
    var ratios = "0.5,0.75,0.89"
    @Option(name: .long, help: "Where to write the schemes.")
    var out = "fitprune-schemes.json"
    @Option(name: .long, help: "Threads for BLAS and parallel work (default: all cores).")
    var threads: Int?

    func run() throws {
        do {
            try applyThreads(threads)
            guard samples >= 1 else { throw BenchError("--samples must be at least 1") }
            let list = try ratios.split(separator: ",").map { part -> Double in
                guard let r = Double(part.trimmingCharacters(in: .whitespaces)) else { throw BenchError("--ratios: '\(part)' is not a number") }
                return r
            }
            let folder = try model ?? VLMPaths.defaultModelFolder()
            let taskPath: String
            if let task { taskPath = task } else {
                guard let p = VLMPaths.resolve("builtin/tasks/scenes/val.jsonl") else { throw BenchError("built-in validation split not found; pass --task FILE.jsonl") }
                taskPath = p
            }
            let chosen = Array(try BenchTask.load(jsonl: taskPath).prefix(samples))
            printError("loading \(folder)")
            let runner = try VLMRunner(folder: folder)
            let file = try FitPruneFitting.fit(runner: runner, samples: chosen, ratios: list, taskName: taskPath, log: printError)
            try file.write(path: out)
            printError("schemes for reduction ratios \(file.schemes.keys.sorted().joined(separator: ", ")) written to \(out)")
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
    }
}
