import Foundation

/// Text and JSON renderings of a `FlopsReport`, kept out of the CLI so tests can read them.
extension FlopsReport {
    /// "T" FLOPs (or T MACs in the `macs` convention), the unit papers print.
    var unitName: String { request.convention.unit == .design ? "TFLOPs" : "TMACs" }

    static func mib(_ bytes: Double) -> String { String(format: "%.2f MiB", bytes / 1_048_576) }
    static func percent(_ x: Double) -> String { String(format: "%.1f%%", 100 * x) }

    public var text: String {
        let r = request, s = r.shape, llm = s.llm
        var lines: [String] = []
        var model = "model: \(s.name)  LLM \(llm.layers) layers, d=\(llm.hidden), heads \(llm.heads)/\(llm.kvHeads) KV × \(llm.headDim), m=\(llm.mlpWidth) \(llm.gatedMLP ? "gated" : "plain"), vocab \(llm.vocab)"
        if let v = s.vision {
            model += "; vision \(v.encoder.layers)×\(v.encoder.hidden) (m=\(v.encoder.mlpWidth)), projector \(v.projector.map(String.init).joined(separator: "→"))"
        }
        lines.append(model)
        let n0 = r.systemTokens + r.visualTokens + r.textTokens
        let visual = r.videoFrames.map { f in "\(r.visualTokens) visual (video: \(f) frames × \(s.videoTokensPerFrame ?? 0) pooled + 1 newline; tower and projector on \(f) × \(s.vision?.patchesPerPass ?? 0) patches)" }
            ?? "\(r.visualTokens) visual"
        lines.append("input: \(r.systemTokens) system + \(visual) + \(r.textTokens) text = \(n0) prompt tokens; \(r.decodeTokens) decoded")
        lines.append("method: \(r.plan.method) — \(r.plan.settings)")
        lines.append("visual tokens entering each LLM layer: \(r.plan.compactSchedule)  (layer average \(String(format: "%.1f", r.plan.averageVisual)))")
        lines.append("convention: \(r.convention.description)")
        let header = "stage".padding(toLength: 12, withPad: " ", startingAt: 0)
        lines.append("\(header) \(pad(unitName)) \(pad("uncompressed")) reduction")
        for (name, value, ref) in rows {
            lines.append("\(name.padding(toLength: 12, withPad: " ", startingAt: 0)) \(pad(Self.tera(value))) \(pad(Self.tera(ref))) \(Self.percent(Self.reduction(value, of: ref)))")
        }
        let bytes = r.bytesPerElement == 2 ? "fp16" : "\(r.bytesPerElement) B/element"
        lines.append("KV cache (\(bytes)): \(Self.mib(kvBytesPrefill)) after prefill (uncompressed \(Self.mib(baselineKVBytesPrefill)), reduction \(Self.percent(Self.reduction(kvBytesPrefill, of: baselineKVBytesPrefill))))"
                     + (r.decodeTokens > 0 ? ", \(Self.mib(kvBytesFinal)) after decoding" : "")
                     + "; \(Self.mib(kvBytesPerToken)) (\(String(format: "%.1f", kvBytesPerToken / 1024)) KiB) per token held in all layers")
        return lines.joined(separator: "\n")
    }

    var rows: [(String, Double, Double)] {
        [("vision", stages.vision, baseline.vision), ("projector", stages.projector, baseline.projector),
         ("LLM prefill", stages.prefill, baseline.prefill), ("decode", stages.decode, baseline.decode),
         ("LM head", stages.lmHead, baseline.lmHead), ("total", stages.total, baseline.total)]
    }

    static func tera(_ x: Double) -> String { String(format: "%.4f", x / 1e12) }
    func pad(_ s: String) -> String { s.padding(toLength: 13, withPad: " ", startingAt: 0) }

    /// A JSON object: all counts raw (not in tera), plus the schedule and the reductions.
    public var json: [String: Any] {
        let r = request
        func stageDict(_ s: StageFlops) -> [String: Double] {
            ["vision": s.vision, "projector": s.projector, "prefill": s.prefill, "decode": s.decode, "lmHead": s.lmHead, "total": s.total]
        }
        var reductions: [String: Double] = [:]
        for (name, v, ref) in rows { reductions[name] = Self.reduction(v, of: ref) }
        var out: [String: Any] = [
            "model": r.shape.name, "convention": r.convention.unit.rawValue,
            "ffnMatrices": r.convention.matrices(for: r.shape.llm), "unit": r.convention.unit == .design ? "FLOPs" : "MACs",
            "systemTokens": r.systemTokens, "visualTokens": r.visualTokens, "textTokens": r.textTokens,
            "decodeTokens": r.decodeTokens, "method": r.plan.method, "settings": r.plan.settings,
            "visualSchedule": r.plan.llmVisual, "tokensPerLayer": r.llmTokensPerLayer,
            "stages": stageDict(stages), "uncompressed": stageDict(baseline), "reduction": reductions,
            "kvCache": ["bytesPerElement": r.bytesPerElement, "prefillBytes": kvBytesPrefill, "finalBytes": kvBytesFinal,
                        "uncompressedPrefillBytes": baselineKVBytesPrefill, "bytesPerToken": kvBytesPerToken] as [String: Any],
        ]
        if let f = r.videoFrames { out["video"] = ["frames": f, "tokensPerFrame": r.shape.videoTokensPerFrame ?? 0] }
        return out
    }

    public func jsonString() throws -> String {
        let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}
