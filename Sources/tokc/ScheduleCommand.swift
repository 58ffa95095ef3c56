import ArgumentParser
import Evaluation
import Foundation
import TokenCompression

struct ScheduleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule",
        abstract: "Print a diffusion caching method's per-step, per-layer decisions and its share of full computation.",
        discussion: """
        One row per sampler call (in call order), one cell per layer with one
        letter per module: C compute, R reuse, P partial (only fresh tokens
        recomputed), F forecast, - skip. Then the fraction of (step, layer,
        module) slots computed in full, and the count of each action.

        Defaults are the papers' settings:
          toca  DiT-XL/2 DDPM-250: --steps 250 --interval 4 --ratio 0.07
                --scheduler ToCa-ddpm250, 28 layers, 256 tokens.
                --steps 50 alone selects the DDIM-50 command
                (--interval 3, --scheduler ToCa-ddim50).
                --model PixArt: 20 steps, --interval 3, --ratio 0.3,
                --scheduler ToCa. --ratio 0 gives FORA behaviour.
          duca  DuCa-DiT DDIM-50: --steps 50 --interval 3 --ratio 0.05
                --scheduler ToCa, 28 layers, 256 tokens.
                --model PixArt: 20 steps, --interval 3 (constant),
                --ratio 0.75, --scheduler ToCa (PixArt's).
                --model OpenSora: 30 steps, per-module intervals
                --param intervals=3,3,6,3 (spatial attn, temporal attn,
                cross-attn, mlp); the two "layers" shown are the spatial
                and temporal block kinds.
          fora  DDPM-250: --steps 250 --interval 3, 28 layers.
          taylorseer  DiT-XL/2 DDIM-50: --steps 50 --interval 4
                --param order=4, 28 layers; --model FLUX: --steps 28
                --interval 6 --param order=1, 19 layers.
          tgate  PixArt-α, 25 steps: --param gate=15, sp=3, fi=1,
                warmup=2, 28 layers (modules self-attn, cross-attn).
          pab   Open-Sora 1.2, 30 steps, 28 blocks: spatial range 2,
                temporal 4, cross 6 inside timesteps (450, 930), MLP
                broadcast at 676/788/864. Timesteps default to the plain
                rectified-flow grid 1000·(1 − i/S); give the sampler's
                real ones with --param timesteps=t0,t1,...
                --param spatial=LO,HI,RANGE (temporal=, cross=; RANGE 0
                = off), mlp=off or mlp=T1,T2,..., mlp-blocks=, mlp-skip=,
                reuse-gate=computing (VideoSys) | current (diffusers).
                --model DiT / PixArt: image blocks (self-attention by the
                spatial rule, cross-attention by the cross rule, MLP).
          teacache  FLUX, 28 steps, --param threshold=0.6 (the paper's
                fast setting; 0.25 and 0.4 also published). Decisions
                depend on the input: pass the per-step relative L1
                distances of the modulated input with
                --param distances=d0,d1,... or distances=@FILE (one per
                line); --model OpenSora / Latte use their coefficients;
                --model DiT / PixArt: no rescaling (threshold 0.1) unless
                --param coefficients=c0,... or calibration=@FILE.
          delta_dit  (no official code) 20 steps, 28 blocks, --interval 3,
                --param boundary=10 (steps/2), blocks=14 (half), first=1:
                cached calls skip the rear blocks before the boundary and
                the front blocks after it (R = deviation reused).
        Options a method does not use are rejected. Settings beyond the
        common options go in --param NAME=VALUE.
        """
    )

    @Option(name: .long, help: "Caching method (\(ScheduleCommand.supported.joined(separator: ", "))).")
    var method: String

    @Option(name: .long, help: "Sampler steps S (default: the method's paper setting).")
    var steps: Int?

    @Option(name: .long, help: "Full-step interval: N0 (toca, duca) or the cache interval N (fora).")
    var interval: Int?

    @Option(name: .long, help: "Blocks per step (default 28, DiT-XL/2 / PixArt-XL/2).")
    var layers: Int?

    @Option(name: .long, help: "Base fresh ratio r0 (toca, duca).")
    var ratio: Double?

    @Option(name: .long, help: "Fresh-ratio schedule (toca: ToCa-ddpm250, ToCa-ddim50, ToCa (PixArt), constant, linear; duca: ToCa, constant, linear).")
    var scheduler: String?

    @Option(name: .long, help: "Code family (toca: DiT, PixArt; duca: DiT, PixArt, OpenSora; pab: OpenSora, DiT, PixArt).")
    var model: String?

    @Option(name: .long, help: "Image tokens N, for the fresh-token counts (default 256).")
    var tokens: Int?

    @Option(name: .long, help: "Method-specific setting NAME=VALUE (repeatable).")
    var param: [String] = []

    @Option(name: .long, help: "Layers shown per row.")
    var maxLayers: Int = 64

    /// How to build each caching method's schedule from the options: ONE entry per method.
    /// To add a method, add a line such as
    /// `"taylorseer": { o in let p = ...(from o); return ("…settings…", try TaylorSeer.schedule(p)) },`
    static let builders: [String: (ScheduleOptions) throws -> (settings: String, schedule: CacheSchedule)] = [
        "toca": tocaSchedule,
        "duca": ducaSchedule,
        "fora": foraSchedule,
        "taylorseer": taylorSeerSchedule,
        "tgate": tgateSchedule,
        "pab": pabSchedule,
        "teacache": teaCacheSchedule,
        "delta_dit": deltaDiTSchedule,
    ]

    static var supported: [String] { builders.keys.sorted() }

    func validate() throws {
        guard Self.builders[method.lowercased()] != nil else {
            throw ValidationError("unknown caching method '\(method)'; supported: \(Self.supported.joined(separator: ", "))")
        }
        if let s = steps, s < 1 { throw ValidationError("--steps must be ≥ 1, got \(s)") }
        if let n = interval, n < 1 { throw ValidationError("--interval must be ≥ 1, got \(n)") }
        if let l = layers, l < 1 { throw ValidationError("--layers must be ≥ 1, got \(l)") }
        guard maxLayers >= 1 else { throw ValidationError("--max-layers must be ≥ 1") }
    }

    func run() throws {
        let name = method.lowercased()
        let options = try ScheduleOptions(steps: steps, interval: interval, layers: layers, ratio: ratio,
                                          scheduler: scheduler, model: model, tokens: tokens, params: param)
        let built: (settings: String, schedule: CacheSchedule)
        do {
            built = try Self.builders[name]!(options)
            try options.rejectUnused(method: name)
        } catch let e as ValidationError {
            printError("error: \(e.message)")
            throw ExitCode.validationFailure
        } catch {
            printError("error: \(name): \(error)")
            throw ExitCode.validationFailure
        }
        print("\(name): \(built.settings)  (rows are sampler calls in call order)")
        print(built.schedule.table(maxLayers: maxLayers))
        var counts: [Character: Int] = [:]
        for step in built.schedule.actions { for layer in step { for a in layer { counts[a.code, default: 0] += 1 } } }
        let total = counts.values.reduce(0, +)
        let parts = [CacheAction.compute, .partial, .reuse, .forecast, .skip].compactMap { a -> String? in
            guard let c = counts[a.code] else { return nil }
            return "\(a) \(c) (\(String(format: "%.1f", 100 * Double(c) / Double(max(total, 1))))%)"
        }
        print("slots: " + parts.joined(separator: ", "))
    }

    // MARK: - Builders

    /// Fresh tokens per `[call][layer][module]` (schedule module order; 0 where the module is not
    /// partial) of the methods whose schedules have partial steps, from the same options as `builders`:
    /// what `tokc flops` needs to count a partial step's rows.
    static let freshTokenBuilders: [String: (ScheduleOptions) throws -> [[[Int]]]] = [
        "toca": { o in DiffusionFlopsRequest.freshTokens(try ToCa.schedule(try tocaParameters(o))) },
        "duca": { o in
            guard (o.model() ?? "DiT").lowercased() != "opensora" else { throw ValidationError("duca: fresh-token counts exist for the DiT and PixArt schedules only") }
            return DiffusionFlopsRequest.freshTokens(try DuCa.schedule(try ducaParameters(o)))
        },
    ]

    /// ToCa's parameters from the options (the paper's setting for the model family unless overridden).
    static func tocaParameters(_ o: ScheduleOptions) throws -> ToCa.Parameters {
        let modelName = o.model() ?? "DiT"
        guard let model = ToCa.Model.allCases.first(where: { $0.rawValue.lowercased() == modelName.lowercased() }) else {
            throw ValidationError("toca --model must be DiT or PixArt, got '\(modelName)'")
        }
        let steps = o.steps()
        var p = model == .pixart ? ToCa.Parameters.pixart : (steps == 50 ? ToCa.Parameters.ditDDIM50 : ToCa.Parameters())
        if let s = steps { p.numSteps = s }
        if let n = o.interval() { p.freshThreshold = n }
        if let l = o.layers() { p.numLayers = l }
        if let r = o.ratio() { p.freshRatio = r }
        if let t = o.tokens() { p.numTokens = t }
        if let s = o.scheduler() { p.ratioSchedule = try ToCa.RatioSchedule.named(s, model: model) }
        return p
    }

    static func tocaSchedule(_ o: ScheduleOptions) throws -> (settings: String, schedule: CacheSchedule) {
        let p = try tocaParameters(o)
        let model = p.model
        let schedule = try ToCa.schedule(p)
        return ("\(model.rawValue), S=\(p.numSteps), N0=\(p.freshThreshold), r0=\(p.freshRatio), \(p.ratioSchedule.rawValue), \(p.numLayers) layers, \(p.numTokens) tokens", schedule.cacheSchedule)
    }

    static func ducaSchedule(_ o: ScheduleOptions) throws -> (settings: String, schedule: CacheSchedule) {
        let modelName = o.model() ?? "DiT"
        guard let model = DuCa.Model.allCases.first(where: { $0.rawValue.lowercased() == modelName.lowercased() }) else {
            throw ValidationError("duca --model must be DiT, PixArt or OpenSora, got '\(modelName)'")
        }
        if model == .openSora {
            var p = DuCa.Parameters.openSora
            if let s = o.steps() { p.numSteps = s }
            if let iv = try o.ints("intervals") { p.openSoraIntervals = iv }
            let s = try DuCa.openSoraSchedule(p)
            return ("OpenSora, S=\(p.numSteps), intervals spatial/temporal/cross/mlp \(p.openSoraIntervals.map(String.init).joined(separator: "/")); layers = block kinds (spatial, temporal)", s.cacheSchedule)
        }
        let p = try ducaParameters(o)
        let s = try DuCa.schedule(p)
        let interval = p.model == .pixart ? " (constant)" : ""
        return ("\(p.model.rawValue), S=\(p.numSteps), N0=\(p.freshThreshold)\(interval), r0=\(p.freshRatio), \(p.ratioSchedule == .ditDDIM50 ? "ToCa" : p.ratioSchedule.rawValue), \(p.numLayers) layers, \(p.numTokens) tokens", s.cacheSchedule)
    }

    /// DuCa-DiT's or DuCa-PixArt's parameters from the options (shared with `tokc generate --method duca`).
    static func ducaParameters(_ o: ScheduleOptions) throws -> DuCa.Parameters {
        let modelName = o.model() ?? "DiT"
        guard let model = DuCa.Model.allCases.first(where: { $0.rawValue.lowercased() == modelName.lowercased() }), model != .openSora else {
            throw ValidationError("duca --model must be DiT or PixArt here, got '\(modelName)'")
        }
        var p = model == .pixart ? DuCa.Parameters.pixart : DuCa.Parameters()
        if let s = o.steps() { p.numSteps = s }
        if let n = o.interval() { p.freshThreshold = n }
        if let l = o.layers() { p.numLayers = l }
        if let r = o.ratio() { p.freshRatio = r }
        if let t = o.tokens() { p.numTokens = t }
        if let s = o.scheduler() { p.ratioSchedule = try DuCa.Parameters.ratioSchedule(named: s, model: model) }
        return p
    }

    static func foraSchedule(_ o: ScheduleOptions) throws -> (settings: String, schedule: CacheSchedule) {
        var p = FORA.Parameters()
        if let s = o.steps() { p.numSteps = s }
        if let n = o.interval() { p.interval = n }
        if let l = o.layers() { p.numLayers = l }
        return ("S=\(p.numSteps), N=\(p.interval), \(p.numLayers) layers", try FORA.schedule(p))
    }

    static func taylorSeerSchedule(_ o: ScheduleOptions) throws -> (settings: String, schedule: CacheSchedule) {
        let family = (o.model() ?? "DiT").lowercased()
        let p: TaylorSeer.Parameters
        let steps: Int, layers: Int
        switch family {
        case "dit":
            p = try TaylorSeer.Parameters.dit(interval: o.interval() ?? 4, maxOrder: try o.int("order") ?? 4)
            steps = o.steps() ?? 50
            layers = o.layers() ?? 28
        case "flux":
            p = try TaylorSeer.Parameters.flux(interval: o.interval() ?? 6, maxOrder: try o.int("order") ?? 1)
            steps = o.steps() ?? 28
            layers = o.layers() ?? 19
        default: throw ValidationError("taylorseer --model must be DiT or FLUX, got '\(family)'")
        }
        return ("\(family == "dit" ? "DiT" : "FLUX"), S=\(steps), N=\(p.interval), order \(p.maxOrder), \(layers) layers",
                try TaylorSeer.schedule(steps: steps, layers: layers, parameters: p))
    }

    static func tgateSchedule(_ o: ScheduleOptions) throws -> (settings: String, schedule: CacheSchedule) {
        let p = try tgateParameters(o)
        let steps = o.steps() ?? 25, layers = o.layers() ?? 28
        return ("S=\(steps), gate step \(p.gateStep), sp \(p.semanticsInterval), fi \(p.fidelityInterval), warm-up \(p.warmUp), \(layers) layers",
                try TGate.schedule(steps: steps, layers: layers, parameters: p))
    }

    /// T-GATE's parameters from `--param gate, sp, fi, warmup` (shared with `tokc generate --method tgate`).
    static func tgateParameters(_ o: ScheduleOptions) throws -> TGate.Parameters {
        var p = try TGate.Parameters()
        if let g = try o.int("gate") { p.gateStep = g }
        if let v = try o.int("sp") { p.semanticsInterval = v }
        if let v = try o.int("fi") { p.fidelityInterval = v }
        if let v = try o.int("warmup") { p.warmUp = v }
        try p.validate()
        return p
    }

    static func pabSchedule(_ o: ScheduleOptions) throws -> (settings: String, schedule: CacheSchedule) {
        let family = (o.model() ?? "OpenSora").lowercased()
        guard ["opensora", "dit", "pixart"].contains(family) else {
            throw ValidationError("pab --model must be OpenSora, DiT or PixArt, got '\(family)'")
        }
        let p = try pabParameters(o, temporal: family == "opensora")
        let steps = o.steps() ?? 30, layers = o.layers() ?? 28
        let timesteps = try o.ints("timesteps") ?? (0..<steps).map { Int(1000.0 * (1.0 - Double($0) / Double(steps))) }
        let shown = timesteps.prefix(4).map(String.init).joined(separator: ",")
        if family == "opensora" {
            return ("Open-Sora defaults, \(timesteps.count) calls, \(layers) blocks, timesteps \(shown)…",
                    try PAB.schedule(timesteps: timesteps, layers: layers, parameters: p))
        }
        return ("\(family == "dit" ? "DiT" : "PixArt"): self-attention by the spatial rule, \(family == "dit" ? "" : "cross-attention by the cross rule, ")MLP by the spatial MLP rule; \(timesteps.count) calls, \(layers) blocks, timesteps \(shown)…",
                try PAB.imageSchedule(timesteps: timesteps, layers: layers, crossAttention: family == "pixart", parameters: p))
    }

    /// PAB's parameters: the Open-Sora defaults, changed by `--param spatial=LO,HI,RANGE` (and `temporal=`,
    /// `cross=`; RANGE 0 turns that kind off), `mlp=off` or `mlp=T1,T2,...` (the MLP broadcast timesteps),
    /// `mlp-blocks=0,1,...`, `mlp-skip=K` and `reuse-gate=computing|current` (the gate of a reused term:
    /// VideoSys's or diffusers'; no effect on the schedule). Shared with `tokc generate --method pab`.
    static func pabParameters(_ o: ScheduleOptions, temporal: Bool) throws -> PAB.Parameters {
        var p = try PAB.Parameters.openSora()
        func broadcast(_ key: String) throws -> PAB.Broadcast?? {
            guard let v = try o.ints(key) else { return .none }
            guard v.count == 3 else { throw ValidationError("--param \(key) must be LO,HI,RANGE, got \(v.count) numbers") }
            return .some(v[2] == 0 ? nil : PAB.Broadcast(lower: v[0], upper: v[1], range: v[2]))
        }
        if let b = try broadcast("spatial") { p.spatial = b }
        if temporal, let b = try broadcast("temporal") { p.temporal = b }
        if let b = try broadcast("cross") { p.cross = b }
        var timesteps = [676, 788, 864], blocks = Array(0...4), skip = 2
        if let m = o.string("mlp") {
            if m == "off" { p.mlpBroadcast = false } else {
                let v = m.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
                guard !v.isEmpty, v.allSatisfy({ $0 != nil }) else { throw ValidationError("--param mlp must be off or comma-separated timesteps, got '\(m)'") }
                timesteps = v.map { $0! }
            }
        }
        if let b = try o.ints("mlp-blocks") { blocks = b }
        if let k = try o.int("mlp-skip") { skip = k }
        if let g = o.string("reuse-gate") {
            guard let rule = PAB.ReuseGate(rawValue: g) else { throw ValidationError("--param reuse-gate must be computing (VideoSys) or current (diffusers), got '\(g)'") }
            p.reuseGate = rule
        }
        p.mlpSpatial = PAB.rules(timesteps, blocks: blocks, skipCount: skip)
        p.mlpTemporal = p.mlpSpatial
        try p.validate()
        return p
    }

    static func teaCacheSchedule(_ o: ScheduleOptions) throws -> (settings: String, schedule: CacheSchedule) {
        let family = (o.model() ?? "FLUX").lowercased()
        guard let spec = o.string("distances") else {
            throw ValidationError("teacache decides from the input: give the per-step relative L1 distances with --param distances=d0,d1,... or distances=@FILE")
        }
        let text = spec.hasPrefix("@") ? try String(contentsOfFile: String(spec.dropFirst()), encoding: .utf8) : spec
        let parsed = text.split(whereSeparator: { $0 == "," || $0 == "\n" || $0 == " " }).map { Float($0) }
        guard !parsed.isEmpty, parsed.allSatisfy({ $0 != nil }) else { throw ValidationError("--param distances must be numbers") }
        let distances = parsed.map { $0! }
        let threshold = try o.double("threshold")
        let (defaults, defaultThreshold): ([Double], Double)
        switch family {
        case "flux": (defaults, defaultThreshold) = (TeaCache.fluxCoefficients, 0.6)
        case "opensora": (defaults, defaultThreshold) = (TeaCache.openSoraCoefficients, 0.1)
        case "latte": (defaults, defaultThreshold) = (TeaCache.latteCoefficients, 0.1)
        // No published coefficients: no rescaling unless given (as tokc generate --method teacache).
        case "dit", "pixart": (defaults, defaultThreshold) = (TeaCache.identityCoefficients, TeaCache.uncalibratedThreshold)
        default: throw ValidationError("teacache --model must be FLUX, OpenSora, Latte, DiT or PixArt, got '\(family)'")
        }
        let p = try StepCachingOptions.teaCache(threshold: threshold, coefficients: o.string("coefficients"), calibration: o.string("calibration"),
                                                defaultCoefficients: defaults, defaultThreshold: defaultThreshold)
        let steps = o.steps() ?? distances.count
        guard steps == distances.count else { throw ValidationError("--steps \(steps) but \(distances.count) distances") }
        // First and last calls are forced computes (FLUX's counter; the timestep rule of Open-Sora/Latte
        // forces the same calls when the sampler's timesteps compare equal).
        let forced = try TeaCache.Forcing.counter(calls: steps, steps: steps)
        let layers = o.layers() ?? 1
        return ("\(family), S=\(steps), threshold \(p.relL1Threshold), whole block stack per call (\(layers) row cell)",
                try TeaCache.schedule(distances: distances, forced: forced, layers: layers, parameters: p))
    }

    static func deltaDiTSchedule(_ o: ScheduleOptions) throws -> (settings: String, schedule: CacheSchedule) {
        let p = try StepCachingOptions.deltaDiT(interval: o.interval(), boundary: try o.int("boundary"), blocks: try o.int("blocks"),
                                                first: try o.int("first"))
        let steps = o.steps() ?? 20, layers = o.layers() ?? 28
        let (boundary, n) = try p.resolved(calls: steps, layers: layers)
        return ("S=\(steps), N=\(p.interval), boundary \(boundary) (rear blocks cached before, front after), \(n) of \(layers) blocks per group, first \(p.firstEnhance) full",
                try DeltaDiT.schedule(calls: steps, layers: layers, parameters: p))
    }
}

/// The command's options as a builder sees them. Reading an option marks it used; options a
/// method never reads are reported, so a misspelt or inapplicable setting never passes silently.
final class ScheduleOptions {
    private let common: [String: String]
    private let extra: [String: String]
    private var used: Set<String> = []

    init(steps: Int?, interval: Int?, layers: Int?, ratio: Double?, scheduler: String?, model: String?,
         tokens: Int?, params: [String]) throws {
        var c: [String: String] = [:]
        c["steps"] = steps.map(String.init)
        c["interval"] = interval.map(String.init)
        c["layers"] = layers.map(String.init)
        c["ratio"] = ratio.map { String($0) }
        c["scheduler"] = scheduler
        c["model"] = model
        c["tokens"] = tokens.map(String.init)
        common = c
        extra = try MethodParameters.parse(params).values
    }

    private func value(_ key: String, _ store: [String: String]) -> String? {
        guard let v = store[key] else { return nil }
        used.insert((store == common ? "--" : "--param ") + key)
        return v
    }

    func steps() -> Int? { value("steps", common).flatMap(Int.init) }
    func interval() -> Int? { value("interval", common).flatMap(Int.init) }
    func layers() -> Int? { value("layers", common).flatMap(Int.init) }
    func ratio() -> Double? { value("ratio", common).flatMap(Double.init) }
    func scheduler() -> String? { value("scheduler", common) }
    func model() -> String? { value("model", common) }
    func tokens() -> Int? { value("tokens", common).flatMap(Int.init) }

    /// A `--param NAME=VALUE` string.
    func string(_ key: String) -> String? { value(key, extra) }
    func int(_ key: String) throws -> Int? {
        guard let s = value(key, extra) else { return nil }
        guard let v = Int(s) else { throw ValidationError("--param \(key) must be an integer, got '\(s)'") }
        return v
    }
    func double(_ key: String) throws -> Double? {
        guard let s = value(key, extra) else { return nil }
        guard let v = Double(s) else { throw ValidationError("--param \(key) must be a number, got '\(s)'") }
        return v
    }
    /// Comma-separated integers.
    func ints(_ key: String) throws -> [Int]? {
        guard let s = value(key, extra) else { return nil }
        let v = s.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !v.isEmpty, v.allSatisfy({ $0 != nil }) else { throw ValidationError("--param \(key) must be comma-separated integers, got '\(s)'") }
        return v.map { $0! }
    }

    func rejectUnused(method: String) throws {
        let unused = (common.keys.map { "--" + $0 } + extra.keys.map { "--param " + $0 }).filter { !used.contains($0) }.sorted()
        if !unused.isEmpty {
            throw ValidationError("\(method) does not use \(unused.joined(separator: ", ")) (see tokc schedule --help)")
        }
    }
}
