import Foundation
import Tensors
import Testing
@testable import Runtime

/// The built-in video model (`builtin/models/llava-onevision-video`) run by tokc equals transformers on
/// the same folder: `reference.json` (written by `tools/builtin/check_video_folder.py`) holds, per sample,
/// the chat-template prompt ids, the greedy tokens and the first step's top-5 logits.
@Suite struct BuiltinVideoModelTests {
    static let folder = runPath("builtin/models/llava-onevision-video")

    struct Reference {
        var id: String, video: String, question: String, frames: Int
        var inputIDs: [Int], greedy: [Int], top5IDs: [Int], top5Logits: [Float]
    }

    static func references() throws -> [Reference] {
        let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/reference.json"))
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let samples = try #require(root["samples"] as? [[String: Any]])
        return try samples.map { s in
            let top = try #require(s["first_step_top5"] as? [String: Any])
            return Reference(id: try #require(s["id"] as? String), video: try #require(s["video"] as? String),
                             question: try #require(s["question"] as? String), frames: try #require(s["frames"] as? Int),
                             inputIDs: try #require(s["input_ids"] as? [Int]), greedy: try #require(s["greedy_tokens"] as? [Int]),
                             top5IDs: try #require(top["token_ids"] as? [Int]),
                             top5Logits: try #require(top["logits"] as? [Double]).map(Float.init))
        }
    }

    @Test func answersAsTransformersDoes() throws {
        let runner = try VLMRunner(folder: Self.folder)
        let refs = try Self.references()
        #expect(refs.count >= 3)
        for ref in refs {
            let prompt = try runner.videoPrompt(ref.question)
            // transformers' ids carry the video token once per row (129); ours hold one placeholder the model expands.
            let video = 380
            let collapsed = ref.inputIDs.enumerated().filter { i, t in t != video || i == 0 || ref.inputIDs[i - 1] != video }.map(\.element)
            #expect(ref.inputIDs.filter { $0 == video }.count == 8 * 16 + 1)
            #expect(prompt.inputIDs == collapsed, "\(ref.id): prompt ids")
            let frames = try runner.prepare(video: try VLMRunner.loadVideo(path: runPath(ref.video), frames: ref.frames))
            let r = try runner.run(prompt: prompt, video: frames, maxNewTokens: ref.greedy.count)
            #expect(r.generatedIDs == ref.greedy, "\(ref.id): greedy tokens")
            let last = r.logits.values
            for (id, expected) in zip(ref.top5IDs, ref.top5Logits) {
                #expect(abs(last[id] - expected) < 2e-3, "\(ref.id): logit of token \(id) \(last[id]) vs \(expected)")
            }
        }
    }
}
