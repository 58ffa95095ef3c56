import Foundation
import Models
import TokenCompression

/// Plans of the video methods that act on LLaVA-OneVision's pooled rows before the LLM: every LLM
/// layer sees the kept frame tokens plus the newline. `keep` counts kept frame tokens; the
/// projector and tower run on every frame either way (the calculator counts them per frame).
extension MethodSchedules {
    static func videoContext(_ name: String, _ c: Context) throws -> (frames: Int, tokensPerFrame: Int) {
        guard let v = c.video else { throw FlopsError.invalidRequest("\(name) acts on a video's frames: give --frames N") }
        return v
    }

    /// VidCom²: ρ = 25 % by default (or keep / (F·N)); the kept total is round(ρ·F·N), which the
    /// per-frame rounding k[f] = round(r[f]·N) moves by a few tokens on real videos.
    static func vidcom2(_ keep: Int?, _ c: Context) throws -> VisualTokenPlan {
        let v = try videoContext("vidcom2", c)
        let total = v.frames * v.tokensPerFrame
        let ratio = keep.map { Double(min($0, total)) / Double(total) } ?? VidCom2.Parameters().retentionRatio
        let kept = keep.map { min($0, total) } ?? Selection.roundHalfEven(ratio * Double(total))
        return VisualTokenPlan(method: "vidcom2",
                               settings: "ρ=\(String(format: "%.3f", ratio)) over \(v.frames)×\(v.tokensPerFrame) → ≈\(kept) + newline (per-frame rounding varies it)",
                               llmVisual: Array(repeating: kept + 1, count: c.llmLayers), projectorTokens: c.visual)
    }

    /// DyCoke: TTM with K = 0.7 by default (or the K whose kept count is closest to keep from
    /// below); exact, since TTM's counts depend on F and K only. The decode-time KV pruning
    /// (layers ≥ L attend to fewer entries) is not in this prefill plan.
    static func dycoke(_ keep: Int?, _ c: Context) throws -> VisualTokenPlan {
        let v = try videoContext("dycoke", c)
        let k: Double
        var note = ""
        if let keep {
            let pick = try VideoDyCokeCompression.mergingRatio(forTarget: keep, frames: v.frames, tokensPerFrame: v.tokensPerFrame)
            k = pick.k
            if !pick.reachable { note = "; the frames TTM keeps whole exceed keep \(keep)" }
        } else {
            k = DyCoke.Parameters().mergingRatio
        }
        let kept = try VideoDyCokeCompression.keptFrameTokens(frames: v.frames, tokensPerFrame: v.tokensPerFrame, mergingRatio: k)
        return VisualTokenPlan(method: "dycoke",
                               settings: "TTM K=\(String(format: "%.3f", k)) over \(v.frames)×\(v.tokensPerFrame) → \(kept) + newline (decode-time KV pruning not counted)\(note)",
                               llmVisual: Array(repeating: kept + 1, count: c.llmLayers), projectorTokens: c.visual)
    }

    /// FastVID (LLaVA-OneVision file): every frame keeps b = int(N·ρ) tokens, s = b − int(b·d) salient and the
    /// rest as anchors spread over the segment's anchor frames, so the total is F·b up to the floor in each
    /// multi-frame segment's anchor split (the cuts depend on the video). ρ = 10 % by default, or keep / (F·N).
    static func fastvid(_ keep: Int?, _ c: Context) throws -> VisualTokenPlan {
        let v = try videoContext("fastvid", c)
        let ratio = keep.map { Double(min($0, v.frames * v.tokensPerFrame)) / Double(v.frames * v.tokensPerFrame) }
            ?? FastVID.Parameters().retentionRatio
        let perFrame = Int(Double(v.tokensPerFrame) * ratio)
        let kept = v.frames * perFrame
        return VisualTokenPlan(method: "fastvid",
                               settings: "ρ=\(String(format: "%.3f", ratio)): b = int(\(v.tokensPerFrame)·ρ) = \(perFrame) per frame × \(v.frames) → ≈\(kept) + newline (original positions)",
                               llmVisual: Array(repeating: kept + 1, count: c.llmLayers), projectorTokens: c.visual)
    }

    /// PruneVid: the merge's count depends on the video (how many positions are static and how the
    /// frames cluster), so `keep` is M, the merged rows entering the LLM; without it, M is the
    /// count of a video with no static position (static positions average over their segment and
    /// lower it): every frame's N rows cluster to int(N·cluster_ratio) (N > 14). Layers 0…10 (the selected layer runs on every row) see M;
    /// later ones ≈ int(M·α), α = 0.4 (the code truncates per segment and frame, so a few fewer).
    /// The newline counts among the text the code keeps. The code also cuts the KV cache of layers
    /// 0…10 to the kept rows after the selection, which a per-layer plan cannot express: the settings say so.
    static func prunevid(_ keep: Int?, _ c: Context) throws -> VisualTokenPlan {
        let v = try videoContext("prunevid", c)
        let p = PruneVid.Parameters()
        let total = v.frames * v.tokensPerFrame
        let perFrame = v.tokensPerFrame > p.minTokensToCluster ? Int(Double(v.tokensPerFrame) * p.clusterRatio) : v.tokensPerFrame
        let merged = keep.map { min($0, total) } ?? v.frames * perFrame
        let selected = Int(Double(merged) * p.keepRatio)
        let cut = min(p.selectedLayer + 1, c.llmLayers)
        let schedule = Array(repeating: merged + 1, count: cut) + Array(repeating: selected + 1, count: c.llmLayers - cut)
        let source = keep == nil ? "no static position: M = \(v.frames) frames × int(\(v.tokensPerFrame)·\(p.clusterRatio)) = \(merged)" : "M = \(merged) merged rows (--keep)"
        return VisualTokenPlan(method: "prunevid",
                               settings: "\(source); layers 0…\(cut - 1) see M + newline, then ≈ int(M·α=\(p.keepRatio)) = \(selected) + newline (the code also cuts the KV cache of layers 0…\(cut - 1) to the kept rows, so the KV line below overstates it)",
                               llmVisual: schedule, projectorTokens: c.visual)
    }

    /// FrameFusion: the controller holds the visual rows summed over its 28 budget layers at
    /// cost·28·V (V = the frame tokens; cost 0.3 by default, or keep / V as the model's count
    /// budget); how much of it merging gives depends on the video. The plan is the path of a video
    /// with no merge candidate: layer 0 merges nothing, so merging stops and the same layer's call
    /// after attention prunes to round(V·(1 − p)), p = `FrameFusion.neededSparsity([0])`. Layer 0 is
    /// charged at V (its attention runs on every row; its MLP already on the kept ones).
    static func framefusion(_ keep: Int?, _ c: Context) throws -> VisualTokenPlan {
        let v = try videoContext("framefusion", c)
        let frameTokens = v.frames * v.tokensPerFrame
        let base = FrameFusion.Parameters()
        let cost = keep.map { Double(max(1, min($0, frameTokens))) / Double(frameTokens) } ?? base.cost
        let p = try FrameFusion.neededSparsity([0], cost: cost, layers: base.budgetLayers)
        let kept = Selection.roundHalfEven(Double(frameTokens) * (1 - p))
        let schedule = [frameTokens + 1] + Array(repeating: kept + 1, count: max(0, c.llmLayers - 1))
        return VisualTokenPlan(method: "framefusion",
                               settings: "cost=\(String(format: "%.3f", cost)) over \(base.budgetLayers) budget layers: no merge, prune at layer 0 to round(\(frameTokens)·\(String(format: "%.4f", 1 - p))) = \(kept) + newline (merges move rows between layers, not the total)",
                               llmVisual: schedule, projectorTokens: c.visual)
    }

    /// HoliTom, the outer stage the model runs: ρ = 10 % by default (or keep / (F·N)); the code's
    /// target is round(ρ·F·N), which the per-frame ceil of the dynamic rows and the static
    /// clusters' rounding move by a few tokens. The inner merge (run only with inner_layer) is not
    /// in the plan.
    static func holitom(_ keep: Int?, _ c: Context) throws -> VisualTokenPlan {
        let v = try videoContext("holitom", c)
        let total = v.frames * v.tokensPerFrame
        let ratio = keep.map { Double(min($0, total)) / Double(total) } ?? HoliTom.Parameters().retainRatio
        let kept = Int((ratio * Double(total)).rounded())
        return VisualTokenPlan(method: "holitom",
                               settings: "outer ρ=\(String(format: "%.3f", ratio)) over \(v.frames)×\(v.tokensPerFrame) → ≈\(kept) + newline (inner merge not counted)",
                               llmVisual: Array(repeating: kept + 1, count: c.llmLayers), projectorTokens: c.visual)
    }
}
