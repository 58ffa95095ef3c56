import Tensors
import TokenCompression

/// Runs DyCoke's TTM (`stage = "ttm"`) or its decode-time KV selection over several steps (`stage = "kv_prune"`).
public enum DyCokeConformer: MethodConformer {
    public static let method = "dycoke"

    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let p = testCase.params
        switch try p.string("stage") {
        case "ttm":
            let video = try testCase.inputs.floats("video_tokens")
            guard video.rank == 3 else { throw ConformanceError("video_tokens must be [F, N, C], got \(video.shape)") }
            let parameters = DyCoke.Parameters(tokensPerFrame: try p.int("tokens_per_frame", default: video.shape[1]),
                                               mergingRatio: try p.double("dycoke_k", default: 0.7))
            let r = try DyCoke.temporalMerge(tokens: try video.reshaped([video.shape[0] * video.shape[1], video.shape[2]]),
                                             parameters: parameters)
            let n = parameters.tokensPerFrame
            return [
                "x_out": .floats(r.x),
                "kept": .ints(r.order),
                "frame_token_counts": .ints(r.frameTokenCounts),
                "stage1_similarity": try .floats(r.stage1Similarity.flatMap { $0 }, shape: [r.stage1Similarity.count, n]),
                "stage2_similarity": try .floats(r.stage2Similarity.flatMap { $0 }, shape: [r.stage2Similarity.count, n]),
            ]
        case "kv_prune":
            let attention = try testCase.inputs.floats("attention")
            guard attention.rank == 3 else { throw ConformanceError("attention must be [steps, H, S], got \(attention.shape)") }
            let (steps, heads, width) = (attention.shape[0], attention.shape[1], attention.shape[2])
            let parameters = DyCoke.Parameters(pruneLayer: try p.int("dycoke_l", default: 3), pruneRatio: try p.double("dycoke_p", default: 0.7),
                                               similarityThreshold: try p.double("similarity_threshold", default: 0.9))
            var pruner = try DyCoke.KVPruner(imageStart: try p.int("image_token_start_index", default: 14),
                                             imageLength: try p.int("image_token_length"), parameters: parameters)
            let prompt = try p.int("prompt_length")
            var similarity: [Float] = [], reselected: [Int] = [], mask: [Int] = [], attended: [Int] = []
            for t in 0..<steps {
                let rows = try attention.rows(t * heads..<(t + 1) * heads).reshaped([heads, width])
                let step = try pruner.step(attentionHeads: rows, cacheLength: prompt + t + 1)
                similarity.append(step.similarity)
                reselected.append(step.reselected ? 1 : 0)
                var row = [Int](repeating: 0, count: width)
                for s in step.attendedPositions(layer: parameters.pruneLayer) { row[s] = 1 }
                mask += row
                attended.append(step.attendedCount)
            }
            return [
                "similarity": try .floats(similarity),
                "reselected": .ints(reselected),
                "kv_mask": .ints(mask, shape: [steps, width]),
                "num_attended": .ints(attended),
            ]
        case let other:
            throw ConformanceError("unknown DyCoke stage '\(other)'")
        }
    }
}
