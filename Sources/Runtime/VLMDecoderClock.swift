import Foundation
import Models
import Tensors

/// Notes when the decoder's first layer starts, so that a run's prefill splits into the visual
/// encoding (tower, projector, OneVision's pooling, a method's vision- or video-side stage) and
/// the language model's own part — the seed's video table reports LLM generation latency apart
/// from the total.
///
/// It plays the `PrefillHook` in front of the method's own hook (or alone, for an uncompressed
/// run) and passes every call through unchanged: it asks for no attention rows and never prunes,
/// so the model computes exactly what it would without it.
final class VLMDecoderClock: PrefillHook {
    let inner: PrefillHook?
    /// `DispatchTime` nanoseconds at the first call for layer 0 (nil: the decoder never started).
    private(set) var decoderStart: UInt64?

    init(wrapping inner: PrefillHook?) { self.inner = inner }

    func attentionRecord(layer: Int) -> AttentionRecord { inner?.attentionRecord(layer: layer) ?? .none }

    func beforeLayer(_ layer: Int, state: PrefillState) throws -> PruneDecision? {
        if layer == 0, decoderStart == nil { decoderStart = DispatchTime.now().uptimeNanoseconds }
        return try inner?.beforeLayer(layer, state: state)
    }

    func cacheCompaction(_ summary: PrefillSummary) throws -> [Int: [Int]] { try inner?.cacheCompaction(summary) ?? [:] }

    func afterPrefill(_ summary: PrefillSummary) throws { try inner?.afterPrefill(summary) }
}
