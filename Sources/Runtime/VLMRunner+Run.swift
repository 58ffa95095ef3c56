import Foundation
import Models
import Tensors
import TokenCompression

extension VLMRunner {
    /// Runs one prompt with one image: prefill (through the method's hooks when given), greedy
    /// decoding of up to `maxNewTokens`, timings and memory figures.
    ///
    /// A budget that keeps every visual token runs uncompressed with an explicit note; a prompt
    /// longer than `max_position_embeddings` is an error; decoding stops at the context end (noted).
    public func run(prompt: VLMPrompt, image: VLMPreparedImage, compression: ModelCompression? = nil,
                    maxNewTokens: Int = 16) throws -> VLMRunResult {
        try run(prompt: prompt, visual: .image(image), compression: compression, maxNewTokens: maxNewTokens)
    }

    /// Runs one prompt with one video (LLaVA-OneVision) as `run(prompt:image:)` does: the video's
    /// rows are the visual span a decoder-side (`PrefillHook`) method sees; a vision-side method
    /// is refused by the model (its hook acts on image tiles only).
    public func run(prompt: VLMPrompt, video: VLMPreparedVideo, compression: ModelCompression? = nil,
                    maxNewTokens: Int = 16) throws -> VLMRunResult {
        _ = try requireVideoPath()
        return try run(prompt: prompt, visual: .video(video), compression: compression, maxNewTokens: maxNewTokens)
    }

    /// What one run looks at.
    enum Visual {
        case image(VLMPreparedImage)
        case video(VLMPreparedVideo)
    }

    func run(prompt: VLMPrompt, visual input: Visual, compression: ModelCompression?, maxNewTokens: Int) throws -> VLMRunResult {
        guard maxNewTokens >= 1 else { throw VLMRunError("max new tokens must be at least 1, got \(maxNewTokens)") }
        let imageID = model.config.imageTokenID
        let videoID = model.config.videoTokenID
        let imageCount = prompt.inputIDs.filter { $0 == imageID }.count
        let videoCount = videoID.map { id in prompt.inputIDs.filter { $0 == id }.count } ?? 0
        let visual: Int
        switch input {
        case .image(let image):
            guard imageCount == 1 else {
                throw VLMRunError("prompt has \(imageCount) image tokens (id \(imageID)); exactly one is needed")
            }
            guard videoCount == 0 else { throw VLMRunError("prompt has \(videoCount) video tokens (id \(videoID!)) but no video is given") }
            visual = try visualTokenCount(image)
        case .video(let video):
            guard videoCount == 1 else {
                throw VLMRunError("prompt has \(videoCount) video tokens (id \(videoID.map(String.init) ?? "none")); exactly one is needed")
            }
            guard imageCount == 0 else { throw VLMRunError("prompt has \(imageCount) image tokens (id \(imageID)) but no image is given") }
            visual = try visualTokenCount(video)
        }
        let vocab = model.config.text.vocabSize
        if let bad = prompt.inputIDs.first(where: { $0 < 0 || $0 >= vocab }) {
            throw VLMRunError("prompt token id \(bad) is outside the vocabulary (0..<\(vocab))")
        }
        let length = prompt.inputIDs.count - 1 + visual
        let context = model.config.text.maxPositionEmbeddings
        guard length <= context else {
            throw VLMRunError("prompt is \(length) tokens (\(length - visual) text + \(visual) visual), longer than the context (max_position_embeddings \(context))")
        }
        var notes = loadNotes + prompt.notes
        if case .video = input { notes += videoLoadNotes }
        var active = compression
        if let c = compression, let note = try Self.noOpNote(budget: c.budget, visualTokens: visual, method: c.info.name) {
            notes.append(note)
            active = nil
        }
        var steps = maxNewTokens
        if length + maxNewTokens - 1 > context {
            steps = max(1, context - length + 1)
            notes.append("decoding stops after \(steps) tokens at the context end (max_position_embeddings \(context))")
        }

        MemoryAccounting.resetPeak()
        // Times the decoder's part of the prefill apart from the visual encoding before it.
        let clock = VLMDecoderClock(wrapping: active?.prefillHook)
        let t0 = DispatchTime.now().uptimeNanoseconds
        let prefill: LlavaPrefillResult
        switch input {
        case .image(let image):
            prefill = try model.prefill(inputIDs: prompt.inputIDs, images: [image.llava], hook: clock,
                                        visionHook: active?.visionHook)
        case .video(let video):
            prefill = try model.prefill(inputIDs: prompt.inputIDs, images: [], videos: [video.llava], hook: clock,
                                        visionHook: active?.visionHook, videoHook: active?.videoHook)
        }
        let span: Range<Int>?
        if case .video = input { span = prefill.videoSpans.first } else { span = prefill.imageSpans.first }
        let t1 = DispatchTime.now().uptimeNanoseconds
        let prefillMs = Double(t1 - t0) / 1e6
        let llmPrefillMs = Double(t1 - (clock.decoderStart ?? t0)) / 1e6
        let kvBytes = prefill.cache.byteCount
        let report = active?.report()

        // Greedy decoding, timed per step.
        let stops = stopTokens
        var tokens: [Int] = []
        var logits = prefill.logits
        var decodeNs: UInt64 = 0
        var decodeSteps = 0
        while tokens.count < steps {
            let t = DecoderLM.argmax(logits)
            tokens.append(t)
            if stops.contains(t) || tokens.count == steps { break }
            let s = DispatchTime.now().uptimeNanoseconds
            logits = try model.decodeStep(token: t, cache: prefill.cache, hook: active?.decodeHook)
            decodeNs += DispatchTime.now().uptimeNanoseconds - s
            decodeSteps += 1
        }

        let kept = try keptVisualIndices(prefill: prefill, span: span, compression: active, report: report, total: visual)
        // A decode hook (DyCoke's KV pruning) reports what decoding did only once it has run: its notes
        // come from a report taken now; the kept rows above are the prefill's.
        let final = active?.decodeHook != nil && decodeSteps > 0 ? active?.report() : report
        if let r = final { notes += r.notes }
        let keptCount = report?.achievedVisualTokens ?? kept.image.count
        return VLMRunResult(
            generatedIDs: tokens,
            text: tokenizer?.decode(tokens, skipSpecialTokens: true) ?? "",
            promptTokens: length,
            visualTokensTotal: visual,
            visualTokensKept: keptCount,
            keptIndices: kept.image,
            keptPromptIndices: kept.prompt,
            imageSpans: span.map { [$0] } ?? [],
            prefillMs: prefillMs,
            llmPrefillMs: llmPrefillMs,
            decodeMsPerToken: decodeSteps > 0 ? Double(decodeNs) / 1e6 / Double(decodeSteps) : 0,
            decodeSteps: decodeSteps,
            kvCacheBytes: kvBytes,
            peakTensorBytes: MemoryAccounting.peakBytes,
            processPeakRSS: MemoryAccounting.processPeakRSS,
            logits: prefill.logits,
            method: active?.info.name,
            methodReport: report,
            notes: notes,
            trace: prefill.trace)
    }

    /// Kept visual tokens as image-token indices. Vision-side methods report them directly;
    /// LLM-side methods report prompt indices (or, if they report none, the rows that reached the
    /// last layer), mapped back through the image's (or video's) span (and through `visualRowPatches` when a
    /// vision stage of the method reordered the rows).
    func keptVisualIndices(prefill: LlavaPrefillResult, span: Range<Int>?, compression: ModelCompression?,
                           report: CompressionRunReport?, total: Int) throws -> (image: [Int], prompt: [Int]?) {
        guard let compression else { return (Array(0..<total), nil) }
        // Video methods (VidCom², DyCoke, PruneVid, …) replace the video's rows before the LLM, and some also
        // cut rows in the decoder: what was kept is each row that reached the last layer, mapped back to the
        // video-local token it stands for (`videoSources`); the trailing newline (always kept) is not a frame token.
        if compression.videoHook != nil, let span, let sources = prefill.videoSources.first {
            let survivors = prefill.decoder.keptOriginalIndices
            let rows = survivors.filter { span.contains($0) }.map { $0 - span.lowerBound }
            guard rows.allSatisfy({ $0 < sources.count }) else {
                throw VLMRunError("method \(compression.info.name) kept video row beyond the \(sources.count) rows it made")
            }
            let newline = total - 1
            return (Set(rows.map { sources[$0] }).filter { $0 != newline }.sorted(), survivors)
        }
        if compression.prefillHook != nil {
            let promptKept = (report?.keptIndices.isEmpty == false) ? report!.keptIndices : prefill.decoder.keptOriginalIndices
            guard let span else { return ([], promptKept) }
            var image = promptKept.filter { span.contains($0) }.map { $0 - span.lowerBound }
            if let patches = report?.visualRowPatches {
                guard image.allSatisfy({ $0 < patches.count }) else {
                    throw VLMRunError("method \(compression.info.name) kept visual row beyond its \(patches.count) described rows")
                }
                image = Array(Set(image.flatMap { patches[$0] }))
            }
            return (image.sorted(), promptKept)
        }
        let image = report?.keptIndices ?? []
        if let bad = image.first(where: { $0 < 0 || $0 >= total }) {
            throw VLMRunError("method \(compression.info.name) reported kept index \(bad) outside the \(total) visual tokens")
        }
        return (image.sorted(), nil)
    }

    /// Convenience: prompt text and image file in, result out.
    public func run(text: String, imagePath: String, raw: Bool = false, compression: ModelCompression? = nil,
                    maxNewTokens: Int = 16) throws -> VLMRunResult {
        let image = try prepare(try Self.loadImage(path: imagePath))
        return try run(prompt: try prompt(text, raw: raw), image: image, compression: compression, maxNewTokens: maxNewTokens)
    }
}
