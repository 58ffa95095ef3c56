import Foundation
import ModelIO
import Models
import Runtime
import Tensors

/// The seed's diffusion table: `tokc bench --task diffusion` (or `--model` a `DiTPipeline` folder).
///
/// Rows: the uncached sampler, "fewer steps" (the honest baseline: the same sampler with a fraction of
/// the steps and no cache), and every caching method the sampler runs, at its paper's default setting
/// (or the settings given). Which methods the sampler runs is not listed here: each candidate
/// (`tokc schedule`'s caching methods, the step caches, the catalog's in-block diffusion methods) is
/// built by the sampler's own factory (`tokc generate --method`'s) and module schedules are checked by
/// `DiTFeatureCache` against the model, so a method joins the table as soon as the sampler accepts it;
/// the others are named in the notes with the reason. Every row samples the same classes from the same noise (seed
/// per sample), so each cached image has its uncached twin for PSNR/SSIM.
public enum BenchDiffusion {
    public static let taskAlias = "diffusion"
    public static let builtinModel = "builtin/models/dit-shapes"
    public static let builtinClassifier = "builtin/models/vit-shapes"
    public static let builtinRealTask = "builtin/tasks/shapes/test.jsonl"

    /// A method at one setting: `fora`, `toca:interval=3:ratio=0.1`, `taylorseer:interval=4:order=2`.
    public struct MethodSpec: Sendable, Equatable, CustomStringConvertible {
        public var name: String
        public var interval: Int?
        public var ratio: Double?
        /// Other settings as `--param NAME=VALUE` strings.
        public var params: [String]

        public init(name: String, interval: Int? = nil, ratio: Double? = nil, params: [String] = []) {
            self.name = name
            self.interval = interval
            self.ratio = ratio
            self.params = params
        }

        public static func parse(_ text: String) throws -> MethodSpec {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard let name = parts.first?.trimmingCharacters(in: .whitespaces).lowercased(), !name.isEmpty else {
                throw BenchError("empty method in '\(text)'")
            }
            var spec = MethodSpec(name: name)
            for item in parts.dropFirst() {
                let kv = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard kv.count == 2, !kv[0].isEmpty else { throw BenchError("method setting '\(item)' in '\(text)' is not NAME=VALUE") }
                switch kv[0] {
                case "interval":
                    guard let v = Int(kv[1]), v >= 1 else { throw BenchError("\(name): interval must be an integer ≥ 1, got '\(kv[1])'") }
                    spec.interval = v
                case "ratio":
                    guard let v = Double(kv[1]), v >= 0 else { throw BenchError("\(name): ratio must be a number ≥ 0, got '\(kv[1])'") }
                    spec.ratio = v
                default: spec.params.append("\(kv[0])=\(kv[1])")
                }
            }
            return spec
        }

        public var description: String {
            var s: [String] = []
            if let interval { s.append("interval=\(interval)") }
            if let ratio { s.append("ratio=\(ratio)") }
            s += params
            return s.isEmpty ? name : "\(name):\(s.joined(separator: ":"))"
        }
    }

    /// What one method contributes to a sampling run, as the pipeline's options take it: a module schedule
    /// (FORA, ToCa, TaylorSeer, …), a step cache (TeaCache, Δ-DiT) or token merging (ToMe-SD).
    public struct SamplerMethod: Sendable {
        public var caching: DiTCaching?
        public var stepCaching: DiTStepCache.Policy?
        public var tokenMerging: DiTTokenMergingSettings?
        /// The settings it resolved to, in words (e.g. `tokc schedule`'s line "S=50, N=3, 28 layers").
        public var settings: String
        public init(caching: DiTCaching? = nil, stepCaching: DiTStepCache.Policy? = nil, tokenMerging: DiTTokenMergingSettings? = nil,
                    settings: String) {
            self.caching = caching
            self.stepCaching = stepCaching
            self.tokenMerging = tokenMerging
            self.settings = settings
        }
    }

    /// What a method is built for: the run's steps, the model's blocks and tokens, the sampler's timesteps,
    /// and the code family of the methods that have several (nil: DiT; "PixArt" for PixArt-α).
    public struct SamplerContext: Sendable {
        public var steps: Int
        public var layers: Int
        public var tokens: Int
        public var timesteps: [Float]
        public var family: String?

        public init(steps: Int, layers: Int, tokens: Int, timesteps: [Float], family: String? = nil) {
            self.steps = steps
            self.layers = layers
            self.tokens = tokens
            self.timesteps = timesteps
            self.family = family
        }
    }

    /// Builds a method for a model the way `tokc generate --method` does.
    public typealias CachingFactory = (_ spec: MethodSpec, _ context: SamplerContext) throws -> SamplerMethod

    public struct Options: Sendable {
        public var model: String
        public var classifier: String
        /// JSONL whose lines give `image` (relative to the file): the real images of the Fréchet distance.
        public var realTask: String
        public var realLimit = 240
        public var samples = 24
        public var steps = 50
        public var guidance = 4.0
        /// Steps of the "fewer steps" row, as a fraction of `steps`.
        public var fewerSteps = 0.5
        public var seed: UInt64 = 0
        /// nil: every candidate the sampler accepts, at its default setting.
        public var methods: [MethodSpec]?
        public var warmup = 0
        public var out = "bench-out"
        public init(model: String, classifier: String, realTask: String) {
            self.model = model
            self.classifier = classifier
            self.realTask = realTask
        }
    }

    /// One row of the table (per-sample means).
    public struct Row: Sendable {
        public var name: String
        public var setting: String
        public var steps: Int
        public var samplingSeconds = 0.0
        public var vaeSeconds = 0.0
        public var tflops = 0.0
        public var measuredSpeedup = 0.0
        public var predictedSpeedup = 0.0
        public var peakTensorBytes = 0
        public var accuracy = 0.0
        public var frechet = 0.0
        /// nil on the uncached row (it is the reference).
        public var psnr: Double?
        public var ssim: Double?
        public var error: String?
        var images: [RGBImage] = []
        var features: [[Double]] = []
        var correct = 0
    }

    public struct Result: Sendable {
        public var rows: [Row]
        public var notes: [String]
        public var options: Options
        public var realImages: Int
        public var grid: RGBImage?
    }

    /// The built-in model, classifier and real images, found as `VLMPaths.resolve` finds the other
    /// bundled files; an error naming what is missing.
    public static func builtin(model given: String?, resolve: (String) -> String? = { VLMPaths.resolve($0) }) throws -> Options {
        var missing: [String] = []
        let model = given ?? resolve(builtinModel)
        if model == nil { missing.append("model '\(builtinModel)' (pass --model a DiTPipeline folder)") }
        let classifier = resolve(builtinClassifier)
        if classifier == nil { missing.append("classifier '\(builtinClassifier)'") }
        let real = resolve(builtinRealTask)
        if real == nil { missing.append("real images '\(builtinRealTask)'") }
        guard let model, let classifier, let real else {
            throw BenchError("--task diffusion needs the built-in \(missing.joined(separator: " and ")), not found in the current directory or above the executable")
        }
        return Options(model: model, classifier: classifier, realTask: real)
    }

    public static func run(_ o: Options, candidates: [String], caching: CachingFactory, log: (String) -> Void) throws -> Result {
        guard o.samples >= 2 else { throw BenchError("--limit must be ≥ 2 samples (the Fréchet distance needs two), got \(o.samples)") }
        guard o.steps >= 2 else { throw BenchError("--steps must be ≥ 2, got \(o.steps)") }
        guard o.fewerSteps > 0, o.fewerSteps < 1 else { throw BenchError("the fewer-steps fraction must be in (0, 1), got \(o.fewerSteps)") }
        if let cls = DiffusionSampling.pipelineClass(folder: o.model), cls != "DiTPipeline" {
            throw BenchError("\(o.model) is a \(cls) folder; the diffusion bench runs class-conditional DiTPipeline folders (its classes are the classifier's labels)")
        }
        let pipeline = try DiTPipeline(folder: o.model)
        let classifier = try ClassifierRunner(folder: o.classifier)
        let config = pipeline.transformer.config
        let classes = min(config.classCount, classifier.model.classCount)
        guard classes >= 1 else { throw BenchError("the model or the classifier has no classes") }
        var notes: [String] = []
        if config.classCount != classifier.model.classCount {
            notes.append("the model has \(config.classCount) classes, the classifier \(classifier.model.classCount): samples use classes 0..<\(classes)")
        }

        // Real images: their classifier features, once.
        let real = try realFeatures(o, classifier: classifier)
        log("real images: \(real.count) from \(o.realTask)")

        // Rows to run.
        var plan: [(name: String, setting: String, steps: Int, method: SamplerMethod?)] = [("uncached", "", o.steps, nil)]
        let fewer = max(1, Int((Double(o.steps) * o.fewerSteps).rounded()))
        plan.append(("fewer steps", "\(fewer) of \(o.steps) steps", fewer, nil))
        var scheduler = try DiffusionSchedulers.make(config: pipeline.schedulerConfig)
        try scheduler.setTimesteps(o.steps)
        let context = SamplerContext(steps: o.steps, layers: config.layers, tokens: config.tokenCount, timesteps: scheduler.timesteps)
        var seen: Set<String> = []
        let specs = o.methods ?? candidates.map { $0.lowercased() }.filter { seen.insert($0).inserted }.map { MethodSpec(name: $0) }
        var failedPlans: [Row] = []
        for spec in specs {
            do {
                let m = try caching(spec, context)
                // The sampler's own check of a module schedule against the model and its timesteps.
                _ = try m.caching?.cache(layers: config.layers, modules: DiTFeatureCache.ditModules, timesteps: context.timesteps)
                plan.append((spec.name, m.settings, o.steps, m))
            } catch {
                if o.methods == nil {
                    notes.append("\(spec.name): not runnable in this sampler at its default setting (\(error))")
                } else {
                    var row = Row(name: spec.name, setting: spec.description, steps: o.steps)
                    row.error = "\(error)"
                    failedPlans.append(row)
                }
            }
        }

        // One untimed uncached run first: the first row would otherwise pay the process's cold start
        // (page faults of the mapped weights, BLAS thread start) and inflate every measured speedup.
        _ = try generate(pipeline, o, sample: 0, classes: classes, steps: o.steps, method: nil)
        var rows: [Row] = []
        for entry in plan {
            log("\(entry.name) \(entry.setting): \(o.samples) samples × \(entry.steps) steps")
            var row = Row(name: entry.name, setting: entry.setting, steps: entry.steps)
            do {
                for _ in 0..<o.warmup { _ = try generate(pipeline, o, sample: 0, classes: classes, steps: entry.steps, method: entry.method) }
                MemoryAccounting.resetPeak()
                var flops = 0.0
                for i in 0..<o.samples {
                    let r = try generate(pipeline, o, sample: i, classes: classes, steps: entry.steps, method: entry.method)
                    if i == 0, let reason = r.tokenMerging?.noOpReason { notes.append("\(entry.name): merged nothing (explicit no-op): \(reason)") }
                    row.samplingSeconds += r.stepSeconds.reduce(0, +)
                    row.vaeSeconds += r.vaeSeconds
                    flops += r.transformerFLOPsTotal
                    row.images.append(r.image)
                }
                row.peakTensorBytes = MemoryAccounting.peakBytes
                let n = Double(o.samples)
                row.samplingSeconds /= n
                row.vaeSeconds /= n
                row.tflops = flops / n / 1e12
                let prepared = try row.images.map { try classifier.prepare($0) }
                let (logits, features) = try classifier.logitsAndFeatures(prepared)
                for i in 0..<o.samples {
                    let scores = logits.row(i)
                    let predicted = scores.indices.max { scores[$0] < scores[$1] } ?? -1
                    if predicted == i % classes { row.correct += 1 }
                }
                row.accuracy = Double(row.correct) / n
                row.features = (0..<o.samples).map { features.row($0).map(Double.init) }
                row.frechet = try FrechetDistance.between(row.features, real)
            } catch {
                row.error = "\(error)"
            }
            rows.append(row)
        }
        // Speedups and fidelity against the uncached row.
        if let base = rows.first, base.error == nil {
            for k in rows.indices where rows[k].error == nil {
                rows[k].measuredSpeedup = rows[k].samplingSeconds > 0 ? base.samplingSeconds / rows[k].samplingSeconds : 0
                rows[k].predictedSpeedup = rows[k].tflops > 0 ? base.tflops / rows[k].tflops : 0
                guard k > 0 else { continue }
                do {
                    let psnrs = try zip(rows[k].images, base.images).map { try ImageFidelity.psnr($0, $1) }
                    let ssims = try zip(rows[k].images, base.images).map { try ImageFidelity.ssim($0, $1) }
                    rows[k].psnr = psnrs.reduce(0, +) / Double(psnrs.count)
                    rows[k].ssim = ssims.reduce(0, +) / Double(ssims.count)
                } catch {
                    rows[k].error = "\(error)"
                }
            }
        }
        rows += failedPlans
        let grid = try? BenchDiffusionOutput.grid(rows.filter { $0.error == nil }.map(\.images))
        return Result(rows: rows, notes: notes, options: o, realImages: real.count, grid: grid)
    }

    static func generate(_ pipeline: DiTPipeline, _ o: Options, sample i: Int, classes: Int, steps: Int,
                         method: SamplerMethod?) throws -> DiffusionGenerationResult {
        try pipeline.generate(DiTGenerationOptions(classLabel: i % classes, steps: steps, guidance: o.guidance, seed: o.seed &+ UInt64(i),
                                                   caching: method?.caching, tokenMerging: method?.tokenMerging,
                                                   stepCaching: method?.stepCaching))
    }

    /// Classifier features of the real images (the first `realLimit` lines with an `image`).
    static func realFeatures(_ o: Options, classifier: ClassifierRunner) throws -> [[Double]] {
        let text: String
        do { text = try String(contentsOfFile: o.realTask, encoding: .utf8) } catch {
            throw BenchError("\(o.realTask): cannot read the real-image task (\(error))")
        }
        let base = URL(fileURLWithPath: o.realTask).deletingLastPathComponent()
        var paths: [String] = []
        for (n, line) in text.split(separator: "\n").enumerated() where paths.count < o.realLimit {
            guard let data = line.data(using: .utf8), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw BenchError("\(o.realTask):\(n + 1): not a JSON object")
            }
            if let image = object["image"] as? String { paths.append(base.appendingPathComponent(image).path) }
        }
        guard paths.count >= 2 else { throw BenchError("\(o.realTask): needs at least 2 lines with an \"image\" (found \(paths.count))") }
        var out: [[Double]] = []
        for chunk in stride(from: 0, to: paths.count, by: 32) {
            let images = try paths[chunk..<min(chunk + 32, paths.count)].map { try classifier.prepare(path: $0) }
            let f = try classifier.logitsAndFeatures(images).features
            out += (0..<f.rows).map { f.row($0).map(Double.init) }
        }
        return out
    }
}
