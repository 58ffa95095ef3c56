import Tensors
import TokenCompression

/// DART inside the decoder: at the input of layer K (default 2), pivots from the L1 norms of
/// layer K−1's keys after RoPE, duplication measured on the final-RMSNorm'd hidden states.
///
/// The budget maps to the authors' `max_num_trunction` M: DART keeps 4 + 8·⌊M/8⌋ visual tokens
/// (4 image + 4 text pivots), so the request k becomes the M whose kept count is closest to k
/// (ties toward more tokens, so k = 128 gives the paper's M = 128, 132 kept); the report gives requested k and achieved counts as they are.
/// The pivot processing order is the emulated CPython `set` order of the reference.
public enum DARTCompression {
    public static let adapter = InModelAdapter(method: "dart", parameters: ["layer", "pivot_image", "pivot_text"], build: make)

    static func make(budget: Budget, parameters p: MethodParameters) throws -> ModelCompression {
        let layer = try p.int("layer", default: 2)
        let pivotImage = try p.int("pivot_image", default: 4), pivotText = try p.int("pivot_text", default: 4)
        guard pivotImage >= 1, pivotText >= 0 else {
            throw ModelCompressionError.invalidParameter("dart: pivot_image must be ≥ 1 and pivot_text ≥ 0")
        }
        let hook = try SingleCutHook(name: "dart", layer: layer, budget: budget, needsLastRowAttention: false) { state, layout, target in
            let perPivot = pivotImage + pivotText
            let m = truncation(forTarget: target, pivotImage: pivotImage, pivotText: pivotText)
            let dart = try DART(.init(layer: layer, pivotImageTokens: pivotImage, pivotTextTokens: pivotText, rule: .truncation(m)))
            guard let keys = state.previousKeys else { throw ModelError("dart: layer \(layer - 1) keys are missing") }
            let normalized = try state.applyFinalNorm(state.hidden)
            let r = try dart.select(normalizedHidden: normalized, keys: keys, layout: layout)
            let achieved = pivotImage + perPivot * (m / perPivot)
            var notes = ["dart: budget \(target) → max_num_truncation M = \(m) (keeps \(pivotImage) + \(perPivot)·⌊M/\(perPivot)⌋ = \(achieved) visual tokens)"]
            if achieved != target { notes.append("dart: the pivot rule cannot keep exactly \(target); kept \(achieved)") }
            return SingleCutChoice(result: r.compression, requested: target, notes: notes)
        }
        return ModelCompression(info: DART.info, budget: budget, hook: hook)
    }

    /// The M (a multiple of the pivot count) whose kept count P_img + P·(M/P) is closest to `target`.
    static func truncation(forTarget target: Int, pivotImage: Int, pivotText: Int) -> Int {
        let perPivot = pivotImage + pivotText
        // Half-way ties round up: the paper's M = 128 setting is reached by asking for 128.
        let picks = max(0, Int((Double(target - pivotImage) / Double(perPivot)).rounded(.toNearestOrAwayFromZero)))
        return picks * perPivot
    }
}
