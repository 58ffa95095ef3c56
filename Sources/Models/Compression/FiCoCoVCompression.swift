import Foundation
import Tensors
import TokenCompression

/// FiCoCo-V inside the vision tower: in each late encoder layer, after the attention and before
/// the MLP, `FiCoCoV.layer` merges `r` tokens away, so every later layer — and the projector and
/// the LLM — sees fewer rows.
///
/// Layers: the paper merges in CLIP-L's layers 12…23, of which 12…22 shape `hidden_states[-2]`;
/// here the merge layers are the second half of the tower up to the deepest feature layer (11 of
/// 24 for LLaVA-1.5, 2 of 6 for the built-in model). `r` defaults to ⌊(patches − budget) / merge
/// layers⌋ (42 at 114 of 576 tokens, the paper's setting); `r=N` fixes it. The code's quirks stay:
/// remaining rows come out in ascending score order with the protected row last, so later layers
/// protect whatever sits at row 0, and LLaVA's 'default' strategy drops row 0 — a patch — while
/// the [CLS] row reaches the projector. The score buffer (`FiCoCoV.State`, the code's module
/// global) starts fresh for every image. LLaVA-1.5 (one tile) only: the authors' code has no
/// AnyRes path.
final class FiCoCoVHook: CompressionHook, VisionFeatureHook {
    let budget: Budget
    let fixedR: Int?
    let beta: Double
    let quantile: Float
    var captureRequest: VisionCaptureRequest { .none }

    /// Per tile of the current image: original token index of each current row, the score buffer.
    private var origin: [Int] = []
    private var state = FiCoCoV.State()
    private var merger: FiCoCoV?
    private var mergeLayers: ClosedRange<Int>?

    init(budget: Budget, fixedR: Int?, beta: Double, quantile: Float) throws {
        self.budget = budget
        self.fixedR = fixedR
        self.beta = beta
        self.quantile = quantile
        super.init(method: "ficoco_v", policy: .notApplicable)
    }

    func afterAttention(_ step: VisionLayerStep) throws -> Tensor? {
        guard step.tile == 0 else {
            throw ModelCompressionError.unsupportedMethod("ficoco_v", "the authors' code merges inside a LLaVA-1.5 tower (one tile); LLaVA-NeXT's AnyRes tiles are not supported")
        }
        if step.layer == 0 { try begin(step) }
        guard let merger, let mergeLayers, mergeLayers.contains(step.layer) else { return nil }
        let start = scoringStart()
        defer { addScoringTime(since: start) }
        let logits = try FiCoCoV.headMeanLogits(queries: try step.queries.splittingHeads(step.heads).scaled(by: 1 / Float(step.headDim).squareRoot()),
                                               keys: try step.keys.splittingHeads(step.heads))
        // The code needs 2r ≤ T (its target remapping); a budget asking for more is capped per layer.
        var layerMethod = merger
        if 2 * merger.parameters.r > step.hidden.rows {
            layerMethod.parameters.r = step.hidden.rows / 2
            note("layer \(step.layer): r capped at \(layerMethod.parameters.r) = ⌊\(step.hidden.rows)/2⌋ (the code's target remapping needs 2r ≤ T)")
        }
        let result = try layerMethod.layer(hidden: step.hidden, logits: logits, state: &state)
        origin = result.remainIndices.map { origin[$0] }
        return result.output
    }

    /// Sets up one image: merge layers, r, a fresh score buffer.
    private func begin(_ step: VisionLayerStep) throws {
        let n = step.patchCount
        let resolution = try budget.resolve(over: n)
        let requested = resolution.requested
        beginReport(visualBefore: n, requested: requested, achieved: n, policy: .notApplicable, keptIndices: Array(0..<n))
        origin = Array(0..<step.hidden.rows)
        merger = nil
        mergeLayers = nil
        let first = step.towerLayers / 2, last = step.featureLayer
        guard first <= last else {
            noOp("the feature layer \(last) comes before the tower's second half (\(first)…)")
            return
        }
        let layers = last - first + 1
        let r = fixedR ?? (resolution == .keep(requested) ? (n - requested) / layers : 0)
        guard r > 0 else {
            noOp("budget \(budget) asks for \(requested) of \(n) visual tokens: r = 0")
            return
        }
        let side = Int(Double(n).squareRoot())
        guard side * side == n, side % 2 == 0 else {
            throw ModelCompressionError.unsupportedMethod("ficoco_v", "its score buffer is a square grid with 2×2 windows; \(n) patches do not form one")
        }
        merger = try FiCoCoV(.init(r: r, beta: beta, penaltyCount: (side / 2) * (side / 2), stateSize: n, quantile: quantile))
        mergeLayers = first...last
        state = FiCoCoV.State(size: n)
        note("r = \(r) merged per layer in tower layers \(first)…\(last) (\(layers) layers)")
    }

    func selectFeatures(_ image: VisionImageFeatures) throws -> [KeptFeatures]? {
        guard let tile = image.tiles.first, image.tiles.count == 1 else {
            throw ModelCompressionError.unsupportedMethod("ficoco_v", "LLaVA-1.5 only (one tile per image)")
        }
        guard merger != nil else { return nil }
        // Row i of the features is current row i (+1 when 'default' dropped row 0); token t ≥ 1 is patch t − 1.
        let rows = tile.classTokenDropped ? Array(origin.dropFirst()) : origin
        guard rows.count == tile.features.rows else {
            throw ModelError("ficoco_v: \(tile.features.rows) feature rows but \(rows.count) tracked tokens")
        }
        let patches = rows.filter { $0 > 0 }.map { $0 - 1 }
        // The [CLS] row, if it survived, stands at the first patch no other row comes from.
        let used = Set(patches)
        let free = (0..<image.tiles[0].patchGrid.rows * image.tiles[0].patchGrid.cols).first { !used.contains($0) } ?? 0
        let sources = rows.map { $0 > 0 ? $0 - 1 : free }
        if rows.contains(0) { note("the [CLS] row reaches the projector (row 0, a patch, was dropped by the 'default' strategy)") }
        report.achievedVisualTokens = tile.features.rows
        report.keptIndices = patches.sorted()
        return [try KeptFeatures(rows: tile.features, sourceIndices: sources)]
    }
}

public enum FiCoCoVCompression {
    public static let adapter = InModelAdapter(method: "ficoco_v", parameters: ["r", "beta", "quantile"], build: make)

    static func make(budget: Budget, parameters p: MethodParameters) throws -> ModelCompression {
        let r = try p.int("r")
        if let r, r < 0 { throw ModelCompressionError.invalidParameter("ficoco_v: r = \(r) must be ≥ 0") }
        let beta = try p.double("beta", default: 0.35), quantile = Float(try p.double("quantile", default: 0.998))
        _ = try FiCoCoV(.init(beta: beta, quantile: quantile))  // range checks now, not at the first image
        let hook = try FiCoCoVHook(budget: budget, fixedR: r, beta: beta, quantile: quantile)
        return ModelCompression(info: FiCoCoV.info, budget: budget, hook: hook)
    }
}
