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
        guard maxNewTokens >= 1 else { throw VLMRunError("max new tokens must be at least 1, got \(maxNewTokens)") }
        let imageID = model.config.imageTokenID
        let placeholders = prompt.inputIDs.filter { $0 == imageID }.count
        guard placeholders == 1 else {
            throw VLMRunError("prompt has \(placeholders) image tokens (id \(imageID)); exactly one is needed")
        }
        let vocab = model.config.text.vocabSize
        if let bad = prompt.inputIDs.first(where: { $0 < 0 || $0 >= vocab }) {
            throw VLMRunError("prompt token id \(bad) is outside the vocabulary (0..<\(vocab))")
        }
        let visual = try visualTokenCount(image)
        let length = expandedLength(prompt, visualTokens: visual)
        let context = model.config.text.maxPositionEmbeddings
        guard length <= context else {
            throw VLMRunError("prompt is \(length) tokens (\(length - visual) text + \(visual) visual), longer than the context (max_position_embeddings \(context))")
        }
        var notes = loadNotes + prompt.notes
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
        let t0 = DispatchTime.now().uptimeNanoseconds
        let prefill = try model.prefill(inputIDs: prompt.inputIDs, images: [image.llava],
                                        hook: active?.prefillHook, visionHook: active?.visionHook)
        let prefillMs = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
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
            logits = try model.decodeStep(token: t, cache: prefill.cache)
            decodeNs += DispatchTime.now().uptimeNanoseconds - s
            decodeSteps += 1
        }

        let kept = try keptVisualIndices(prefill: prefill, compression: active, report: report, total: visual)
        if let r = report { notes += r.notes }
        let keptCount = report?.achievedVisualTokens ?? kept.image.count
        return VLMRunResult(
            generatedIDs: tokens,
            text: tokenizer?.decode(tokens, skipSpecialTokens: true) ?? "",
            promptTokens: length,
            visualTokensTotal: visual,
            visualTokensKept: keptCount,
            keptIndices: kept.image,
            keptPromptIndices: kept.prompt,
            imageSpans: prefill.imageSpans,
            prefillMs: prefillMs,
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
    /// last layer), mapped back through the image's span (and through `visualRowPatches` when a
    /// vision stage of the method reordered the rows).
    func keptVisualIndices(prefill: LlavaPrefillResult, compression: ModelCompression?, report: CompressionRunReport?,
                           total: Int) throws -> (image: [Int], prompt: [Int]?) {
        guard let compression else { return (Array(0..<total), nil) }
        if compression.prefillHook != nil {
            let promptKept = (report?.keptIndices.isEmpty == false) ? report!.keptIndices : prefill.decoder.keptOriginalIndices
            guard let span = prefill.imageSpans.first else { return ([], promptKept) }
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
