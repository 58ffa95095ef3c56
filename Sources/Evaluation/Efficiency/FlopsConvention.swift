import Foundation

/// How multiply-adds are counted, so that both DESIGN.md's numbers and the papers' can be produced.
///
/// DESIGN.md counts a multiply-add as 2 FLOPs and the MLP by its real matrix count (3 for SwiGLU).
/// FastV's formula (4nd² + 2n²d + 2ndm) and SparseVLM's code (… + 3ndm) count multiply-adds
/// ("MACs", though they call them FLOPs), with 2 or 3 FFN matrices; `macs` with
/// `ffnMatrices` 2 or 3 reproduces them.
public struct FlopsConvention: Sendable, Equatable, CustomStringConvertible {
    public enum Unit: String, Sendable, CaseIterable { case design, macs }
    public var unit: Unit
    /// FFN matrices counted per gated layer; nil: 3 (gate, up, down).
    public var ffnMatrices: Int?

    public init(unit: Unit = .design, ffnMatrices: Int? = nil) {
        self.unit = unit
        self.ffnMatrices = ffnMatrices
    }

    public static let design = FlopsConvention()
    /// FastV paper: MACs, 2-matrix FFN.
    public static let fastVPaper = FlopsConvention(unit: .macs, ffnMatrices: 2)
    /// SparseVLM code: MACs, 3-matrix FFN.
    public static let sparseVLMCode = FlopsConvention(unit: .macs, ffnMatrices: 3)

    /// Operations per multiply-add.
    public var perMAC: Double { unit == .design ? 2 : 1 }

    /// The override applies to gated (LLM) MLPs only: the papers' 2-vs-3 question is about SwiGLU,
    /// while a ViT's plain MLP always has 2 matrices.
    public func matrices(for shape: TransformerShape) -> Int { shape.gatedMLP ? (ffnMatrices ?? 3) : 2 }

    public var description: String {
        let ffn = ffnMatrices.map { "\($0)-matrix FFN" } ?? "FFN as the model has it"
        return unit == .design ? "DESIGN (multiply-add = 2 FLOPs), \(ffn)" : "MACs (multiply-add = 1, as FastV/SparseVLM), \(ffn)"
    }
}

/// Per-layer cost formulas of DESIGN.md "Conventions".
public enum LayerFlops {
    /// One decoder/encoder layer: `queries` new tokens attending over `keys` tokens (keys =
    /// queries in prefill; the KV length in decode). Projections 2·(2·q·d·d_q + 2·q·d·d_kv),
    /// attention 2·2·q·k·d_q, MLP 2·M·q·d·m (M = 3 gated, 2 plain), in the convention's unit.
    public static func layer(_ s: TransformerShape, queries q: Int, keys k: Int, _ c: FlopsConvention) -> Double {
        let d = Double(s.hidden), dq = Double(s.heads * s.headDim), dkv = Double(s.kvWidth)
        let nq = Double(q), nk = Double(k), m = Double(s.mlpWidth)
        let projections = 2 * nq * d * dq + 2 * nq * d * dkv
        let attention = 2 * nq * nk * dq
        let mlp = Double(c.matrices(for: s)) * nq * d * m
        return c.perMAC * (projections + attention + mlp)
    }

    /// Prefill layer with n tokens (full n² attention, as the convention counts it).
    public static func prefill(_ s: TransformerShape, tokens n: Int, _ c: FlopsConvention) -> Double {
        layer(s, queries: n, keys: n, c)
    }

    /// A dense map of `rows` vectors through widths `[w0, w1, …]` (projector, LM head).
    public static func dense(rows: Int, widths: [Int], _ c: FlopsConvention) -> Double {
        guard widths.count >= 2 else { return 0 }
        let macs = zip(widths, widths.dropFirst()).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        return c.perMAC * Double(rows) * macs
    }
}
