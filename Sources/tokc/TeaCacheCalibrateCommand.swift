import ArgumentParser
import Foundation
import ModelIO
import Models
import Runtime
import TokenCompression

struct TeaCacheCalibrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "teacache-calibrate",
        abstract: "Fit TeaCache's rescaling polynomial for a DiT or PixArt-α pipeline from uncached runs.",
        discussion: """
        Samples without caching, once per class and seed (DiT) or per seed (PixArt-α),
        records per transformer call the relative L1 change of block 0's modulated
        input and of the model output against the previous call, and fits
        output ≈ P(input) by least squares (degree 4, as TeaCache's shipped
        coefficients). Prints the coefficients and writes them with the pairs as JSON
        (--out), which `tokc generate --method teacache --param calibration=@FILE`
        reads. Use the steps, guidance and scheduler you will generate with.
        """
    )

    @Option(name: .long, help: "Pipeline folder (DiTPipeline or PixArtAlphaPipeline).")
    var model: String

    @Option(name: .customLong("class"), help: "Class ids of a DiT pipeline, comma-separated.")
    var classes: String?

    @Option(name: .long, help: "Caption embeddings of a PixArt-α pipeline (as tokc generate).")
    var promptEmbeds: String?

    @Option(name: .long, help: "Seeds of the starting latents, comma-separated.")
    var seeds: String = "0,1"

    @Option(name: .long, help: "Sampling steps (default: DiT 50, PixArt 20).")
    var steps: Int?

    @Option(name: .long, help: "Guidance scale (default: DiT 4, PixArt 4.5).")
    var guidance: Double?

    @Option(name: .long, help: "Scheduler class instead of the folder's.")
    var scheduler: String?

    @Option(name: .long, help: "Polynomial degree (TeaCache: 4).")
    var degree: Int = TeaCache.calibrationDegree

    @Option(name: .long, help: "Write the calibration JSON here.")
    var out: String?

    @Option(name: .long, help: "Threads for BLAS and the toolkit's loops (default: all cores).")
    var threads: Int?

    /// Option checks, before any pipeline loads: a bad --degree or list would otherwise surface only
    /// after every sampling run.
    func checkOptions() throws {
        guard (classes == nil) != (promptEmbeds == nil) else {
            throw ModelError("give exactly one of --class N,M,... (DiT) and --prompt-embeds FILE (PixArt-α)")
        }
        _ = try Self.list(seeds, name: "--seeds") { UInt64($0) }
        if let classes { _ = try Self.list(classes, name: "--class") { Int($0) } }
        let steps = self.steps ?? (promptEmbeds != nil ? 20 : 50)
        guard steps >= 2 else { throw ModelError("--steps must be ≥ 2 (changes are between consecutive calls), got \(steps)") }
        guard degree >= 0 else { throw ModelError("--degree must be ≥ 0, got \(degree)") }
    }

    func run() throws {
        do {
            try applyThreads(threads)
            try checkOptions()
            let seedList = try Self.list(seeds, name: "--seeds") { UInt64($0) }
            let isPixArt = promptEmbeds != nil
            let steps = self.steps ?? (isPixArt ? 20 : 50)
            let guidance = self.guidance ?? (isPixArt ? 4.5 : 4)
            let pairs: [(input: Float, output: Float)]
            var source = "\(model), seeds \(seeds), \(steps) steps, guidance \(guidance)"
            if let scheduler { source += ", \(scheduler)" }
            if let promptEmbeds {
                let pipeline = try PixArtPipeline(folder: model)
                pairs = try TeaCacheCalibration.record(pipeline, captions: try PromptEmbeddings(file: promptEmbeds), seeds: seedList,
                                                       steps: steps, guidance: guidance, scheduler: scheduler)
                source += ", prompt embeddings \(promptEmbeds)"
            } else {
                let classList = try Self.list(classes ?? "", name: "--class") { Int($0) }
                let pipeline = try DiTPipeline(folder: model)
                pairs = try TeaCacheCalibration.record(pipeline, classes: classList, seeds: seedList, steps: steps,
                                                       guidance: guidance, scheduler: scheduler)
                source += ", classes \(classes ?? "")"
            }
            let calibration = try TeaCacheCalibration(inputChanges: pairs.map { Double($0.input) }, outputChanges: pairs.map { Double($0.output) },
                                                      source: source, degree: degree)
            print("\(pairs.count) pairs (input rel-L1 → output rel-L1), degree \(degree), rms error \(String(format: "%.3g", calibration.rmsError))")
            print("coefficients (highest degree first): " + calibration.coefficients.map { String($0) }.joined(separator: ","))
            if let out {
                try calibration.write(to: out)
                printError("calibration written to \(out); use: tokc generate --method teacache --param calibration=@\(out) --param threshold=T")
            }
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
    }

    static func list<T>(_ text: String, name: String, _ parse: (String) -> T?) throws -> [T] {
        let items = text.split(separator: ",").map { parse($0.trimmingCharacters(in: .whitespaces)) }
        guard !items.isEmpty, items.allSatisfy({ $0 != nil }) else { throw ModelError("\(name) must be a comma-separated list, got '\(text)'") }
        return items.map { $0! }
    }
}
