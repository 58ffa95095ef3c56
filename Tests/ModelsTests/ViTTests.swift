import Foundation
import Testing
import ModelIO
import Tensors
@testable import Models

/// The token plans of tools/fixtures/make_vit_fixtures.py (PLANS): per image, block → groups of rows
/// merged by size-weighted average (single-row groups: pruning).
let vitFixturePlans: [String: [[Int: [[Int]]]]] = [
    "vit": [[0: [0, 1, 3, 4, 6, 8, 9, 10, 12, 14, 15, 16].map { [$0] }, 2: [0, 2, 3, 5, 7, 8, 11].map { [$0] }],
            [0: [[0], [1, 2], [3], [4, 8], [5], [6], [7], [9, 10, 11], [12], [13], [14], [15, 16]],
             1: [[0], [1, 3], [2], [4], [5, 6], [7], [8, 9, 10], [11]]]],
    "deit-teacher": [[0: [0, 1, 2, 5, 6, 9, 12, 13, 17].map { [$0] }],
                     [0: [[0], [1], [2, 3, 4], [5], [6, 10], [7], [8], [9], [11, 12], [13], [14], [15], [16, 17]]]],
    "deit": [[1: [0, 1, 4, 7, 8, 9, 15].map { [$0] }], [:]],
    "clip": [[0: [0, 2, 3, 4, 7, 8, 11, 15, 16].map { [$0] }, 1: [[0], [1, 2], [3], [4, 5, 6], [7], [8]]], [:]],
]

/// ToMe's merge_wavg for explicit groups: each group becomes the size-weighted mean of its rows,
/// with the sizes summed; sizes stay nil when nothing was merged and there were none.
func vitMergeRows(_ h: Tensor, sizes: [Float]?, _ groups: [[Int]]) throws -> ViTTokenUpdate {
    let s = sizes ?? Array(repeating: 1, count: h.rows)
    let w = h.columns
    var out = Tensor(zeros: [groups.count, w])
    var newSizes: [Float] = []
    for (g, rows) in groups.enumerated() {
        let total = rows.reduce(Float(0)) { $0 + s[$1] }
        for c in 0..<w {
            var acc: Float = 0
            for r in rows { acc += h[r, c] * s[r] }
            out.withUnsafeMutableBufferPointer { $0[g * w + c] = acc / total }
        }
        newSizes.append(total)
    }
    let merged = groups.contains { $0.count > 1 }
    return ViTTokenUpdate(hidden: out, sizes: sizes == nil && !merged ? nil : newSizes)
}

/// Applies a fixed plan per image, with proportional attention, and records what it was shown.
final class VitPlanHook: ViTBlockHook {
    let plans: [[Int: [[Int]]]]
    var seen: [(block: Int, image: Int, rows: Int, protectedRows: Int, keys: [Int], sizes: [Float]?)] = []
    init(_ plans: [[Int: [[Int]]]]) { self.plans = plans }
    var proportionalAttention: Bool { true }
    func afterAttention(_ step: ViTBlockStep) throws -> ViTTokenUpdate? {
        seen.append((step.block, step.image, step.hidden.rows, step.protectedRows, step.keys.shape, step.sizes))
        guard let groups = plans[step.image][step.block] else { return nil }
        return try vitMergeRows(step.hidden, sizes: step.sizes, groups)
    }
}

/// Returns what a closure makes of each step (identity, bad rows, …).
final class VitClosureHook: ViTBlockHook {
    let body: (ViTBlockStep) throws -> ViTTokenUpdate?
    let after: ((ViTBlockStep, Tensor) throws -> Tensor?)?
    init(_ body: @escaping (ViTBlockStep) throws -> ViTTokenUpdate?, after: ((ViTBlockStep, Tensor) throws -> Tensor?)? = nil) {
        self.body = body
        self.after = after
    }
    func afterAttention(_ step: ViTBlockStep) throws -> ViTTokenUpdate? { try body(step) }
    func afterBlock(_ step: ViTBlockStep, output: Tensor) throws -> Tensor? { try after?(step, output) }
}

/// A fixture's weights in memory, optionally renamed or without some tensors.
func vitInMemoryStore(_ name: String, dropping: Set<String> = []) throws -> WeightStore {
    let file = try SafetensorsFile(path: modelsFixture(name) + "/model.safetensors")
    var tensors: [String: Tensor] = [:]
    for n in file.names where !dropping.contains(n) { tensors[n] = try file.tensor(n) }
    return WeightStore(tensors: tensors, location: "in-memory \(name)")
}

func vitErrorMessage(_ body: () throws -> Void) -> String {
    do { try body() } catch let e as ModelError { return e.message } catch { return "other error: \(error)" }
    return "no error"
}

@Suite struct ViTClassifierTests {
    @Test(arguments: ["vit", "deit-teacher", "deit"])
    func batchedLogitsMatchTransformers(_ name: String) throws {
        let model = try ViTClassifier.load(folder: modelsFixture(name))
        let ref = try ModelsReference(name)
        let pixels = try ref.tensor("pixel_values")
        let out = try model.forward(pixels)
        let want = try ref.tensor("logits")
        #expect(out.logits.shape == want.shape && out.logits.shape == [2, model.classCount])
        let d = modelsMaxAbs(out.logits, want)
        #expect(d <= 1e-4, "\(name): logits differ by \(d)")
        if ref.has("cls_logits") {
            #expect(modelsMaxAbs(try #require(out.clsLogits), try ref.tensor("cls_logits")) <= 1e-4)
            #expect(modelsMaxAbs(try #require(out.distillationLogits), try ref.tensor("distillation_logits")) <= 1e-4)
        } else {
            #expect(out.clsLogits == nil)
        }
        let t = model.config.tokenCount
        #expect(out.trace.rowsEnteringBlock == Array(repeating: [t, t], count: model.config.layers))
        #expect(out.trace.rowsEnteringMLP == out.trace.rowsEnteringBlock)
        print("ViT parity \(name): max |Δlogits| = \(d)")
    }

    @Test func configsAndHeads() throws {
        let vit = try ViTClassifier.load(folder: modelsFixture("vit"))
        #expect(vit.config.head == .vit && vit.config.specialTokens == 1 && vit.config.tokenCount == 17)
        #expect(vit.classCount == 10 && vit.labels.count == 10 && vit.labels[3] == "LABEL_3")
        let teacher = try ViTClassifier.load(folder: modelsFixture("deit-teacher"))
        #expect(teacher.config.head == .deitWithTeacher && teacher.config.tokenCount == 18 && teacher.classCount == 7)
        #expect(try teacher.store.info("cls_classifier.weight").dtype == .F16)
        let deit = try ViTClassifier.load(folder: modelsFixture("deit"))
        #expect(deit.config.head == .deit && !deit.config.qkvBias)
        #expect(try deit.store.info("classifier.weight").dtype == .BF16)
    }

    /// Images of a batch never see each other: each alone gives the batch's rows.
    @Test func batchEqualsImagesOneByOne() throws {
        let model = try ViTClassifier.load(folder: modelsFixture("deit-teacher"))
        let pixels = try ModelsReference("deit-teacher").tensor("pixel_values")
        let batch = try model.forward(pixels).logits
        let per = 3 * 32 * 32
        for b in 0..<2 {
            let one = try Tensor(shape: [1, 3, 32, 32], values: Array(pixels.values[(b * per)..<((b + 1) * per)]))
            let logits = try model.forward(one).logits
            #expect(modelsMaxAbs(logits, try batch.rows(b..<(b + 1))) < 1e-5)
        }
    }

    /// Pruning and size-weighted merging after the attention residual, different per image, with
    /// proportional attention in later blocks, against the same plans run by hand in transformers.
    @Test(arguments: ["vit", "deit-teacher", "deit"])
    func tokenPlansMatchTransformers(_ name: String) throws {
        let model = try ViTClassifier.load(folder: modelsFixture(name))
        let ref = try ModelsReference(name)
        let hook = VitPlanHook(vitFixturePlans[name]!)
        let out = try model.forward(try ref.tensor("pixel_values"), hook: hook)
        let d = modelsMaxAbs(out.logits, try ref.tensor("logits_hooked"))
        #expect(d <= 1e-4, "\(name): hooked logits differ by \(d)")
        #expect(hook.seen.count == 2 * model.config.layers)
        #expect(hook.seen.allSatisfy { $0.protectedRows == model.config.specialTokens && $0.keys == [$0.rows, model.config.hiddenSize] })
        print("ViT hooked parity \(name): max |Δlogits| = \(d)")
        if name == "vit" {
            #expect(out.trace.rowsEnteringBlock == [[17, 17], [12, 12], [12, 8]])
            #expect(out.trace.rowsEnteringMLP == [[12, 12], [12, 8], [7, 8]])
            // Sizes come back in the next step: image 1 after its block-0 merge.
            let step = try #require(hook.seen.first { $0.block == 1 && $0.image == 1 })
            #expect(step.sizes == [1, 2, 1, 2, 1, 1, 1, 3, 1, 1, 1, 2])
        }
    }

    @Test func identityHookChangesNothingAndDroppingChangesLaterBlocks() throws {
        let model = try ViTClassifier.load(folder: modelsFixture("vit"))
        let pixels = try ModelsReference("vit").tensor("pixel_values")
        let plain = try model.forward(pixels)
        var calls = 0
        let same = try model.forward(pixels, hook: VitClosureHook({ step in
            calls += 1
            return ViTTokenUpdate(hidden: step.hidden)
        }, after: { _, output in output }))
        #expect(calls == 6)
        #expect(same.logits.values == plain.logits.values)
        #expect(try model.forward(pixels, hook: VitClosureHook({ _ in nil })).logits.values == plain.logits.values)

        // Dropping the last 8 patches of image 0 in block 1: blocks 1 (MLP) and 2 run on 9 rows,
        // image 1 is untouched, and image 0's logits move.
        var shownToBlock2: [Int] = []
        let dropped = try model.forward(pixels, hook: VitClosureHook({ step in
            if step.block == 2 { shownToBlock2.append(step.hidden.rows) }
            return step.block == 1 && step.image == 0 ? ViTTokenUpdate(hidden: try step.hidden.rows(0..<9)) : nil
        }))
        #expect(shownToBlock2 == [9, 17])
        #expect(dropped.trace.rowsEnteringBlock == [[17, 17], [17, 17], [9, 17]])
        #expect(dropped.trace.rowsEnteringMLP == [[17, 17], [9, 17], [9, 17]])
        #expect(modelsMaxAbs(try dropped.logits.rows(1..<2), try plain.logits.rows(1..<2)) < 1e-5)
        #expect(modelsMaxAbs(try dropped.logits.rows(0..<1), try plain.logits.rows(0..<1)) > 1e-3)

        // afterBlock adds to the block output without changing the token set (to one feature: layer
        // norms would cancel a shift of every feature).
        let shifted = try model.forward(pixels, hook: VitClosureHook({ _ in nil }, after: { step, output in
            guard step.block == 1 else { return nil }
            var out = output
            out.withUnsafeMutableBufferPointer { p in for r in 0..<output.rows { p[r * output.columns] += 0.5 } }
            return out
        }))
        #expect(modelsMaxAbs(shifted.logits, plain.logits) > 1e-3)
    }

    @Test func badHookResultsAreRefused() throws {
        let model = try ViTClassifier.load(folder: modelsFixture("deit"))
        let pixels = try ModelsReference("deit").tensor("pixel_values")
        // Dropping the distillation token (row 1) would break the heads.
        #expect(vitErrorMessage { _ = try model.forward(pixels, hook: VitClosureHook({ step in
            ViTTokenUpdate(hidden: try step.hidden.gatherRows([0, 2, 3]))
        })) }.contains("protected"))
        #expect(vitErrorMessage { _ = try model.forward(pixels, hook: VitClosureHook({ step in
            ViTTokenUpdate(hidden: step.hidden, sizes: [1, 2])
        })) }.contains("sizes"))
        #expect(vitErrorMessage { _ = try model.forward(pixels, hook: VitClosureHook({ step in
            ViTTokenUpdate(hidden: step.hidden, sizes: Array(repeating: 0, count: step.hidden.rows))
        })) }.contains("positive"))
        #expect(vitErrorMessage { _ = try model.forward(pixels, hook: VitClosureHook({ _ in
            ViTTokenUpdate(hidden: Tensor(zeros: [4, 7]))
        })) }.contains("shape"))
        #expect(vitErrorMessage { _ = try model.forward(pixels, hook: VitClosureHook({ _ in nil }, after: { _, output in
            try output.rows(0..<3)
        })) }.contains("afterBlock"))
    }

    @Test func badInputsGiveClearErrors() throws {
        let model = try ViTClassifier.load(folder: modelsFixture("vit"))
        #expect(vitErrorMessage { _ = try model.forward(Tensor(zeros: [2, 3, 48, 48])) }.contains("fixed-size"))
        #expect(vitErrorMessage { _ = try model.forward(Tensor(zeros: [3, 32, 32])) }.contains("[batch, 3, 32, 32]"))
        // Missing weights name the tensor.
        let config = model.config
        let missing = vitErrorMessage {
            _ = try ViTClassifier(config: config, store: try vitInMemoryStore("vit", dropping: ["vit.encoder.layer.1.output.dense.bias"]))
        }
        #expect(missing.contains("vit.encoder.layer.1.output.dense.bias"))
        #expect(vitErrorMessage { _ = try ViTClassifier(config: config, store: try vitInMemoryStore("deit")) }.contains("no VIT weights"))
        // A config that does not match the weights.
        var wide = config
        wide.hiddenSize = 64
        #expect(vitErrorMessage { _ = try ViTClassifier(config: wide, store: model.store) }.contains("shape"))
        // Unsupported and mismatched model types.
        let swin = try modelsConfigFolder(#"{"model_type": "swin"}"#)
        #expect(vitErrorMessage { _ = try Models.load(folder: swin) }.contains("swin"))
        let swinArch = try modelsConfigFolder(#"{"architectures": ["SwinForImageClassification"], "model_type": "swin"}"#)
        #expect(vitErrorMessage { _ = try ViTClassifierConfig.load(folder: swinArch) }.contains("SwinForImageClassification"))
        let mixed = try modelsConfigFolder(#"{"architectures": ["ViTForImageClassification"], "model_type": "deit"}"#)
        #expect(vitErrorMessage { _ = try ViTClassifierConfig.load(folder: mixed) }.contains("does not match"))
        let labels = try modelsConfigFolder(#"{"architectures": ["ViTForImageClassification"], "id2label": {"0": "a", "2": "b"}}"#)
        #expect(vitErrorMessage { _ = try ViTClassifierConfig.load(folder: labels) }.contains("id2label"))
    }

    /// An absent field takes ViTConfig's class default (save_pretrained leaves defaults out).
    @Test func absentFieldsTakeTransformersDefaults() throws {
        let folder = try modelsConfigFolder(#"{"architectures": ["DeiTForImageClassificationWithTeacher"], "model_type": "deit", "qkv_bias": false}"#)
        let c = try ViTClassifierConfig.load(folder: folder)
        #expect(c.hiddenSize == 768 && c.layers == 12 && c.heads == 12 && c.intermediateSize == 3072)
        #expect(c.imageSize == 224 && c.patchSize == 16 && c.tokenCount == 198 && c.layerNormEps == 1e-12)
        #expect(c.hiddenAct == "gelu" && !c.qkvBias && c.labels.isEmpty)
        let vit = try ViTClassifierConfig.load(folder: try modelsConfigFolder(#"{"model_type": "vit"}"#))
        #expect(vit.head == .vit && vit.qkvBias && vit.tokenCount == 197)
        guard case .imageClassifier = try Models.load(folder: modelsFixture("deit")) else { Issue.record("deit"); return }
        guard case .clip = try Models.load(folder: modelsFixture("clip")) else { Issue.record("clip"); return }
    }
}

@Suite struct CLIPModelTests {
    /// The prompts of the fixture, as transformers' CLIPTokenizer encoded them (padding removed).
    func referenceIDs(_ ref: ModelsReference) throws -> [[Int]] {
        let ids = try ref.ints("input_ids"), lengths = try ref.ints("lengths")
        let width = ids.count / lengths.count
        return lengths.enumerated().map { i, n in Array(ids[(i * width)..<(i * width + n)]) }
    }

    static let prompts = ["a photo of a cat.", "a photo of a dog.", "A  Photo of a BIRD!", "a red car's wheel", "an apple, 2 pears"]

    @Test func zeroShotMatchesTransformers() throws {
        let model = try CLIPModel.load(folder: modelsFixture("clip"))
        let ref = try ModelsReference("clip")
        #expect(try model.tokenize(Self.prompts) == referenceIDs(ref))
        let text = try model.textFeatures(Self.prompts)
        let dText = modelsMaxAbs(text, try ref.tensor("text_features"))
        let pixels = try ref.tensor("pixel_values")
        let (image, trace) = try model.imageFeatures(pixels)
        let dImage = modelsMaxAbs(image, try ref.tensor("image_features"))
        #expect(trace.rowsEnteringBlock == [[17, 17], [17, 17]])
        let result = try model.zeroShot(images: pixels, classPrompts: Self.prompts)
        #expect(result.probabilities.shape == [2, 5])
        let dLogits = modelsMaxAbs(result.logitsPerImage, try ref.tensor("logits_per_image"))
        let dProbs = modelsMaxAbs(result.probabilities, try ref.tensor("probs"))
        #expect(dText <= 1e-4 && dImage <= 1e-4 && dLogits <= 1e-4 && dProbs <= 1e-4,
                "text \(dText), image \(dImage), logits \(dLogits), probabilities \(dProbs)")
        for b in 0..<2 { #expect(abs(result.probabilities.row(b).reduce(0, +) - 1) < 1e-5) }
        print("CLIP parity: text features \(dText), image features \(dImage), logits \(dLogits), probabilities \(dProbs)")
        // Text features computed once give the same result.
        let again = try model.zeroShot(images: pixels, textFeatures: text)
        #expect(again.probabilities.values == result.probabilities.values)
    }

    @Test func tokenPlanInTheVisionTowerMatchesTransformers() throws {
        let model = try CLIPModel.load(folder: modelsFixture("clip"))
        let ref = try ModelsReference("clip")
        let hook = VitPlanHook(vitFixturePlans["clip"]!)
        let result = try model.zeroShot(images: try ref.tensor("pixel_values"), classPrompts: Self.prompts, hook: hook)
        let d = modelsMaxAbs(result.probabilities, try ref.tensor("probs_hooked"))
        #expect(d <= 1e-4, "hooked probabilities differ by \(d)")
        #expect(result.trace.rowsEnteringMLP == [[9, 17], [6, 17]])
        #expect(hook.seen.allSatisfy { $0.protectedRows == 1 })
        print("CLIP hooked parity: max |Δprobabilities| = \(d)")
    }

    /// transformers pools the first eos_token_id; for the legacy eos_token_id 2, the largest id.
    /// The fixture's end token has the largest id, so both rules pick the same rows.
    @Test func eosPooling() throws {
        #expect(CLIPModel.pooledPosition(ids: [5, 7, 9, 3, 9], eosTokenID: 9) == 2)
        #expect(CLIPModel.pooledPosition(ids: [5, 7, 3], eosTokenID: 9) == 0)
        #expect(CLIPModel.pooledPosition(ids: [5, 70, 9, 70, 2], eosTokenID: 2) == 1)
        let model = try CLIPModel.load(folder: modelsFixture("clip"))
        var legacy = model.config
        legacy.text.eosTokenID = 2
        let old = try CLIPModel(config: legacy, store: model.store, tokenizer: model.tokenizer)
        #expect(try old.textFeatures(Self.prompts).values == model.textFeatures(Self.prompts).values)
    }

    @Test func badInputsGiveClearErrors() throws {
        let model = try CLIPModel.load(folder: modelsFixture("clip"))
        let pixels = try ModelsReference("clip").tensor("pixel_values")
        #expect(vitErrorMessage { _ = try model.zeroShot(images: Tensor(zeros: [1, 3, 28, 28]), classPrompts: ["a"]) }.contains("fixed-size"))
        let long = String(repeating: "cat dog ", count: 20)
        #expect(vitErrorMessage { _ = try model.zeroShot(images: pixels, classPrompts: [long]) }.contains("max_position_embeddings"))
        #expect(vitErrorMessage { _ = try model.zeroShot(images: pixels, classPrompts: []) }.contains("no prompts"))
        #expect(vitErrorMessage { _ = try model.textFeatures(tokenIDs: [[1, 100_000]]) }.contains("out of range"))
        let bare = try CLIPModel(config: model.config, store: model.store)
        #expect(vitErrorMessage { _ = try bare.zeroShot(images: pixels, classPrompts: ["a cat"]) }.contains("tokenizer.json"))
        #expect(vitErrorMessage { _ = try CLIPModel(config: model.config, store: try vitInMemoryStore("clip", dropping: ["text_projection.weight"])) }
            .contains("text_projection.weight"))
        let folder = try modelsConfigFolder(#"{"architectures": ["CLIPModel"], "vision_config": {"model_type": "siglip_vision_model"}}"#)
        #expect(vitErrorMessage { _ = try CLIPConfig.load(folder: folder) }.contains("siglip_vision_model"))
        // Absent sections take CLIPConfig's defaults (ViT-B/32 and the 12-layer text tower).
        let defaults = try CLIPConfig.load(folder: try modelsConfigFolder(#"{"architectures": ["CLIPModel"]}"#))
        #expect(defaults.projectionDim == 512 && defaults.vision.patchSize == 32 && defaults.vision.tokenCount == 50)
        #expect(defaults.text.vocabSize == 49408 && defaults.text.maxPositions == 77 && defaults.text.eosTokenID == 49407)
    }
}
