import Foundation
import Testing
import Evaluation
import Tensors
import TokenCompression
@testable import Models

/// Properties of the video methods inside LLaVA-OneVision (the parity against transformers is in
/// CompressionVideoParityTests): each hook calls its method's own function on the model's pooled
/// rows, keeps the newline last, reports requested/achieved counts, and refuses bad settings.
@Suite struct CompressionVideoTests {
    /// The model's pooled rows of the fixture video, without a hook.
    static func pooled() throws -> (LlavaModel, [Int], LlavaVideo, Tensor) {
        let model = try VideoCompressionFixture.model()
        let (ids, video) = try VideoCompressionFixture.inputs()
        let f = try model.videoFeatures(video)
        return (model, ids, video, f.features)
    }

    @Test func layoutOfThePooledVideo() throws {
        let (model, _, video, features) = try Self.pooled()
        let layout = model.videoLayout(frames: video.frames.count)
        #expect(layout.tokensPerFrame == 9 && layout.frames == 8 && layout.rowCount == features.rows)
        #expect(layout.frame(ofRow: 17) == 1 && layout.frame(ofRow: 72) == nil && layout.newlineIndex == 72)
    }

    @Test func vidCom2CallsItsFunctionOnThePooledRows() throws {
        let (model, ids, video, features) = try Self.pooled()
        let c = try MethodCatalog.compression(method: "vidcom2", budget: .ratio(0.25))
        #expect(c.videoHook != nil && c.prefillHook == nil && c.visionHook == nil)
        let p = try model.prefill(inputIDs: ids, images: [], videos: [video], videoHook: c.videoHook)
        let direct = try VidCom2.compress(tokens: try features.rows(0..<72), model: .qwenVL(tokensPerFrame: 9),
                                          parameters: .init(retentionRatio: 0.25))
        #expect(p.videoSources[0] == direct.kept + [72])
        #expect(p.videoTokens == [direct.kept.count + 1] && p.videoTokensBefore == [73])
        let r = c.report()
        #expect(r.visualTokensBefore == 72 && r.requestedVisualTokens == 18 && r.achievedVisualTokens == direct.kept.count)
        #expect(r.positionPolicy == .renumber && p.trace.positionsRenumbered)
        #expect(p.cache.tokenCounts.allSatisfy { $0 == ids.count - 73 + direct.kept.count + 1 })
        // The rows spliced in are the pooled rows themselves (a selection, no new values).
        let e = try model.embedPrompt(inputIDs: ids, images: [], videos: [video], videoHook: c.videoHook)
        let spliced = try e.embeddings.rows(4..<(4 + p.videoTokens[0]))
        #expect(spliced.values == (try features.gatherRows(direct.kept + [72])).values)
    }

    @Test func vidCom2CountBudgetBecomesARatio() throws {
        let (model, ids, video, _) = try Self.pooled()
        let c = try MethodCatalog.compression(method: "vidcom2", budget: .count(36))
        _ = try model.prefill(inputIDs: ids, images: [], videos: [video], videoHook: c.videoHook)
        #expect(c.report().requestedVisualTokens == 36)
        #expect(abs(c.report().achievedVisualTokens - 36) <= 8)
        let all = try MethodCatalog.compression(method: "vidcom2", budget: .ratio(1))
        let p = try model.prefill(inputIDs: ids, images: [], videos: [video], videoHook: all.videoHook)
        #expect(p.videoTokens == [73] && all.report().notes.contains { $0.contains("no-op") })
    }

    @Test func dyCokeTemporalMergeIsItsFunction() throws {
        let (model, ids, video, features) = try Self.pooled()
        let c = try MethodCatalog.compression(method: "dycoke", budget: .ratio(0.25), parameters: ["k": "0.7", "kv": "false"])
        #expect(c.videoHook != nil && c.decodeHook != nil)
        let p = try model.prefill(inputIDs: ids, images: [], videos: [video], hook: c.prefillHook, videoHook: c.videoHook)
        let direct = try DyCoke.temporalMerge(tokens: try features.rows(0..<72), parameters: .init(tokensPerFrame: 9, mergingRatio: 0.7))
        #expect(p.videoSources[0] == direct.order + [72])
        #expect(c.report().achievedVisualTokens == 3 * 9 + 5 * 2)
        // kv=false: decoding attends to the whole cache.
        _ = try model.language.decodeStep(token: 5, cache: p.cache, hook: c.decodeHook)
        #expect((c.decodeHook as? DyCokeHook)?.decodeSteps.isEmpty == true)
    }

    @Test func dyCokeBudgetPicksTheMergingRatio() throws {
        // 8 frames: TTM keeps frames 0, 4, 6 whole and prunes 1, 2, 3, 5, 7.
        let pick = try VideoDyCokeCompression.mergingRatio(forTarget: 43, frames: 8, tokensPerFrame: 9)
        #expect(pick.m == 3 && pick.reachable)
        #expect(DyCoke.Parameters(tokensPerFrame: 9, mergingRatio: pick.k).keptPerPrunedFrame == 3)
        let low = try VideoDyCokeCompression.mergingRatio(forTarget: 10, frames: 8, tokensPerFrame: 9)
        #expect(low.m == 0 && !low.reachable)
        let (model, ids, video, _) = try Self.pooled()
        let c = try MethodCatalog.compression(method: "dycoke", budget: .count(43))
        _ = try model.prefill(inputIDs: ids, images: [], videos: [video], hook: c.prefillHook, videoHook: c.videoHook)
        #expect(c.report().requestedVisualTokens == 43 && c.report().achievedVisualTokens == 27 + 5 * 3)
    }

    @Test func dyCokeDecodingAttendsToFewerEntries() throws {
        let (model, ids, video, _) = try Self.pooled()
        let c = try MethodCatalog.compression(method: "dycoke", budget: .ratio(0.25), parameters: ["k": "0.7", "l": "2", "p": "0.5"])
        let (tokens, p) = try model.generate(inputIDs: ids, images: [], videos: [video], maxNewTokens: 4, stopTokens: [],
                                             hook: c.prefillHook, videoHook: c.videoHook, decodeHook: c.decodeHook)
        #expect(tokens.count == 4)
        let steps = (c.decodeHook as! DyCokeHook).decodeSteps
        #expect(steps.count == 3 && steps.contains { $0.reselected })
        let span = 38, length = span - 2, kept = Int(Double(length) * 0.5)
        for s in steps where s.reselected {
            #expect(s.attendedCount == s.cacheLength - length + kept)
            #expect(s.attendedPositions(layer: 1).count == s.cacheLength)
        }
        // The cache itself keeps every row (the code gathers per step).
        #expect(p.cache.tokenCounts.allSatisfy { $0 == ids.count - 73 + span + 3 })
        #expect(c.report().notes.contains { $0.contains("decode steps re-selected") })
        // Bytes read: layers < L read the whole cache, layers ≥ L only the selected rows.
        let hook = c.decodeHook as! DyCokeHook
        let config = model.language.config
        let rowBytes = 2 * config.kvHeads * config.headDim * 4
        #expect(hook.decodeReads.count == steps.count)
        for (read, s) in zip(hook.decodeReads, steps) {
            #expect(read.cachedBytes == config.layers * s.cacheLength * rowBytes)
            #expect(read.readBytes == (2 * s.cacheLength + (config.layers - 2) * s.attendedCount) * rowBytes)
            if s.reselected { #expect(read.readBytes < read.cachedBytes) }
        }
        #expect(c.report().notes.contains { $0.contains("K/V bytes read over 3 decode steps") })
    }

    @Test func dyCokeRefusesShortVideosAndBadSettings() throws {
        let (model, _, video, _) = try Self.pooled()
        let four = LlavaVideo(frames: Array(video.frames.prefix(4)))
        let c = try MethodCatalog.compression(method: "dycoke", budget: .ratio(0.25))
        let ids = [1, 15, VideoCompressionFixture.videoToken, 33]
        #expect { _ = try model.prefill(inputIDs: ids, images: [], videos: [four], hook: c.prefillHook, videoHook: c.videoHook) } throws: {
            "\($0)".contains("more than 4 frames")
        }
        #expect { _ = try MethodCatalog.compression(method: "dycoke", budget: .ratio(0.25), parameters: ["k": "1.5"]) } throws: { "\($0)".contains("[0, 1]") }
        #expect { _ = try MethodCatalog.compression(method: "dycoke", budget: .ratio(0.25), parameters: ["l": "0"]) } throws: { "\($0)".contains("L = 0") }
        #expect { _ = try MethodCatalog.compression(method: "vidcom2", budget: .ratio(0.25), parameters: ["window": "2"]) } throws: { "\($0)".contains("unknown parameter") }
    }

    /// The image methods the seed compares on video run in the decoder over the video's rows.
    @Test(arguments: ["random", "fastv", "pdrop", "sparsevlm", "dart"])
    func decoderSideImageMethodsRunOnVideo(_ method: String) throws {
        let (model, ids, video, _) = try Self.pooled()
        let c = try MethodCatalog.compression(method: method, budget: .ratio(0.25))
        #expect(c.visionHook == nil && c.videoHook == nil)
        let p = try model.prefill(inputIDs: ids, images: [], videos: [video], hook: c.prefillHook)
        let r = c.report()
        #expect(r.visualTokensBefore == 73, "\(method): \(r.notes)")
        #expect(r.achievedVisualTokens < 73, "\(method): \(r.notes)")
        #expect((p.decoder.visualRowsPerLayer.last ?? 73) < 73)
    }

    @Test func videoAndDecoderMethodsCombine() throws {
        let (model, ids, video, _) = try Self.pooled()
        let v = try MethodCatalog.compression(method: "vidcom2", budget: .ratio(0.5))
        let f = try MethodCatalog.compression(method: "fastv", budget: .count(10))
        let p = try model.prefill(inputIDs: ids, images: [], videos: [video], hook: f.prefillHook, videoHook: v.videoHook)
        #expect(f.report().visualTokensBefore == p.videoTokens[0])
        #expect(p.decoder.visualRowsPerLayer.last == 10)
    }

    @Test func visionSideMethodsAreRefusedOnVideo() throws {
        let (model, ids, video, _) = try Self.pooled()
        let c = try MethodCatalog.compression(method: "visionzip", budget: .count(4))
        #expect { _ = try model.prefill(inputIDs: ids, images: [], videos: [video], visionHook: c.visionHook) } throws: {
            "\($0)".contains("acts on images")
        }
    }
}

/// PruneVid and HoliTom in the model: each hook calls its method's function on the model's own signals.
@Suite struct CompressionVideoMergeTests {
    @Test func holiTomUsesTheTowersReceivedAttention() throws {
        let (model, ids, video, features) = try CompressionVideoTests.pooled()
        let c = try MethodCatalog.compression(method: "holitom", budget: .ratio(0.25), parameters: ["tau": "0.8"])
        let p = try model.prefill(inputIDs: ids, images: [], videos: [video], videoHook: c.videoHook)
        let attention = try #require(try model.videoFeatures(video, receivedAttention: true).receivedAttention)
        #expect(attention.shape == [8, 9])
        // Each frame's received attention is a mean of softmax columns: it sums to (25 patches / 25) pooled.
        #expect(attention.values.allSatisfy { $0 > 0 })
        let direct = try HoliTom.outer(features: try features.rows(0..<72), frames: 8, attention: attention,
                                       parameters: .init(retainRatio: 0.25, staticThreshold: 0.8))
        let e = try model.embedPrompt(inputIDs: ids, images: [], videos: [video], videoHook: c.videoHook)
        #expect(try e.embeddings.rows(4..<(4 + direct.tokens.rows)).values == direct.tokens.values)
        #expect(p.videoTokens == [direct.tokens.rows + 1] && c.report().achievedVisualTokens == direct.compression.achievedCount)
        #expect(c.report().requestedVisualTokens == 18)
    }

    @Test func pruneVidMergesThenSelects() throws {
        let (model, ids, video, features) = try CompressionVideoTests.pooled()
        let c = try MethodCatalog.compression(method: "prunevid", budget: .ratio(0.25), parameters: ["layer": "1", "tau": "0.9"])
        let p = try model.prefill(inputIDs: ids, images: [], videos: [video], hook: c.prefillHook, videoHook: c.videoHook)
        let merge = try PruneVid.merge(frames: try features.rows(0..<72), frameCount: 8, parameters: .init(staticThreshold: 0.9))
        #expect(p.videoTokens == [merge.tokens.rows + 1])
        // Layers 0–1 ran on every row; from layer 2 on only the selected rows; the caches of 0–1 were cut too.
        let rows = p.decoder.tokensPerLayer
        #expect(rows[0] == rows[1] && rows[2] < rows[1] && rows[2] == rows[3])
        #expect(p.cache.tokenCounts.allSatisfy { $0 == rows[2] })
        #expect(c.report().positionPolicy == .keepOriginal && c.report().achievedVisualTokens == rows[2] - (ids.count - 73) - 1)
    }

    @Test func pruneVidAndHoliTomRefuseWhatTheirCodeCannotDo() throws {
        let (model, _, video, _) = try CompressionVideoTests.pooled()
        let six = LlavaVideo(frames: Array(video.frames.prefix(6)))
        let ids = [1, 15, VideoCompressionFixture.videoToken, 33]
        let c = try MethodCatalog.compression(method: "prunevid", budget: .ratio(0.25))
        #expect { _ = try model.prefill(inputIDs: ids, images: [], videos: [six], hook: c.prefillHook, videoHook: c.videoHook) } throws: {
            "\($0)".contains("7 nearest of 6")
        }
        // The selection layer beyond the model: merge only, said so.
        let deep = try MethodCatalog.compression(method: "prunevid", budget: .ratio(0.25), parameters: ["layer": "10"])
        let (fullIDs, full) = try VideoCompressionFixture.inputs()
        _ = try model.prefill(inputIDs: fullIDs, images: [], videos: [full], hook: deep.prefillHook, videoHook: deep.videoHook)
        #expect(deep.report().notes.contains { $0.contains("merge stage only") })
        #expect { _ = try MethodCatalog.compression(method: "holitom", budget: .ratio(0.25), parameters: ["beta": "2"]) } throws: { "\($0)".contains("β") }
    }
}

/// FastVID in the model: the pooling head's signals, original positions, and a clear error without the head.
@Suite struct CompressionVideoFastVIDTests {
    @Test func fastVIDKeepsOriginalPositions() throws {
        let (model, ids, video, features) = try CompressionVideoTests.pooled()
        let c = try MethodCatalog.compression(method: "fastvid", budget: .ratio(0.5), parameters: ["segments": "2", "anchor_stride": "2"])
        let p = try model.prefill(inputIDs: ids, images: [], videos: [video], videoHook: c.videoHook)
        let frames = try #require(try model.videoFeatures(video, towerFeatures: true).towerFeatures)
        let signals = try SigLIPPoolingHead(model: model).signals(frames: frames, pooledSide: 3)
        #expect(signals.global.shape == [8, 32] && signals.salience.shape == [8, 9])
        let direct = try FastVID.compress(videoTokens: try features.rows(0..<72), frames: 8, salience: signals.salience, globalFeatures: signals.global,
                                          parameters: .init(retentionRatio: 0.5, segmentCount: 2, anchorStride: 2))
        #expect(p.videoSources[0] == direct.compression.kept + [72])
        // Positions: prefix 0…3, the kept rows at 4 + their index, the newline at 76, the text after at 77…81.
        #expect(p.decoder.positions == Array(0..<4) + direct.compression.kept.map { 4 + $0 } + [76] + Array(77..<82))
        #expect(c.report().positionPolicy == .keepOriginal && !p.trace.positionsRenumbered && p.cache.nextPosition == 82)
    }

    @Test func fastVIDNeedsThePoolingHead() throws {
        let model = try LlavaModel.load(folder: modelsFixture("llava-onevision"))
        let ref = try ModelsReference("llava-onevision")
        let video = try LlavaOnevisionTests.video(ref)
        let frames = Array(repeating: video.frames, count: 2).flatMap { $0 }  // 8 frames
        let c = try MethodCatalog.compression(method: "fastvid", budget: .ratio(0.5))
        #expect { _ = try model.prefill(inputIDs: [1, LlavaOnevisionTests.videoToken, 2], images: [], videos: [LlavaVideo(frames: frames)],
                                         videoHook: c.videoHook) } throws: { "\($0)".contains("attention-pooling head") }
    }
}
