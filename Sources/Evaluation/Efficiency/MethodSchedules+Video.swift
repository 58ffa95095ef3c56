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
}
