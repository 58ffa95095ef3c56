import Foundation
import TokenCompression

extension MethodSchedules {
    /// PDrop: stages at layers T/4, T/2, 3T/4 ([8, 16, 24] for 32 layers) keeping int(N·λ^b).
    /// Without `keep`, the paper's λ = 0.5 (layer average 270 of 576). With `keep`, λ is solved so
    /// that the layer average (the "retained tokens" of third-party tables) is as close to `keep`
    /// as the code's int() truncation allows, without exceeding it.
    static func pdrop(_ keep: Int?, _ c: Context) throws -> VisualTokenPlan {
        let t = c.llmLayers
        let layerList = t == 32 ? [8, 16, 24] : [t / 4, t / 2, 3 * t / 4]
        guard layerList[0] >= 1, Set(layerList).count == 3 else {
            throw FlopsError.invalidRequest("pdrop needs at least 4 LLM layers, the model has \(t)")
        }
        func params(_ l: Double) -> PDrop.Parameters { PDrop.Parameters(layerList: layerList, ratios: [l, l * l, l * l * l]) }
        func average(_ l: Double) -> Double {
            let s = params(l).schedule(layers: t, original: c.visual).tokensPerLayer
            return Double(s.reduce(0, +)) / Double(t)
        }
        var lambda = 0.5
        if let keep {
            guard keep <= c.visual else { throw FlopsError.invalidRequest("pdrop --keep \(keep) exceeds the \(c.visual) visual tokens") }
            // Layers before the first stage always see all N tokens, which bounds the average.
            let floor = average(0)
            guard Double(keep) >= floor else {
                throw FlopsError.invalidRequest("pdrop with stages at \(layerList) cannot average below \(String(format: "%.1f", floor)) visual tokens (layers 0…\(layerList[0] - 1) keep all \(c.visual)); --keep \(keep) needs other stage layers: pass --schedule")
            }
            var lo = 0.0, hi = 1.0
            for _ in 0..<60 {
                let mid = (lo + hi) / 2
                if average(mid) <= Double(keep) { lo = mid } else { hi = mid }
            }
            lambda = lo
        }
        let p = params(lambda)
        try p.validate()
        let s = p.schedule(layers: t, original: c.visual).tokensPerLayer
        let avg = Double(s.reduce(0, +)) / Double(t)
        return VisualTokenPlan(method: "pdrop",
                               settings: "layers \(layerList), λ=\(String(format: "%.4f", lambda)), layer average \(String(format: "%.1f", avg))",
                               llmVisual: s, projectorTokens: c.visual)
    }

    /// FitPrune: the authors' shipped LLaVA-1.5-7B tables (32 layers, 576 tokens); `keep` picks the
    /// table whose total removal leaves the closest count (default: the 60 % table). Rows leave after
    /// layer l's attention; the plan charges layer l at its input count and layer l+1 on at the rest.
    static func fitPrune(_ keep: Int?, _ c: Context) throws -> VisualTokenPlan {
        guard c.llmLayers == 32, c.visual == 576 else {
            throw FlopsError.invalidRequest("fitprune's shipped schemes are fitted on LLaVA-1.5-7B (32 layers, 576 visual tokens); fit one for this model with tokc fitprune-fit and pass --schedule")
        }
        let percent: Int
        if let keep {
            percent = FitPrune.shippedSchemes.keys.min { a, b in
                let ka = 576 - FitPrune.shippedSchemes[a]!.reduce(0, +), kb = 576 - FitPrune.shippedSchemes[b]!.reduce(0, +)
                return (abs(ka - keep), a) < (abs(kb - keep), b)
            }!
        } else { percent = 60 }
        let scheme = try FitPrune.shippedScheme(reductionPercent: percent)
        var left = c.visual
        let s = (0..<c.llmLayers).map { l -> Int in
            defer { left = max(0, left - scheme[l]) }
            return left
        }
        return VisualTokenPlan(method: "fitprune", settings: "shipped table for reduction_ratio \(percent): \(c.visual - scheme.reduce(0, +)) tokens after the last cut",
                               llmVisual: s, projectorTokens: c.visual)
    }

    // MARK: - Before the LLM

    /// A plan that keeps `kept` tokens from LLM layer 0 on (and through the projector).
    static func fromLayerZero(_ name: String, _ settings: String, kept: Int, _ c: Context, vision: [Int]? = nil) -> VisualTokenPlan {
        let k = min(kept, c.visual)
        return VisualTokenPlan(method: name, settings: settings, llmVisual: Array(repeating: k, count: c.llmLayers),
                               projectorTokens: k, visionTokensPerLayer: vision)
    }

    /// FasterVLM: T per image, and per AnyRes crop (so T × passes in all); default T = 144.
    static func fasterVLM(_ keep: Int?, _ c: Context) throws -> VisualTokenPlan {
        let p = FasterVLM.Parameters(visualTokenNum: keep ?? 144)
        try p.validate()
        let per = min(p.visualTokenNum, c.perPass)
        return fromLayerZero("fastervlm", "T=\(p.visualTokenNum) per image/crop × \(c.passes)", kept: per * c.passes, c)
    }

    /// VisionZip: D + C tokens per image/crop; keep = D + C split as in the README settings
    /// (64 = 54 + 10, 128 = 108 + 20, 192 = 162 + 30, i.e. C = keep·10/64).
    static func visionZip(_ keep: Int?, _ c: Context) throws -> VisualTokenPlan {
        let total = keep ?? 64
        let contextual = max(1, total * 10 / 64)
        let p = VisionZip.Parameters(dominant: total - contextual, contextual: contextual)
        try p.validate()
        let per = min(p.tokensPerImage, c.perPass)
        return fromLayerZero("visionzip", "D=\(p.dominant) + C=\(p.contextual) per image/crop × \(c.passes)", kept: per * c.passes, c)
    }

    /// Pooling baseline: 2×2 average pooling per pass (default), or bilinear to the largest
    /// aspect-preserving grid within `keep` per pass (`SpatialPooling.targetGrid`).
    static func pooling(_ keep: Int?, _ c: Context) throws -> VisualTokenPlan {
        let side = Int(Double(c.perPass).squareRoot())
        guard side * side == c.perPass else {
            throw FlopsError.invalidRequest("pooling needs a square token grid per image, got \(c.perPass) tokens")
        }
        let grid: (rows: Int, cols: Int)
        let settings: String
        if let keep {
            grid = SpatialPooling.targetGrid(rows: side, cols: side, budget: keep)
            settings = "bilinear to \(grid.rows)×\(grid.cols) per image/crop × \(c.passes)"
        } else {
            grid = (side / 2, side / 2)
            settings = "2×2 average to \(grid.rows)×\(grid.cols) per image/crop × \(c.passes)"
        }
        return fromLayerZero("pooling", settings, kept: grid.rows * grid.cols * c.passes, c)
    }

    /// Methods whose knob is a total visual budget before the projector (HiRED's int(N·rate),
    /// GlobalCom²'s retention, PruMerge(+) non-adaptive): `keep` tokens in all. PruMerge's
    /// default (adaptive IQR outliers) is image-dependent, so it needs `keep`.
    static func visionBudget(_ name: String) -> Builder {
        { keep, c in
            let defaults: [String: Double] = ["hired": 0.2, "globalcom2": 0.25]
            let kept: Int
            let settings: String
            if let keep {
                kept = keep
                settings = "keep \(min(keep, c.visual)) before the projector"
            } else if let rate = defaults[name] {
                kept = min(c.visual, Int(Double(c.visual) * rate))
                settings = "default rate \(rate): keep \(kept) before the projector"
            } else {
                throw FlopsError.invalidRequest("\(name) keeps an image-dependent number of tokens (IQR outliers): pass --keep N")
            }
            return fromLayerZero(name, settings, kept: kept, c)
        }
    }

    /// FiCoCo-V: r tokens merged per ViT layer from layer 12 through the feature layer
    /// (`hidden_states[-2]`, i.e. layers 12…L−2: 11 merges on CLIP-L), default r = 42 → 114.
    /// With `keep`, r = ⌊(N − keep) / merges⌋. Encoder layers after 12 also get cheaper; they are
    /// charged at their input length.
    static func ficocoV(_ keep: Int?, _ c: Context) throws -> VisualTokenPlan {
        let start = 12, featureLayer = c.visionLayers - 2
        guard featureLayer >= start else {
            throw FlopsError.invalidRequest("ficoco_v merges from ViT layer 12; the encoder has \(c.visionLayers) layers")
        }
        let merges = featureLayer - start + 1
        let r = keep.map { max(0, (c.perPass - $0) / merges) } ?? 42
        let kept = c.perPass - r * merges
        guard kept >= 1 else { throw FlopsError.invalidRequest("ficoco_v r=\(r) over \(merges) layers removes all \(c.perPass) tokens") }
        let vision = (0..<c.visionLayers).map { l in c.encoderTokensPerPass - r * max(0, min(l, c.visionLayers - 1) - start) }
        return fromLayerZero("ficoco_v", "r=\(r) per ViT layer \(start)…\(featureLayer) → \(kept) per image/crop × \(c.passes)",
                             kept: kept * c.passes, c, vision: vision)
    }
}
