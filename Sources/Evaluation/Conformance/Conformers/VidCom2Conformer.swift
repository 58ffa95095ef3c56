import Tensors
import TokenCompression

/// Runs `vidcom2_compression` with its intermediates (channels, scores, budgets, selection).
public enum VidCom2Conformer: MethodConformer {
    public static let method = "vidcom2"

    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let p = testCase.params
        let video = try testCase.inputs.floats("video_tokens")
        guard video.rank == 3 else { throw ConformanceError("video_tokens must be [F, N, C], got \(video.shape)") }
        let (frames, n, c) = (video.shape[0], video.shape[1], video.shape[2])
        let name = try p.string("model")
        let model: VidCom2.Model
        switch name {
        case "llava_ov": model = .llavaOneVision
        case "llava_vid": model = .llavaVideo
        case "qwen2_vl", "qwen2_5_vl", "qwen3_vl": model = .qwenVL(tokensPerFrame: try p.int("tokens_per_frame", default: n))
        default: throw ConformanceError("unknown VidCom² model '\(name)'")
        }
        guard model.tokensPerFrame == n else { throw ConformanceError("model \(name) expects \(model.tokensPerFrame) tokens per frame, input has \(n)") }
        let parameters = VidCom2.Parameters(retentionRatio: try p.double("retention_ratio", default: 0.25),
                                            temperature: try p.double("temperature", default: 0.01),
                                            channelRatio: try p.double("channel_ratio", default: 0.5),
                                            alphas: p.has("alphas") ? try p.doubles("alphas") : [0.125, 0.25, 0.5, 1, 2])
        let flat = try video.reshaped([frames * n, c])
        let r = try VidCom2.compress(tokens: flat, model: model, parameters: parameters)
        let s = r.scores
        var out: [String: CaseValue] = [
            "selected_channels": .ints(s.selectedChannels),
            "video_score": try .floats(s.videoScore.flatMap { $0 }, shape: [frames, n]),
            "frame_score": try .floats(s.frameScore.flatMap { $0 }, shape: [frames, n]),
            "frame_uniqueness": try .floats(s.frameUniqueness),
            "frame_retention": try .floats(s.frameRetention),
            "frame_budgets": .ints(s.frameBudgets),
        ]
        if model == .llavaVideo {
            let grid = try VidCom2.llavaVideoGrid(tokens: flat, newline: try testCase.inputs.floats("image_newline").values)
            let indices = VidCom2.llavaVideoGridIndices(keptPerFrame: r.keptPerFrame)
            out["kept"] = .ints(indices)
            out["x_out"] = .floats(try grid.gatherRows(indices))
            out["kept_tokens"] = .ints(r.kept)
        } else {
            out["kept"] = .ints(r.kept)
            out["x_out"] = .floats(r.x)
        }
        return out
    }
}
