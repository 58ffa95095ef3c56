import Foundation
import ModelIO
import Testing
import Evaluation
import Tensors
import TokenCompression
@testable import Models

/// The tiny OneVision video fixture (tools/fixtures/make_onevision_video_compressed_fixtures.py):
/// 8 frames of 3×3 pooled cells (5×5 patches, so the pooling interpolates), 73 video rows.
enum VideoCompressionFixture {
    static var folder: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/compressed-video/onevision").path
    }
    static let videoStart = 4
    static let videoRows = 73
    static let videoToken = 158

    static func model() throws -> LlavaModel { try LlavaModel.load(folder: folder) }

    static func inputs() throws -> (ids: [Int], video: LlavaVideo) {
        let f = try SafetensorsFile(path: folder + "/inputs.safetensors")
        return (try f.integers("input_ids").map { Int($0) }, try LlavaVideo(pixelValues: try f.tensor("pixel_values_video")))
    }
}

/// Video compression inside LLaVA-OneVision against transformers fed the same video rows and
/// position ids: VidCom² and DyCoke (before the LLM; DyCoke's decode-time KV pruning recomputed
/// by the script from its rule), FastV and random (decoder cuts over the video span). With
/// `TOKC_WRITE_KEPT=DIR` set, the test writes what our runtime keeps to DIR/kept.json instead.
@Suite struct CompressionVideoParityTests {
    struct Run: Codable, Equatable {
        var video_sources: [Int]
        var positions: [Int]
        var stages: [CompressionParityTests.Stage]
        var dycoke_layer: Int?
        var dycoke_ratio: Double?
        var decode_selections: [[Int]?]?
        /// Merging methods: the pooled rows behind each video row (the reference averages them).
        var video_groups: [[Int]]?
        /// Layers 0...this whose cache the method cut to the last stage's rows after the prefill.
        var compact_layers: Int?
        /// Methods that make new values (HoliTom's β-weighted merges): the video rows themselves, and
        /// the tower attention they were chosen with (the reference recomputes that in transformers).
        var video_values: [[Float]]?
        var received_attention: [Float]?
        /// FastVID: the pooling head's global features and salience (the reference recomputes them).
        var global_features: [Float]?
        var salience: [Float]?
    }

    static let runs: [(name: String, method: String, budget: Budget, parameters: [String: String])] = [
        ("vidcom2", "vidcom2", .ratio(0.25), [:]),
        ("dycoke", "dycoke", .ratio(0.25), ["k": "0.7", "l": "2", "p": "0.7"]),
        ("fastv", "fastv", .ratio(0.25), [:]),
        ("random", "random", .ratio(0.25), [:]),
        ("prunevid", "prunevid", .ratio(0.25), ["layer": "1", "tau": "0.9"]),
        ("holitom", "holitom", .ratio(0.25), ["tau": "0.8"]),
        ("fastvid", "fastvid", .ratio(0.5), ["segments": "2", "anchor_stride": "2"]),
        // Not a registered method: every third frame row at its ORIGINAL position (FastVID's policy),
        // so the gaps in the position ids and the text after the video are checked against transformers.
        ("original-positions", "", .ratio(0.25), [:]),
    ]

    /// Keeps rows 0, 3, 6, … of the frames and the newline, at their original positions.
    final class KeepOriginalHook: VideoTokenHook {
        func compressVideo(_ video: PooledVideo) throws -> CompressedVideo? {
            let kept = Array(stride(from: 0, to: video.layout.frameTokens, by: 3))
            let rows = try Tensor.concatenateRows([try video.tokens.gatherRows(kept), video.newline])
            return try CompressedVideo(rows: rows, sources: kept + [video.layout.frameTokens], positions: .keepOriginal)
        }
    }

    static func compression(_ spec: (name: String, method: String, budget: Budget, parameters: [String: String])) throws -> ModelCompression {
        guard spec.method.isEmpty else { return try MethodCatalog.compression(method: spec.method, budget: spec.budget, parameters: spec.parameters) }
        let hook = KeepOriginalHook()
        return ModelCompression(info: FastVID.info, budget: spec.budget, prefillHook: nil, visionHook: nil, videoHook: hook,
                                report: { .empty(.keepOriginal) })
    }

    struct Ours {
        var run: Run
        var prefill: LlavaPrefillResult
        var report: CompressionRunReport
        /// Greedy tokens and, for DyCoke, each decode step's logits.
        var tokens: [Int]
        var stepLogits: [Tensor]
    }

    static func ours(_ name: String) throws -> Ours {
        let spec = runs.first { $0.name == name }!
        let model = try VideoCompressionFixture.model()
        let (ids, video) = try VideoCompressionFixture.inputs()
        let c = try compression(spec)
        let recorder = c.prefillHook.map { CompressionParityTests.Recorder($0) }
        // Decoder positions as the prefill starts: contiguous unless the video hook kept gaps.
        let embedded = try model.embedPrompt(inputIDs: ids, images: [], videos: [video], videoHook: c.videoHook)
        let p = try model.prefill(inputIDs: ids, images: [], videos: [video], hook: recorder, videoHook: c.videoHook)
        let positions = embedded.positions ?? Array(0..<p.expandedInputIDs.count)
        var tokens: [Int] = [], steps: [Tensor] = []
        var logits = p.logits
        for _ in 0..<3 {
            let t = DecoderLM.argmax(logits)
            tokens.append(t)
            logits = try model.language.decodeStep(token: t, cache: p.cache, hook: c.decodeHook)
            steps.append(logits)
        }
        var run = Run(video_sources: p.videoSources[0], positions: positions, stages: recorder?.stages ?? [])
        if let dycoke = c.decodeHook as? DyCokeHook {
            run.dycoke_layer = dycoke.pruneLayer
            run.dycoke_ratio = dycoke.pruneRatio
            run.decode_selections = dycoke.decodeSteps.map(\.selectedPositions)
        }
        if spec.method == "prunevid", let hook = c.prefillHook as? PruneVidHook {
            // The merge's own groups, from the method's function on the model's pooled rows.
            let pooled = try model.videoFeatures(video).features
            let m = try PruneVid.merge(frames: try pooled.rows(0..<72), frameCount: 8, parameters: hook.parameters)
            run.video_groups = m.compression.merged.map(\.sources) + [[72]]
            run.compact_layers = hook.parameters.selectedLayer
        }
        if spec.method == "fastvid" {
            let span = p.videoSpans[0]
            let e = try model.embedPrompt(inputIDs: ids, images: [], videos: [video], videoHook: c.videoHook)
            run.video_values = try span.map { try e.embeddings.rows($0..<($0 + 1)).values }
            let frames = try #require(try model.videoFeatures(video, towerFeatures: true).towerFeatures)
            let signals = try SigLIPPoolingHead(model: model).signals(frames: frames, pooledSide: 3)
            run.global_features = signals.global.values
            run.salience = signals.salience.values
        }
        if spec.method == "holitom" {
            let e = try model.embedPrompt(inputIDs: ids, images: [], videos: [video], videoHook: c.videoHook)
            let span = e.videoSpans[0]
            run.video_values = try (span.lowerBound..<span.upperBound).map { try e.embeddings.rows($0..<($0 + 1)).values }
            run.received_attention = try model.videoFeatures(video, receivedAttention: true).receivedAttention?.values
        }
        return Ours(run: run, prefill: p, report: c.report(), tokens: tokens, stepLogits: steps)
    }

    @Test func writeKeptWhenAsked() throws {
        guard let dir = ProcessInfo.processInfo.environment["TOKC_WRITE_KEPT"] else { return }
        var all: [String: Run] = [:]
        for r in Self.runs { all[r.name] = try Self.ours(r.name).run }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(all).write(to: URL(fileURLWithPath: dir + "/kept.json"))
    }

    @Test(arguments: runs.map(\.name))
    func compressedLogitsMatchTransformers(_ name: String) throws {
        let folder = VideoCompressionFixture.folder
        let expected = try JSONDecoder().decode([String: Run].self, from: Data(contentsOf: URL(fileURLWithPath: folder + "/kept.json")))
        let reference = try SafetensorsFile(path: folder + "/reference.safetensors")
        let ours = try Self.ours(name)
        // The reference was fed exactly what we keep now, and something was dropped.
        #expect(ours.run == expected[name])
        let visualAtEnd = ours.prefill.decoder.visualRowsPerLayer.last ?? VideoCompressionFixture.videoRows
        #expect(visualAtEnd < VideoCompressionFixture.videoRows, "\(name) kept every video row")
        let d = modelsMaxAbs(ours.prefill.logits, try reference.tensor("\(name)_logits"))
        #expect(d <= 1e-4, "\(name): compressed logits differ from transformers by \(d)")
        if name == "original-positions" {
            // Frame rows at 4 + 3i, the newline at 4 + 72, the text after it where it was (… 81).
            #expect(Array(ours.run.positions[4...6]) == [4, 7, 10] && ours.run.positions[28] == 76 && ours.run.positions.last == 81)
            #expect(ours.prefill.cache.nextPosition == 82 + 3 && !ours.prefill.trace.positionsRenumbered)
        }
        print("video parity \(name): \(ours.report.visualTokensBefore) → \(ours.report.achievedVisualTokens) tokens, max abs logits difference \(d)")
        let greedy = try reference.integers("\(name)_greedy").map { Int($0) }
        #expect(ours.tokens == greedy, "\(name): greedy \(ours.tokens), transformers \(greedy)")
        if reference.contains("\(name)_step_logits") {
            let steps = try reference.tensor("\(name)_step_logits")
            for (i, s) in ours.stepLogits.enumerated() {
                let ds = modelsMaxAbs(s, try steps.reshaped([steps.shape[0], steps.shape[1]]).rows(i..<(i + 1)))
                #expect(ds <= 1e-4, "\(name): decode step \(i) logits differ from transformers by \(ds)")
            }
        }
    }
}
