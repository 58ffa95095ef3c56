import Foundation

/// How many visual tokens each stage of one forward pass sees under a compression method.
///
/// Analytic FLOPs are only as good as this plan: a method that prunes at LLM layer 2 still pays
/// full price in layers 0–1, a vision-side method shrinks the projector input and every LLM layer,
/// and a method that merges inside the ViT also shrinks the late encoder layers.
public struct VisualTokenPlan: Sendable, Equatable {
    /// Method name (`none` for the uncompressed run).
    public var method: String
    /// The setting in words, e.g. "K=2, keep 288 (R=50%)".
    public var settings: String
    /// Visual tokens entering each LLM decoder layer.
    public var llmVisual: [Int]
    /// Visual tokens the projector maps (fewer only when pruning happens before it).
    public var projectorTokens: Int
    /// Encoder tokens entering each vision layer, per pass (`nil`: unchanged, all patches).
    public var visionTokensPerLayer: [Int]?
    /// The rows a run really computed (`PrefillTrace`), not a plan: a method may end with more rows
    /// than the input had (PruMerge+ adds its summary token to a tile it keeps whole), and that is
    /// what it cost.
    public var measured = false

    public init(method: String, settings: String, llmVisual: [Int], projectorTokens: Int, visionTokensPerLayer: [Int]? = nil) {
        self.method = method
        self.settings = settings
        self.llmVisual = llmVisual
        self.projectorTokens = projectorTokens
        self.visionTokensPerLayer = visionTokensPerLayer
    }

    /// The uncompressed run: every layer sees all `visual` tokens.
    public static func uncompressed(visual: Int, layers: Int) -> VisualTokenPlan {
        VisualTokenPlan(method: "none", settings: "uncompressed", llmVisual: Array(repeating: visual, count: layers),
                        projectorTokens: visual)
    }

    /// Layer-averaged visual tokens (the number papers quote as "retained tokens").
    public var averageVisual: Double { Double(llmVisual.reduce(0, +)) / Double(max(llmVisual.count, 1)) }

    /// Run-length form, e.g. `576×2 + 288×30`.
    public var compactSchedule: String { Self.compact(llmVisual) }

    static func compact(_ xs: [Int]) -> String {
        var parts: [String] = []
        var i = 0
        while i < xs.count {
            var j = i
            while j + 1 < xs.count && xs[j + 1] == xs[i] { j += 1 }
            parts.append("\(xs[i])×\(j - i + 1)")
            i = j + 1
        }
        return parts.joined(separator: " + ")
    }

    /// Parses a custom schedule written as `576x2,288x30` (or `576×2 + 288×30`, or plain
    /// comma-separated counts) and checks it has one entry per layer.
    public static func parseSchedule(_ text: String, layers: Int) throws -> [Int] {
        var out: [Int] = []
        let pieces = text.replacingOccurrences(of: "+", with: ",").split(separator: ",")
        for raw in pieces {
            let piece = raw.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "×", with: "x")
            let halves = piece.split(separator: "x").map { $0.trimmingCharacters(in: .whitespaces) }
            guard (1...2).contains(halves.count), let count = Int(halves[0]), count >= 0,
                  let times = halves.count == 2 ? Int(halves[1]) : 1, times >= 1 else {
                throw FlopsError.invalidRequest("schedule piece '\(piece)' is not COUNT or COUNTxLAYERS")
            }
            out += Array(repeating: count, count: times)
        }
        guard out.count == layers else {
            throw FlopsError.invalidRequest("schedule '\(text)' covers \(out.count) layers; the model has \(layers)")
        }
        return out
    }
}
