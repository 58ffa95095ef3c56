import Foundation
import Models

/// Analytic FLOPs of one bench run: the model's own config, the prompt's real text lengths, and
/// the per-layer rows the run traced (`PrefillTrace`).
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

    /// FLOPs of a run whose rows per layer the model traced: the decoder's visual rows per layer,
    /// the projector's input rows and, when a method merged inside the tower, the tower's rows per
    /// layer — all measured, so every method is costed at the schedule it really ran.
    /// `before`/`after`: text tokens around the image; `decodeTokens`: generated after the first.
    public func compute(trace: PrefillTrace, visual: Int, before: Int, after: Int, decodeTokens: Int, method: String?) throws -> Result {
        let layers = shape.llm.layers
        guard trace.decoderVisualRowsPerLayer.count == layers else {
            throw BenchError("the run traced \(trace.decoderVisualRowsPerLayer.count) decoder layers; the config has \(layers)")
        }
        var plan = VisualTokenPlan(method: method ?? "none", settings: "rows per layer as the run traced them",
                                   llmVisual: trace.decoderVisualRowsPerLayer, projectorTokens: trace.projectedRows,
                                   visionTokensPerLayer: trace.towerRowsPerPass)
        plan.measured = true
        let full = try FlopsCalculator.report(FlopsRequest(shape: shape, visualTokens: visual, systemTokens: before, textTokens: after,
                                                           decodeTokens: decodeTokens, plan: plan))
        let pre = try FlopsCalculator.report(FlopsRequest(shape: shape, visualTokens: visual, systemTokens: before, textTokens: after,
                                                          decodeTokens: 0, plan: plan))
        return Result(total: full.stages.total / 1e12, prefill: pre.stages.total / 1e12, note: nil)
    }
}
