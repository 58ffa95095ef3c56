import Tensors
import TokenCompression

/// Runs one EViT reorganisation (`Attention.forward` selection + `Block.forward` gather/fuse).
public enum EViTConformer: MethodConformer {
    public static let method = "evit"

    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let p = testCase.params
        let parameters = EViT.Parameters(keepRate: try p.double("keep_rate", default: 0.7),
                                         fuseToken: try p.bool("fuse_token", default: true),
                                         tokens: try p.optionalInt("tokens"))
        let r = try EViT.reorganize(x: try testCase.inputs.floats("x"),
                                    clsAttentionHeads: try testCase.inputs.floats("cls_attn_heads"),
                                    parameters: parameters)
        return [
            "x_out": .floats(r.x),
            "cls_attn": try .floats(r.clsAttention),
            "kept_order": .ints(r.keptOrder),
            "kept": .ints(r.result.kept),
            "dropped": .ints(r.dropped),
            "n_kept": .int(r.keptOrder.count),
        ]
    }
}
