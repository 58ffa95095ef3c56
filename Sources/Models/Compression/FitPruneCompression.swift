import Foundation
import Tensors
import TokenCompression

/// FitPrune inside the decoder: after layer l's attention, the `scheme[l]` visual rows with the
/// smallest head-max cross × self attention leave (`FitPrune.prune`, the rule the conformance
/// cases check); kept rows keep their positions.
///
/// The scheme comes from a fit on calibration samples of the same model (`tokc fitprune-fit` writes
/// a file with one scheme per reduction ratio; `scheme=@FILE` picks the one matching the budget:
/// reduction = 1 − kept fraction), from a list (`scheme=0,3,5,2`), or from the authors' shipped
/// LLaVA-1.5-7B tables (`table=60`, 32-layer decoders with 576 visual tokens only). The rows are cut
/// before layer l+1 rather than between layer l's attention and its MLP: the kept rows' outputs and
/// every cache are the same as the code's (the MLP works row by row and layer l's cache holds every
/// row in both), but layer l's MLP still runs on the rows that leave — the trace counts them.
final class FitPruneHook: CompressionHook, PrefillHook {
    enum Source {
        case fixed([Int], String)
        /// Schemes by reduction ratio (fraction of the visual-token FLOPs removed).
        case byReduction([Double: [Int]], String)
    }

    let budget: Budget
    let source: Source
    private var scheme: [Int] = []
    private var left = 0

    init(budget: Budget, source: Source) {
        self.budget = budget
        self.source = source
        super.init(method: "fitprune", policy: .keepOriginal)
    }

    func attentionRecord(layer: Int) -> AttentionRecord {
        layer < scheme.count && scheme[layer] > 0 && left > 0 ? .probabilities(rows: nil) : .none
    }

    func beforeLayer(_ l: Int, state: PrefillState) throws -> PruneDecision? {
        let layout = try state.tokenLayout()
        if l == 0 {
            let visual = layout.imageCount
            left = visual
            let resolution = try budget.resolve(over: visual)
            beginReport(visualBefore: visual, requested: resolution.requested, achieved: visual, policy: .keepOriginal)
            scheme = try pick(visual: visual, depth: state.model.config.layers, resolution: resolution)
            if scheme.allSatisfy({ $0 == 0 }) { noOp("the scheme removes no token") }
            return nil
        }
        let count = l - 1 < scheme.count ? scheme[l - 1] : 0
        guard count > 0, left > 0 else { return nil }
        guard let recorded = state.previousAttention, recorded.rows.count == state.hidden.rows else {
            throw ModelError("fitprune: layer \(l - 1) did not record every row's attention")
        }
        let start = scoringStart()
        let r = try FitPrune.prune(attention: recorded.values, positionIds: state.positions, imageCount: layout.imageCount,
                                   deleteCount: count, systemLength: layout.imageStart)
        addScoringTime(since: start)
        left = r.imageCountAfter
        guard r.compression.noOpReason == nil else { return nil }
        return PruneDecision(r.compression)
    }

    func afterPrefill(_ summary: PrefillSummary) throws {
        report.keptIndices = summary.keptOriginalIndices
        report.achievedVisualTokens = left
    }

    /// The scheme for this prompt, checked against the decoder's depth and the visual count.
    private func pick(visual: Int, depth: Int, resolution: BudgetResolution) throws -> [Int] {
        let chosen: [Int]
        switch source {
        case .fixed(let s, let origin):
            chosen = s
            note("scheme \(s) (\(origin)); the budget is not used")
        case .byReduction(let table, let origin):
            guard !table.isEmpty else { throw ModelCompressionError.invalidParameter("fitprune: \(origin) holds no scheme") }
            let wanted = 1 - Double(min(resolution.requested, visual)) / Double(max(visual, 1))
            let best = table.keys.min { abs($0 - wanted) < abs($1 - wanted) || (abs($0 - wanted) == abs($1 - wanted) && $0 < $1) }!
            chosen = table[best]!
            note(String(format: "scheme fitted for reduction ratio %.3f (the budget asks for %.3f) from %@: %@", best, wanted, origin, "\(chosen)"))
        }
        guard chosen.count <= depth else {
            throw ModelCompressionError.invalidParameter("fitprune: the scheme has \(chosen.count) layers, the decoder \(depth); fit one for this model (tokc fitprune-fit)")
        }
        guard chosen.allSatisfy({ $0 >= 0 }) else { throw ModelCompressionError.invalidParameter("fitprune: scheme \(chosen) has a negative count") }
        if chosen.reduce(0, +) > visual { note("the scheme removes \(chosen.reduce(0, +)) tokens but the prompt has \(visual); every visual token goes") }
        return chosen
    }
}

public enum FitPruneCompression {
    public static let adapter = InModelAdapter(method: "fitprune", parameters: ["scheme", "table"],
                                               requires: "a delete scheme: scheme=@FILE (tokc fitprune-fit), scheme=N,N,… or table=PERCENT",
                                               build: make)

    static func make(budget: Budget, parameters p: MethodParameters) throws -> ModelCompression {
        let source: FitPruneHook.Source
        switch (p.string("scheme"), try p.int("table")) {
        case (nil, nil):
            throw ModelCompressionError.invalidParameter("fitprune needs its delete scheme: --param scheme=@FILE (tokc fitprune-fit writes one for a model), scheme=N,N,… per layer, or table=PERCENT (the authors' LLaVA-1.5-7B tables: \(FitPrune.shippedSchemes.keys.sorted().map(String.init).joined(separator: ", ")))")
        case (_?, _?):
            throw ModelCompressionError.invalidParameter("fitprune: give scheme= or table=, not both")
        case (nil, let percent?):
            source = .fixed(try FitPrune.shippedScheme(reductionPercent: percent), "the authors' LLaVA-1.5-7B table for reduction_ratio \(percent)")
        case (let text?, nil):
            if text.hasPrefix("@") {
                source = .byReduction(try FitPruneSchemeFile.read(path: String(text.dropFirst())).schemesByRatio(), "'\(text.dropFirst())'")
            } else {
                source = .fixed(try MethodParameters("fitprune", ["scheme": text]).intList("scheme") ?? [], "given")
            }
        }
        return ModelCompression(info: FitPrune.info, budget: budget, hook: FitPruneHook(budget: budget, source: source))
    }
}

/// The file `tokc fitprune-fit` writes: one delete scheme per reduction ratio, fitted on one model.
public struct FitPruneSchemeFile: Codable, Sendable {
    /// Schemes by reduction ratio (the fraction of the visual-token FLOPs the fit aimed to remove,
    /// written as a decimal string: "0.5").
    public var schemes: [String: [Int]]
    /// Model folder, calibration task and sample count the fit used.
    public var model: String
    public var task: String
    public var samples: Int
    /// Final α interval and whether the printed (last) step met its budget, per ratio.
    public var alpha: [String: [Double]]
    public var lastStepMetBudget: [String: Bool]

    public init(schemes: [String: [Int]], model: String, task: String, samples: Int, alpha: [String: [Double]], lastStepMetBudget: [String: Bool]) {
        self.schemes = schemes
        self.model = model
        self.task = task
        self.samples = samples
        self.alpha = alpha
        self.lastStepMetBudget = lastStepMetBudget
    }

    public static func read(path: String) throws -> FitPruneSchemeFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelCompressionError.invalidParameter("fitprune: cannot read the scheme file '\(path)'")
        }
        let file: FitPruneSchemeFile
        do { file = try JSONDecoder().decode(FitPruneSchemeFile.self, from: data) } catch {
            throw ModelCompressionError.invalidParameter("fitprune: '\(path)' is not a scheme file written by tokc fitprune-fit: \(error)")
        }
        _ = try file.schemesByRatio()
        return file
    }

    /// The schemes keyed by their reduction ratio as a number.
    public func schemesByRatio() throws -> [Double: [Int]] {
        var out: [Double: [Int]] = [:]
        for (key, scheme) in schemes {
            guard let r = Double(key), r.isFinite, (0...1).contains(r) else {
                throw ModelCompressionError.invalidParameter("fitprune: scheme key '\(key)' is not a reduction ratio in [0, 1]")
            }
            out[r] = scheme
        }
        return out
    }

    public func write(path: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do { try enc.encode(self).write(to: URL(fileURLWithPath: path)) } catch {
            throw ModelCompressionError.invalidParameter("fitprune: cannot write the scheme file '\(path)': \(error)")
        }
    }
}
