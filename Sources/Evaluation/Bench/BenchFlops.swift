import Foundation

/// Analytic FLOPs of one bench run: the model's own config, the prompt's real text lengths, and
/// the method's per-layer token schedule where `MethodSchedules` knows it and it matches the count
/// the run achieved; otherwise every LLM layer at the achieved count, with a note saying so.
public struct BenchFlops: Sendable {
    public let shape: ModelShape

    public init(configPath: String) throws {
        shape = try ShapeConfigParser.parse(fileAt: configPath).shape
    }

    public struct Result: Sendable {
        public var total: Double
        public var prefill: Double
        public var note: String?
    }

    /// `visual` uncompressed visual tokens, `achieved` after the method; `before`/`after` text
    /// tokens around the image; `decodeTokens` generated after the first.
    /// The per-layer visual rows a multi-stage method states in its report notes
    /// ("visual rows per layer [256, 64, 16, 4]", "visual rows entering each layer [...]"), if any.
    static func reportedSchedule(_ notes: [String], layers: Int,
                                 markers: [String] = ["visual rows per layer [", "visual rows entering each layer ["]) -> [Int]? {
        for n in notes {
            for marker in markers {
                guard let r = n.range(of: marker), let end = n[r.upperBound...].firstIndex(of: "]") else { continue }
                let values = n[r.upperBound..<end].split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
                if values.count == layers { return values }
            }
        }
        return nil
    }

    public func compute(method: String?, visual: Int, achieved: Int, before: Int, after: Int, decodeTokens: Int,
                        reportNotes: [String] = []) throws -> Result {
        let layers = shape.llm.layers
        var plan = VisualTokenPlan.uncompressed(visual: visual, layers: layers)
        var note: String?
        if let method, achieved < visual {
            let perPass = shape.vision?.tokensPerPass ?? visual
            let context = MethodSchedules.Context(visual: visual, llmLayers: layers, visionLayers: shape.vision?.encoder.layers ?? 0,
                                                  tokensPerPass: perPass > 0 ? min(perPass, visual) : visual,
                                                  encoderTokensPerPass: perPass + ((shape.vision?.hasCLS ?? true) ? 1 : 0))
            // A schedule counts as the run's when it ends at the achieved count, or, for methods whose
            // budget is a layer average (PDrop), when its average is the achieved count.
            if let reported = Self.reportedSchedule(reportNotes, layers: layers), reported.allSatisfy({ $0 >= 0 && $0 <= visual }) {
                // A merge inside the tower (MustDrop's window merge) states its rows per encoder layer;
                // the projector then maps only the rows that enter the LLM.
                let tower = shape.vision.flatMap { v in
                    Self.reportedSchedule(reportNotes, layers: v.encoder.layers, markers: ["tower rows entering each layer ["])
                }
                plan = VisualTokenPlan(method: method, settings: "schedule from the method's report",
                                       llmVisual: reported, projectorTokens: tower == nil ? visual : min(visual, reported[0]),
                                       visionTokensPerLayer: tower)
            } else if let p = try? MethodSchedules.plan(method: method, keep: achieved, context: context),
               p.llmVisual.last == achieved || abs(p.averageVisual - Double(achieved)) <= 1 {
                plan = p
            } else {
                plan = VisualTokenPlan(method: method, settings: "achieved \(achieved)",
                                       llmVisual: Array(repeating: achieved, count: layers), projectorTokens: visual)
                note = "\(method): no analytic schedule matches the achieved count; FLOPs assume the achieved visual tokens in every LLM layer"
            }
        }
        let full = try FlopsCalculator.report(FlopsRequest(shape: shape, visualTokens: visual, systemTokens: before, textTokens: after,
                                                           decodeTokens: decodeTokens, plan: plan))
        let pre = try FlopsCalculator.report(FlopsRequest(shape: shape, visualTokens: visual, systemTokens: before, textTokens: after,
                                                          decodeTokens: 0, plan: plan))
        return Result(total: full.stages.total / 1e12, prefill: pre.stages.total / 1e12, note: note)
    }
}
