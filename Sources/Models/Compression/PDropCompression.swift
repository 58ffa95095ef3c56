import Foundation
import Tensors
import TokenCompression

/// PyramidDrop inside the decoder: at each stage layer the visual rows are ranked by the
/// head-mean attention the last prompt row pays them, computed with THAT layer's input norm,
/// q/k projections and RoPE (`PrefillState.queriesAndKeys`), and the top `int(N0·λ^b)` stay;
/// positions are renumbered 0..<rows after every stage.
///
/// Stage layers default to the paper's [8, 16, 24] of 32, scaled to the model's depth. The budget
/// k is the visual count after the first stage: λ = k / N0, so the stages keep int(N0·λ^b) =
/// k, k²/N0, … (`lambda=` fixes λ instead). A layer-averaged reading was rejected: with the
/// default layers it is often unreachable (on LLaVA-1.5, layers 0–7 alone average 576·8/32 = 144
/// tokens) and degenerates to dropping every visual token. The report's achieved count is the
/// count after the first stage; the notes give the whole schedule and its layer average.
final class PDropHook: CompressionHook, PrefillHook {
    let budget: Budget
    let fixedLayers: [Int]?
    let fixedLambda: Double?
    private var layers: [Int] = []
    private var ratios: [Double] = []
    private var n0 = 0

    init(budget: Budget, layers: [Int]?, lambda: Double?) throws {
        if let lambda, !(lambda > 0 && lambda <= 1) { throw ModelCompressionError.invalidParameter("pdrop: lambda \(lambda) must be in (0, 1]") }
        self.budget = budget
        fixedLayers = layers
        fixedLambda = lambda
        super.init(method: "pdrop", policy: .renumber)
    }

    /// Stage layers for a decoder of `depth` layers.
    static func defaultLayers(depth: Int) -> [Int] {
        var out: [Int] = []
        for q in [8, 16, 24] {
            let l = max(1, min(depth - 1, Int((Double(q) * Double(depth) / 32).rounded())))
            if !out.contains(l), l >= 1, l < depth { out.append(l) }
        }
        return out
    }

    /// Visual rows entering each layer for stage layers `layers` and keep ratios `ratios`.
    static func schedule(depth: Int, n0: Int, layers: [Int], ratios: [Double]) -> [Int] {
        (0..<depth).map { l in
            let b = layers.filter { $0 <= l }.count
            return b == 0 ? n0 : Int(Double(n0) * ratios[b - 1])
        }
    }

    static func average(_ s: [Int]) -> Double { Double(s.reduce(0, +)) / Double(max(s.count, 1)) }

    func beforeLayer(_ l: Int, state: PrefillState) throws -> PruneDecision? {
        if l == 0 {
            let depth = state.model.config.layers
            let layout = try state.tokenLayout()
            n0 = layout.imageCount
            layers = fixedLayers ?? Self.defaultLayers(depth: depth)
            guard let first = layers.first, first >= 1, layers.last! < depth, zip(layers, layers.dropFirst()).allSatisfy({ $0 < $1 }) else {
                throw ModelCompressionError.invalidParameter("pdrop: stage layers \(layers) must be increasing within 1..<\(depth)")
            }
            let resolution = try budget.resolve(over: n0)
            let requested = resolution.requested
            beginReport(visualBefore: n0, requested: requested, achieved: n0, policy: .renumber)
            if fixedLambda == nil, case .noOp(_, let why) = resolution {
                noOp(why)
                ratios = []
                return nil
            }
            let lambda = fixedLambda ?? Double(requested) / Double(n0)
            ratios = (1...layers.count).map { pow(lambda, Double($0)) }
            // int(N0·k/N0) must give k despite rounding of the float64 product.
            if fixedLambda == nil { ratios[0] = (Double(requested) + 0.5) / Double(n0) }
            let s = Self.schedule(depth: depth, n0: n0, layers: layers, ratios: ratios)
            report.achievedVisualTokens = s[layers[0]]
            note("stage layers \(layers), λ = \(String(format: "%.4f", lambda)); visual rows per layer \(s) (layer average \(String(format: "%.2f", Self.average(s))); the count after the first stage is the achieved count reported)")
            if fixedLambda != nil { note("lambda given, the budget is not used") }
            return nil
        }
        guard !ratios.isEmpty, let b = layers.firstIndex(of: l) else { return nil }
        let layout = try state.tokenLayout()
        let keep = Int(Double(n0) * ratios[b])
        guard keep < layout.imageCount else { return nil }
        let start = scoringStart()
        let n = state.hidden.rows
        let (q, k) = try state.queriesAndKeys(rows: Array(0..<n))
        let heads = state.headCount, kvHeads = state.kvHeadCount, hd = state.headDim
        let query = try q.gatherRows([n - 1]).reshaped([heads, hd])
        // [heads, n, hd], each query head reading its GQA key head.
        var keys = Tensor(zeros: [heads, n, hd])
        keys.withUnsafeMutableBufferPointer { o in
            k.withUnsafeBufferPointer { s in
                for h in 0..<heads {
                    let g = h / (heads / kvHeads)
                    for t in 0..<n { for i in 0..<hd { o[(h * n + t) * hd + i] = s[t * kvHeads * hd + g * hd + i] } }
                }
            }
        }
        let scores = try PDrop.lastQueryScores(query: query, keys: keys, imageRange: layout.imageRange)
        let kept = Selection.topK(scores, keep).sorted().map { $0 + layout.imageStart }
        addScoringTime(since: start)
        return PruneDecision(keptRows: layout.keptSequence(visual: kept), positions: .renumber)
    }

    func afterPrefill(_ summary: PrefillSummary) throws {
        report.keptIndices = summary.keptOriginalIndices
    }
}

public enum PDropCompression {
    public static let adapter = InModelAdapter(method: "pdrop", parameters: ["layers", "lambda"], build: make)

    static func make(budget: Budget, parameters p: MethodParameters) throws -> ModelCompression {
        let layers = try p.intList("layers")
        let lambda = try p.double("lambda")
        let hook = try PDropHook(budget: budget, layers: layers, lambda: lambda)
        return ModelCompression(info: PDrop.info, budget: budget, hook: hook)
    }
}
