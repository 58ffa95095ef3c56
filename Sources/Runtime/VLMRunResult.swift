import Foundation
import ModelIO
import Models
import Tensors
import TokenCompression

/// Everything one run produced and measured.
public struct VLMRunResult: @unchecked Sendable {
    /// Greedy tokens (an EOS that stopped decoding is included).
    public var generatedIDs: [Int]
    /// Decoded answer (special tokens skipped); empty without a tokenizer.
    public var text: String
    /// Decoder tokens of the prompt before compression (text + visual).
    public var promptTokens: Int
    public var visualTokensTotal: Int
    public var visualTokensKept: Int
    /// Kept visual tokens, as indices into the image's visual tokens (0 ..< visualTokensTotal); a
    /// row merged inside the tower before an LLM-side stage (MustDrop's windows) lists every patch it holds.
    public var keptIndices: [Int]
    /// LLM-side methods: the prompt indices that reached the last layer.
    public var keptPromptIndices: [Int]?
    /// Where the image's (video runs: the video's) rows sit in the expanded prompt.
    public var imageSpans: [Range<Int>]
    public var prefillMs: Double
    /// The language model's part of `prefillMs`: from its first layer to the prefill's logits
    /// (the rest is the visual encoding: tower, projector, pooling, a vision- or video-side method).
    public var llmPrefillMs: Double
    /// Mean wall time of the decoding steps after the prefill (0 when only one token was generated).
    public var decodeMsPerToken: Double
    public var decodeSteps: Int
    /// KV cache right after the prefill (what pruning shrinks).
    public var kvCacheBytes: Int
    /// Peak bytes held by tensors during the run (`MemoryAccounting.peakBytes`).
    public var peakTensorBytes: Int
    /// Peak resident set of the process so far (includes the loaded weights).
    public var processPeakRSS: Int
    /// Prefill's final-position logits, `[vocab]`.
    public var logits: Tensor
    /// Registry name of the method that ran, nil for an uncompressed run (or a no-op budget).
    public var method: String?
    public var methodReport: CompressionRunReport?
    public var notes: [String]
    /// Rows per tower and decoder layer as the model ran them (typed; FLOPs are computed from it).
    public var trace: PrefillTrace
    /// Whether rows were dropped and the survivors sat at renumbered, contiguous positions in the
    /// LLM (vision-side methods, PDrop, SparseVLM, MustDrop); false when the kept rows kept their
    /// original positions (FastV, DART, …) or nothing was dropped. A model that reads where an
    /// image row is from its position id answers position questions differently under the two.
    public var positionsRenumbered: Bool { trace.positionsRenumbered }

    /// Wall time the language model spent generating: its part of the prefill plus every decoding
    /// step (the seed's "LLM generation latency").
    public var llmGenerationMs: Double { llmPrefillMs + decodeMsPerToken * Double(decodeSteps) }

    static func mib(_ b: Int) -> String { String(format: "%.1f MiB", Double(b) / 1_048_576) }

    /// The one efficiency line `tokc run` prints.
    public var efficiencyLine: String {
        String(format: "visual tokens %d/%d, prefill %.1f ms, decode %.2f ms/token, KV cache %@ (%d B), peak tensors %@, peak RSS %@",
               visualTokensKept, visualTokensTotal, prefillMs, decodeMsPerToken, Self.mib(kvCacheBytes), kvCacheBytes,
               Self.mib(peakTensorBytes), Self.mib(processPeakRSS))
    }

    /// JSON-ready dictionary (`tokc run --json`).
    public func jsonObject() -> [String: Any] {
        var o: [String: Any] = [
            "generated_ids": generatedIDs,
            "text": text,
            "prompt_tokens": promptTokens,
            "kept_indices": keptIndices,
            "efficiency": [
                "visual_tokens_total": visualTokensTotal,
                "visual_tokens_kept": visualTokensKept,
                "prefill_ms": prefillMs,
                "llm_prefill_ms": llmPrefillMs,
                "llm_generation_ms": llmGenerationMs,
                "decode_ms_per_token": decodeMsPerToken,
                "decode_steps": decodeSteps,
                "kv_cache_bytes": kvCacheBytes,
                "peak_tensor_bytes": peakTensorBytes,
                "process_peak_rss_bytes": processPeakRSS,
            ] as [String: Any],
            "notes": notes,
            "method": method.map { $0 as Any } ?? NSNull(),
            "trace": [
                "tower_rows_per_tile": trace.towerRowsPerTile,
                "projected_rows": trace.projectedRows,
                "decoder_rows_per_layer": trace.decoderRowsPerLayer,
                "decoder_visual_rows_per_layer": trace.decoderVisualRowsPerLayer,
                "inserted_rows": trace.insertedRows,
                "positions_renumbered": trace.positionsRenumbered,
            ] as [String: Any],
        ]
        if let k = keptPromptIndices { o["kept_prompt_indices"] = k }
        if let r = methodReport {
            o["method_report"] = [
                "visual_tokens_before": r.visualTokensBefore,
                "requested_visual_tokens": r.requestedVisualTokens,
                "achieved_visual_tokens": r.achievedVisualTokens,
                "kept_indices": r.keptIndices,
                "position_policy": r.positionPolicy.rawValue,
                "scoring_seconds": r.scoringSeconds,
                "notes": r.notes,
            ] as [String: Any]
        } else {
            o["method_report"] = NSNull()
        }
        return o
    }

    public func jsonData(extra: [String: Any] = [:]) throws -> Data {
        var o = jsonObject()
        for (k, v) in extra { o[k] = v }
        return try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys, .withoutEscapingSlashes])
    }

    /// Writes the final-position logits as F32 `[vocab]` safetensors (tensor name `logits`).
    public func writeLogits(to path: String) throws {
        var w = SafetensorsWriter()
        w.metadata["format"] = "pt"
        try w.add("logits", logits, as: .F32)
        do { try w.write(to: path) } catch { throw VLMRunError("cannot write logits to '\(path)': \(error)") }
    }
}
