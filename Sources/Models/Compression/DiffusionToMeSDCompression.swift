import Foundation
import TokenCompression

/// ToMe-SD inside the DiT / PixArt-α blocks (`DiTTokenMerging`), from `--param`s named as tomesd's
/// `apply_patch` arguments: `ratio` (0.5), `max_downsample` (1 — which merges nothing in a DiT with patch
/// size 2; the run says so), `sx`, `sy` (2), `use_rand` (true; off for an odd batch), `merge_attn` (true),
/// `merge_crossattn`, `merge_mlp` (false), and `seed` (0) of the toolkit's destination generator.
public enum DiffusionToMeSDCompression {
    public static let adapter = DiffusionAdapter(
        method: "tomesd",
        parameters: ["ratio", "max_downsample", "sx", "sy", "use_rand", "merge_attn", "merge_crossattn", "merge_mlp", "seed"],
        build: { try build($0) })

    static func build(_ p: MethodParameters) throws -> DiffusionMethodSetting {
        let d = ToMeSD.Parameters()
        let parameters = ToMeSD.Parameters(
            ratio: try p.double("ratio", default: d.ratio), maxDownsample: try p.int("max_downsample", default: d.maxDownsample),
            sx: try p.int("sx", default: d.sx), sy: try p.int("sy", default: d.sy), useRand: try p.bool("use_rand", default: d.useRand),
            mergeAttention: try p.bool("merge_attn", default: d.mergeAttention),
            mergeCrossAttention: try p.bool("merge_crossattn", default: d.mergeCrossAttention),
            mergeMLP: try p.bool("merge_mlp", default: d.mergeMLP))
        do { try parameters.validate() } catch {
            throw ModelCompressionError.invalidParameter("tomesd: \(error)")
        }
        let seed = try p.string("seed").map { s -> UInt64 in
            guard let v = UInt64(s.trimmingCharacters(in: .whitespaces)) else {
                throw ModelCompressionError.invalidParameter("tomesd: seed=\(s) is not a non-negative integer")
            }
            return v
        } ?? 0
        return .tokenMerging(DiTTokenMergingSettings(parameters: parameters, seed: seed))
    }
}
