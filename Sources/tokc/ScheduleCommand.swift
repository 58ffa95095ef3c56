import ArgumentParser
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
                --model OpenSora: 30 steps, per-module intervals
                --param intervals=3,3,6,3 (spatial attn, temporal attn,
                cross-attn, mlp); the two "layers" shown are the spatial
                and temporal block kinds.
          fora  DDPM-250: --steps 250 --interval 3, 28 layers.
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

    @Option(name: .long, help: "Code family (toca: DiT, PixArt; duca: DiT, OpenSora).")
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

    static func tocaSchedule(_ o: ScheduleOptions) throws -> (settings: String, schedule: CacheSchedule) {
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
        let schedule = try ToCa.schedule(p)
        return ("\(model.rawValue), S=\(p.numSteps), N0=\(p.freshThreshold), r0=\(p.freshRatio), \(p.ratioSchedule.rawValue), \(p.numLayers) layers, \(p.numTokens) tokens", schedule.cacheSchedule)
    }

    static func ducaSchedule(_ o: ScheduleOptions) throws -> (settings: String, schedule: CacheSchedule) {
        let modelName = o.model() ?? "DiT"
        guard let model = DuCa.Model.allCases.first(where: { $0.rawValue.lowercased() == modelName.lowercased() }) else {
            throw ValidationError("duca --model must be DiT or OpenSora, got '\(modelName)'")
        }
        if model == .openSora {
            var p = DuCa.Parameters.openSora
            if let s = o.steps() { p.numSteps = s }
            if let iv = try o.ints("intervals") { p.openSoraIntervals = iv }
            let s = try DuCa.openSoraSchedule(p)
            return ("OpenSora, S=\(p.numSteps), intervals spatial/temporal/cross/mlp \(p.openSoraIntervals.map(String.init).joined(separator: "/")); layers = block kinds (spatial, temporal)", s.cacheSchedule)
        }
        var p = DuCa.Parameters()
        if let s = o.steps() { p.numSteps = s }
        if let n = o.interval() { p.freshThreshold = n }
        if let l = o.layers() { p.numLayers = l }
        if let r = o.ratio() { p.freshRatio = r }
        if let t = o.tokens() { p.numTokens = t }
        if let s = o.scheduler() { p.ratioSchedule = try DuCa.Parameters.ratioSchedule(named: s) }
        let s = try DuCa.schedule(p)
        return ("DiT, S=\(p.numSteps), N0=\(p.freshThreshold), r0=\(p.freshRatio), \(p.ratioSchedule == .ditDDIM50 ? "ToCa" : p.ratioSchedule.rawValue), \(p.numLayers) layers, \(p.numTokens) tokens", s.cacheSchedule)
    }

    static func foraSchedule(_ o: ScheduleOptions) throws -> (settings: String, schedule: CacheSchedule) {
        var p = FORA.Parameters()
        if let s = o.steps() { p.numSteps = s }
        if let n = o.interval() { p.interval = n }
        if let l = o.layers() { p.numLayers = l }
        return ("S=\(p.numSteps), N=\(p.interval), \(p.numLayers) layers", try FORA.schedule(p))
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
        var e: [String: String] = [:]
        for item in params {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("--param expects NAME=VALUE, got '\(item)'") }
            e[parts[0]] = parts[1]
        }
        extra = e
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
