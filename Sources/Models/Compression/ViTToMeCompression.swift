import Foundation
import Tensors
import TokenCompression

/// ToMe inside every block of a ViT (`tome/patch/timm.py`): after the attention residual, before the
/// MLP, `ToMe.step` merges `r_l` tokens with the block's head-mean keys (size-weighted, the class and
/// distillation tokens protected), the sizes and source map are carried to the next block, and with
/// proportional attention (on by default, as `apply_patch`) every later attention adds `log(size)`.
///
/// Parameters: `r` (tokens merged per block, default 16), `schedule` (`constant`, or `decreasing`: the
/// paper's `(r, −1)` schedule 2r → 0 through `ToMe.schedule`), `prop_attn` (default true). `r` is
/// clamped per block to ⌊(tokens − protected)/2⌋ as the authors' code does; the report says where.
public enum ViTToMeCompression {
    public static let adapter = ViTAdapter(method: "tome", parameters: ["r", "schedule", "prop_attn"],
                                           sweep: ViTSweep(parameter: "r", values: ["2", "4", "8", "12", "16"]), build: build)

    static func build(_ p: MethodParameters, _ shape: ViTModelShape) throws -> ViTCompression {
        let r = try p.int("r", default: ToMe.Parameters().r)
        guard r >= 0 else { throw ModelCompressionError.invalidParameter("tome: r=\(r) must be ≥ 0") }
        let schedule = p.string("schedule") ?? "constant"
        let inflect: Double
        switch schedule {
        case "constant": inflect = 0
        case "decreasing": inflect = -1
        default: throw ModelCompressionError.invalidParameter("tome: schedule=\(schedule) must be constant or decreasing")
        }
        guard shape.classTokens <= 2 else {
            throw ModelCompressionError.invalidParameter("tome: \(shape.classTokens) class tokens; ToMe protects a [CLS] and a distillation token at most")
        }
        let rs = try ToMe.schedule(layers: shape.layers, r: r, inflect: inflect)
        let prop = try p.bool("prop_attn", default: true)
        var setting = "r=\(r)"
        if schedule == "decreasing" { setting += " decreasing" }
        if !prop { setting += " no-prop-attn" }
        return ViTCompression(info: ToMe.info, shape: shape, setting: setting, hook: ToMeViTHook(shape: shape, rs: rs, proportional: prop))
    }
}

/// One ToMe step per block and image; the clamp of each block is reported once per forward.
final class ToMeViTHook: ViTMethodHook {
    /// r per block (the schedule, before the clamp).
    let rs: [Int]
    let proportional: Bool
    /// Image 0's (tokens entering, effective r) of the blocks that clamped in this forward.
    private var clamps: [(block: Int, tokens: Int, effective: Int)] = []

    init(shape: ViTModelShape, rs: [Int], proportional: Bool) {
        self.rs = rs
        self.proportional = proportional
        super.init(method: "tome", shape: shape)
    }

    override var proportionalAttention: Bool { proportional }

    override func embedded(image: Int, hidden: Tensor) throws {
        if image == 0 { clamps = [] }
    }

    override func afterAttention(_ step: ViTBlockStep) throws -> ViTTokenUpdate? {
        guard step.block < rs.count else {
            throw ModelError("tome: block \(step.block) of a model built for \(rs.count) blocks")
        }
        let r = rs[step.block]
        let start = scoringStart()
        let parameters = ToMe.Parameters(r: r, classToken: step.protectedRows >= 1, distillToken: step.protectedRows == 2)
        let merged = try ToMe.step(x: step.hidden, metric: Self.headMeanKeys(step), sizes: step.sizes,
                                   sources: sources[step.image], parameters: parameters)
        addScoringTime(since: start)
        sources[step.image] = merged.sources
        let m = merged.matching
        if step.image == 0 {
            if m.effectiveR < r { clamps.append((step.block, step.hidden.rows, m.effectiveR)) }
            recordRows(m.outputCount, image: 0)
            if step.block == step.blockCount - 1 { noteClamps(protected: step.protectedRows) }
        }
        guard m.effectiveR > 0 else { return nil }
        return ViTTokenUpdate(hidden: merged.x, sizes: merged.sizes)
    }

    /// "r = 16 clamped at blocks 0, 1, 2 to 8, 4, 2 (17, 9, 5 tokens entering, 1 protected): …".
    private func noteClamps(protected: Int) {
        guard !clamps.isEmpty else { return }
        let requested = Set(clamps.map { rs[$0.block] })
        let what = requested.count == 1 ? "r = \(requested.first!)" : "the scheduled r"
        noteOnce("\(what) clamped at block\(clamps.count > 1 ? "s" : "") \(clamps.map { String($0.block) }.joined(separator: ", ")) to "
            + "\(clamps.map { String($0.effective) }.joined(separator: ", ")) (\(clamps.map { String($0.tokens) }.joined(separator: ", ")) tokens entering, "
            + "\(protected) protected): at most ⌊(tokens − protected)/2⌋ merge per block, as tome/merge.py clamps")
    }
}
