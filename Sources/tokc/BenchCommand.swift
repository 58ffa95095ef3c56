import ArgumentParser
import Evaluation
import Foundation
import Models
import Runtime
import Tensors
import TokenCompression

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Sweep compression methods × budgets × samples and print the seed paper's efficiency table.",
        discussion: """
        With no options: the built-in model on the built-in task's 500-sample test split, every runnable \
        image-VLM method plus the uncompressed run, at 50%, 25% and 11% of the visual tokens (random and \
        pooling are always included): 24,500 rows, each run once (latencies are means over samples; \
        use --repeats/--warmup for per-row medians on small tasks, --limit for a quick look). Writes rows.jsonl (appended as rows finish; a rerun skips done rows), results.csv, \
        results.json (with a manifest), pareto.svg, pareto.png and report.html (one self-contained page: table, plots, \
        keep maps of the first samples) into --out. See docs/bench.md.

        With a ViT/DeiT image-classification folder as --model (and --task lines with image and answer = class \
        name), the classifier sweep: uncompressed, ToMe r = 2, 4, 8, 12, 16 per block, EViT keep rates 0.9, 0.7, \
        0.5 and, when --param sparse_tuning.adapters=FILE is given, Sparse-Tuning; per setting images/s at --batch \
        images per forward pass, GFLOPs per image (from the tokens each block ran), peak tensor memory, accuracy and \
        its change against uncompressed, top-1 agreement; the same outputs, merge maps of the first samples in \
        report.html. A list replaces a method's default values (--param tome.r=4,8). r beyond what the tokens allow \
        is clamped per block as ToMe's code does; the table's notes say where.

        With --task video: the seed's video table on the built-in video task (builtin/tasks/videos/test.jsonl) and \
        the built-in LLaVA-OneVision video model (builtin/models/llava-onevision-video; an error says which is \
        missing): random, FastV, PDrop, SparseVLM, DyCoke and VidCom² at 50%, 25% (the seed's) and 10% of the \
        video tokens, plus uncompressed. Any task whose lines have "video" (a frame folder or video file, relative \
        to the JSONL; optional "frames") runs the same way on a LLaVA-OneVision --model. The table leads with \
        LLM generation latency (the LLM's part of the prefill plus decoding), total latency (from the file on disk: \
        frame decoding, preprocessing, tower, projector, LLM), peak memory, throughput (samples/s of total time) \
        and accuracy with its change against uncompressed. A method that cannot run on a video prompt in this \
        build keeps its rows, failed with the reason.

        With --precisions f32,int8,int4 (LLaVA): the same sweep with the language model's linear layers at each \
        weight precision (copies in OUT/models/: F32, and int8/int4 as tokc quantize writes them), interleaved over \
        --rounds rounds so host load falls on every precision alike, each precision's usual outputs in OUT/P/, and \
        a composition table (OUT/precisions.md, .json): accuracy change of quantization alone, of the method alone, \
        their sum and both together; prefill and decode speedups alone, their product and both together.

        With --task diffusion (or a DiTPipeline folder as --model): the seed's diffusion table on the built-in \
        class-conditional DiT (builtin/models/dit-shapes, classes = builtin/models/vit-shapes's labels): uncached, \
        fewer steps (half, uncached: the honest baseline) and every caching method the sampler runs at its paper \
        default (--methods fora,toca:interval=3:ratio=0.1 picks methods and settings), each from the same noise \
        (seed + sample, class = sample mod classes; --limit samples, default 24; --steps, default 50; --guidance, \
        default 4). Per row: latency, transformer TFLOPs, measured speedup next to the FLOPs-predicted one, peak \
        tensor memory, the ViT classifier's accuracy on the images, the Fréchet distance to the shapes task's real \
        images in the classifier's pre-logit features (an FID stand-in), PSNR/SSIM against the uncached image from \
        the same noise. Writes diffusion.md, results.csv, results.json and grid.png (one column per row, rows = \
        samples) into --out.

        A row that fails (unreadable image, a method that cannot run on the input) is recorded with its \
        error and marked in the table; a rerun into the same --out retries failed rows. Exit status: 0 when \
        every row succeeded, 1 on a usage or setup error (bad option, unusable task file, no readable image \
        at all), 3 when the sweep finished but some rows failed (0 with --keep-going).
        """
    )

    @Option(name: .long, help: "LLaVA model folder (default: builtin/models/llava).")
    var model: String?
    @Option(name: .long, help: "Task JSONL (default: builtin/tasks/scenes/test.jsonl, 500 samples), 'video' for the built-in video task and model, or 'diffusion' for the diffusion table.")
    var task: String?
    @Option(name: .long, help: "Video samples: frames sampled uniformly from each video whose task line gives no 'frames' (default: every frame).")
    var frames: Int?
    @Option(name: .long, help: "Comma-separated methods (default: every runnable method).")
    var methods: String?
    @Option(name: .long, help: "Comma-separated budgets: fractions (0.5,0.25,0.11) or token counts (128,64) (LLaVA).")
    var budgets: String?
    @Option(name: .long, help: "Classifier sweeps: images per forward pass (throughput is measured at this batch size).")
    var batch = 32
    @Option(name: .long, help: "Use only the first N samples.")
    var limit: Int?
    @Option(name: .long, help: "Maximum generated tokens per sample.")
    var maxNewTokens = 8
    @Option(name: .long, help: "Timed runs per row (prefill time is their median).")
    var repeats = 1
    @Option(name: .long, help: "Untimed warm-up runs per row.")
    var warmup = 0
    @Option(name: .long, help: "Output folder.")
    var out = "bench-out"
    @Option(name: .long, help: "Run only work items k with k mod n == i (i from 0), e.g. 0/4.")
    var shard: String?
    @Option(name: .long, help: "Seed (the random baseline's selection).")
    var seed = 0
    @Option(name: .long, parsing: .singleValue, help: "Method parameter METHOD.NAME=VALUE (repeatable), e.g. fastv.layer=3.")
    var param: [String] = []
    @Option(name: .long, help: "Threads for BLAS and parallel work (default: all cores).")
    var threads: Int?
    @Option(name: .long, help: "Diffusion: sampler steps of the uncached and cached rows (default 50, DDIM-50 as ToCa and TaylorSeer).")
    var steps: Int?
    @Option(name: .long, help: "Diffusion: classifier-free guidance scale (default 4).")
    var guidance: Double?
    @Flag(name: .long, help: "Exit 0 even when some rows failed (a partial sweep is acceptable).")
    var keepGoing = false
    @Option(name: .long, help: "Also write the HTML report (always written as OUT/report.html) to this path.")
    var html: String?
    @Option(name: .long, help: "LLaVA: run the sweep with the language model's weights at these precisions (f32,int8,int4; f32 is the reference) and print whether quantization and the methods compose.")
    var precisions: String?
    @Option(name: .long, help: "With --precisions: interleaving rounds (each runs 1/rounds of the rows at every precision in turn).")
    var rounds = 10

    func run() throws {
        let status: Int32, failed: Int
        do {
            if let precisions {
                let outcome = try executePrecisions(try BenchPrecision.parseList(precisions))
                (status, failed) = (outcome.exitStatus(keepGoing: keepGoing), outcome.failed)
            } else {
                let outcome = try execute()
                (status, failed) = (outcome.exitStatus(keepGoing: keepGoing), outcome.failed)
            }
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        if status != 0 {
            printError("error: \(failed) row\(failed == 1 ? "" : "s") failed (see the table's notes and rows.jsonl); rerun to retry them, or pass --keep-going to accept a partial sweep")
            throw ExitCode(status)
        }
    }

    /// `--precisions`: one interleaved sweep per weight precision and the composition table.
    func executePrecisions(_ list: [BenchPrecision]) throws -> BenchPrecisionDriver.Outcome {
        guard task != BenchVideo.taskAlias else { throw BenchError("--precisions runs LLaVA image sweeps, not --task video") }
        guard html == nil else { throw BenchError("--precisions writes one report.html per precision (OUT/f32/report.html, ...); --html is not used") }
        try applyThreads(threads)
        let folder = try model ?? VLMPaths.defaultModelFolder()
        guard !ClassifierRunner.isClassifier(folder: folder) else { throw BenchError("--precisions applies to LLaVA models, not classifiers") }
        guard let taskPath = task ?? VLMPaths.resolve(VLMPaths.builtinTestSplit) else {
            throw BenchError("bundled task '\(VLMPaths.builtinTestSplit)' not found; pass --task FILE.jsonl")
        }
        let outcome = try BenchPrecisionDriver.run(try options(model: folder, task: taskPath), precisions: list, rounds: rounds, log: printError)
        print(outcome.markdown, terminator: "")
        fflush(stdout)
        printError("\(outcome.countsLine); per precision: \(out)/{\(list.map(\.rawValue).joined(separator: ","))}/ (the usual outputs); composition: \(out)/precisions.md, precisions.json")
        return outcome
    }

    func execute() throws -> BenchDriver.Outcome {
        try applyThreads(threads)
        if task == BenchDiffusion.taskAlias || (task == nil && model.map { DiffusionSampling.pipelineClass(folder: $0) != nil } == true) {
            return try executeDiffusion()
        }
        if steps != nil || guidance != nil { throw BenchError("--steps and --guidance apply to --task diffusion") }
        if task == BenchVideo.taskAlias {
            let builtin = try BenchVideo.builtin(model: model)
            return try execute(model: builtin.model, task: builtin.task)
        }
        let folder = try model ?? VLMPaths.defaultModelFolder()
        let taskPath: String
        if let task { taskPath = task } else if ClassifierRunner.isClassifier(folder: folder) {
            throw BenchError("a classifier sweep needs --task FILE.jsonl (one line per image: {\"image\": \"a.png\", \"answer\": \"class name\"})")
        } else {
            guard let p = VLMPaths.resolve(VLMPaths.builtinTestSplit) else {
                throw BenchError("bundled task '\(VLMPaths.builtinTestSplit)' not found; pass --task FILE.jsonl")
            }
            taskPath = p
        }
        return try execute(model: folder, task: taskPath)
    }

    func execute(model folder: String, task taskPath: String) throws -> BenchDriver.Outcome {
        let o = try options(model: folder, task: taskPath)
        let outcome = try BenchDriver.run(o, log: printError)
        if let html { try BenchOutput.copyReport(from: out, to: html) }
        print(outcome.markdown, terminator: "")
        fflush(stdout)  // the table first, then the closing line on stderr (they share a terminal)
        printError("\(outcome.countsLine); results in \(out)/ (rows.jsonl, results.csv, results.json, pareto.svg, pareto.png, report.html, keepmaps/)")
        return outcome
    }

    func options(model folder: String, task taskPath: String) throws -> BenchOptions {
        var o = BenchOptions(model: folder, task: taskPath)
        o.frames = frames
        o.methods = methods.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
        if let budgets {
            o.budgets = try BenchBudget.parseList(budgets)
            o.budgetsGiven = true
        }
        o.batchSize = batch
        o.limit = limit
        o.settings.maxNewTokens = maxNewTokens
        o.settings.repeats = repeats
        o.settings.warmup = warmup
        o.settings.seed = seed
        o.settings.parameters = try MethodParameters.parseQualified(param)
        o.out = out
        if let shard { o.shard = try BenchShard.parse(shard) }
        o.threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        o.toolkitVersion = ToolkitVersion.string
        return o
    }
}

extension BenchCommand {
    /// `--task diffusion` (or a DiTPipeline folder as --model): the seed's diffusion table.
    func executeDiffusion() throws -> BenchDriver.Outcome {
        for (name, given) in [("--precisions", precisions != nil), ("--budgets", budgets != nil), ("--frames", frames != nil),
                              ("--shard", shard != nil), ("--param", !param.isEmpty)] where given {
            throw BenchError("\(name) does not apply to --task diffusion (method settings go in --methods NAME:KEY=VALUE)")
        }
        var o = try BenchDiffusion.builtin(model: model)
        if let limit { o.samples = limit }
        if let steps { o.steps = steps }
        if let guidance { o.guidance = guidance }
        guard seed >= 0 else { throw BenchError("--seed must be ≥ 0") }
        o.seed = UInt64(seed)
        o.warmup = warmup
        o.out = out
        o.methods = try methods.map { list in
            try list.split(separator: ",").map { try BenchDiffusion.MethodSpec.parse(String($0).trimmingCharacters(in: .whitespaces)) }
        }
        // The candidates: every method the catalog says runs in the sampler (caching schedules and
        // in-block methods, as tokc generate --method builds them); delta-dit and delta_dit are one method.
        let candidates = MethodCatalog.diffusionMethods.map { $0.lowercased().replacingOccurrences(of: "-", with: "_") }
        let result = try BenchDiffusion.run(o, candidates: candidates, caching: GenerateCommand.samplerMethod, log: printError)
        try BenchDiffusionOutput.write(result, to: out)
        print(BenchDiffusionOutput.markdown(result), terminator: "")
        fflush(stdout)
        let failed = result.rows.filter { $0.error != nil }.count
        printError("\(result.rows.count) rows, \(failed) failed; results in \(out)/ (diffusion.md, results.csv, results.json, grid.png)")
        return result.outcome
    }
}
