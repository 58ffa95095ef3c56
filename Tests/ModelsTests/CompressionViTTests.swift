import Foundation
import Testing
import ModelIO
import Tensors
import TokenCompression
@testable import Models

/// The classifier run by hand, block by block, from the model's own weights: embedding, then per block
/// norm, q/k/v, attention written out here (softmax(q·kᵀ/√d + log size) per head), the output projection
/// and residual, `afterAttention` (the method applied by hand), the MLP and residual, then `afterBlock`.
/// Heads as `ViTClassifier.forward`. One image `[1, 3, H, W]`.
struct ViTHandStep {
    let model: ViTClassifier

    struct Attention {
        var keys: Tensor
        /// `[heads, tokens]`: the [CLS] query's softmax row per head.
        var clsRows: Tensor
    }

    func logits(_ pixels: Tensor,
                afterAttention: (Int, Tensor, Attention, [Float]?) throws -> (Tensor, [Float]?),
                afterBlock: (Int, Tensor, Tensor, Tensor) throws -> Tensor = { _, _, out, _ in out }) throws -> Tensor {
        let store = model.store, enc = model.encoder
        let embedded = try model.embedding(pixels, store: store).hidden
        var x = embedded
        var sizes: [Float]? = nil
        let heads = enc.heads, hd = enc.width / heads
        for (i, block) in enc.blocks.enumerated() {
            let h = try block.norm1(x, store: store)
            let q = try block.q(h, store: store), k = try block.k(h, store: store), v = try block.v(h, store: store)
            let n = x.rows
            var mixed = Tensor(zeros: [n, enc.width])
            var cls = Tensor(zeros: [heads, n])
            for head in 0..<heads {
                for a in 0..<n {
                    var logits = [Double](repeating: 0, count: n)
                    for b in 0..<n {
                        var s = 0.0
                        for c in 0..<hd { s += Double(q[a, head * hd + c]) * Double(k[b, head * hd + c]) }
                        logits[b] = s / Double(hd).squareRoot() + (sizes.map { log(Double($0[b])) } ?? 0)
                    }
                    let m = logits.max()!
                    let e = logits.map { exp($0 - m) }
                    let z = e.reduce(0, +)
                    for b in 0..<n {
                        let p = e[b] / z
                        if a == 0 { cls[head, b] = Float(p) }
                        for c in 0..<hd { mixed[a, head * hd + c] += Float(p * Double(v[b, head * hd + c])) }
                    }
                }
            }
            try x.addInPlace(try block.o(mixed, store: store))
            (x, sizes) = try afterAttention(i, x, Attention(keys: k, clsRows: cls), sizes)
            let u = x
            let up = try block.fc1(try block.norm2(x, store: store), store: store).activated(enc.act)
            try x.addInPlace(try block.fc2(up, store: store))
            x = try afterBlock(i, u, x, embedded)
        }
        let first = try model.heads[0](try model.finalNorm(try x.rows(0..<1), store: store), store: store)
        guard model.heads.count == 2 else { return first }
        let second = try model.heads[1](try model.finalNorm(try x.rows(1..<2), store: store), store: store)
        return try (first + second).scaled(by: 0.5)
    }

    /// Keys averaged over heads, written out.
    static func headMean(_ k: Tensor, heads: Int) -> Tensor {
        let hd = k.columns / heads
        var out = Tensor(zeros: [k.rows, hd])
        for r in 0..<k.rows { for h in 0..<heads { for c in 0..<hd { out[r, c] += k[r, h * hd + c] / Float(heads) } } }
        return out
    }

    /// Image `b` of a batch, `[1, 3, H, W]`.
    static func image(_ pixels: Tensor, _ b: Int) throws -> Tensor {
        let per = pixels.count / pixels.shape[0]
        return try Tensor(shape: [1] + Array(pixels.shape.dropFirst()), values: Array(pixels.values[(b * per)..<((b + 1) * per)]))
    }
}

func vitShape(_ name: String) throws -> (ViTClassifier, ViTModelShape, Tensor) {
    let model = try ViTClassifier.load(folder: modelsFixture(name))
    return (model, ViTModelShape(model.config), try ModelsReference(name).tensor("pixel_values"))
}

/// Writes a Dense Adapters file for `layers` blocks of `width` (hidden 8, bottleneck 4), random weights.
func writeAdapters(_ path: String, layers: Int, width: Int, hidden: Int = 8, bottleneck: Int = 4, seed: UInt64 = 7,
                   scale: Float = 0.2, skip: Set<String> = [], extra: [String: Tensor] = [:]) throws {
    var rng = SplitMix64(seed: seed)
    func random(_ shape: [Int]) throws -> Tensor {
        try Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in (rng.uniform() * 2 - 1) * scale })
    }
    var w = SafetensorsWriter()
    let shapes: [(String, [Int], [Int])] = [("w1", [hidden, width], [hidden]), ("w2", [bottleneck, hidden], [bottleneck]),
                                            ("w3", [hidden, bottleneck], [hidden]), ("w4", [hidden, bottleneck + hidden], [hidden]),
                                            ("w5", [width, hidden], [width])]
    for i in 0..<layers {
        for (n, ws, bs) in shapes {
            let base = "blocks.\(i).adapter.\(n)"
            if !skip.contains(base + ".weight") { try w.add(base + ".weight", try random(ws)) }
            if !skip.contains(base + ".bias") { try w.add(base + ".bias", try random(bs)) }
        }
    }
    for (n, t) in extra { try w.add(n, t) }
    try w.write(to: path)
}

func vitTempPath(_ name: String) -> String {
    (NSTemporaryDirectory() as NSString).appendingPathComponent("tokc-vit-\(UUID().uuidString)-\(name)")
}

@Suite struct CompressionViTToMeTests {
    /// The in-model ToMe (every block, proportional attention, sizes and sources carried) against
    /// `ToMe.step` applied by hand at each block of the hand-stepped model.
    @Test(arguments: [("vit", "2", "constant"), ("vit", "4", "constant"), ("vit", "3", "decreasing"), ("deit-teacher", "4", "constant"),
                      ("deit", "3", "constant")])
    func inModelEqualsToMeStepByHand(_ name: String, _ r: String, _ schedule: String) throws {
        let (model, shape, pixels) = try vitShape(name)
        let c = try ViTToMeCompression.adapter.make(parameters: ["r": r, "schedule": schedule], shape: shape)
        let out = try model.forward(pixels, hook: c.hook)
        let rs = try ToMe.schedule(layers: shape.layers, r: Int(r)!, inflect: schedule == "decreasing" ? -1 : 0)
        var worst: Float = 0
        for b in 0..<pixels.shape[0] {
            var sources: [[Int]]? = nil
            let hand = try ViTHandStep(model: model).logits(try ViTHandStep.image(pixels, b)) { i, x, att, sizes in
                let step = try ToMe.step(x: x, metric: ViTHandStep.headMean(att.keys, heads: shape.heads), sizes: sizes, sources: sources,
                                         parameters: .init(r: rs[i], classToken: true, distillToken: shape.classTokens == 2))
                sources = step.sources
                return (step.x, step.sizes)
            }
            worst = max(worst, modelsMaxAbs(hand, try out.logits.rows(b..<(b + 1))))
            // The source map: the class tokens alone and first, the patches partitioned.
            let hs = try #require(sources)
            #expect(Array(hs.prefix(shape.classTokens)) == (0..<shape.classTokens).map { [$0] })
            let groups = c.tokenGroups()[b]
            #expect(groups == hs.dropFirst(shape.classTokens).map { $0.map { $0 - shape.classTokens } })
            #expect(groups.joined().sorted() == Array(0..<shape.patchCount))
        }
        print("ToMe in model vs ToMe.step by hand (\(name), r=\(r) \(schedule)): max |Δlogits| = \(worst)")
        #expect(worst <= 1e-5)
        let counts = ToMe.tokenCounts(initialTokens: shape.tokenCount, rs: rs, classToken: true, distillToken: shape.classTokens == 2)
        #expect(out.trace.rowsEnteringMLP.map { $0[0] } == Array(counts.dropFirst()))
        #expect(out.trace.rowsEnteringBlock.map { $0[1] } == Array(counts.dropLast()))
        #expect(c.report().achievedVisualTokens == counts.last)
    }

    /// DeiT's two protected tokens: never merged, first and second after every block, and its two
    /// heads still read them (the model refuses a hook that moves them).
    @Test func deitKeepsBothClassTokens() throws {
        let (model, shape, pixels) = try vitShape("deit-teacher")
        #expect(shape.classTokens == 2)
        let c = try ViTToMeCompression.adapter.make(parameters: ["r": "6"], shape: shape)
        var seen: [[Int]] = []
        final class Spy: ViTBlockHook {
            let inner: ViTBlockHook
            let record: (ViTBlockStep) -> Void
            init(_ inner: ViTBlockHook, _ record: @escaping (ViTBlockStep) -> Void) { self.inner = inner; self.record = record }
            var proportionalAttention: Bool { inner.proportionalAttention }
            func beforeBlocks(image: Int, hidden: Tensor) throws { try inner.beforeBlocks(image: image, hidden: hidden) }
            func afterAttention(_ step: ViTBlockStep) throws -> ViTTokenUpdate? {
                record(step)
                let u = try inner.afterAttention(step)
                if let u {
                    // Rows 0 and 1 come back unchanged, bit for bit.
                    #expect(try u.hidden.rows(0..<2).values == (try step.hidden.rows(0..<2)).values)
                    #expect(u.sizes?.prefix(2) == [1, 1])
                }
                return u
            }
        }
        _ = try model.forward(pixels, hook: Spy(c.hook) { seen.append([$0.block, $0.image, $0.protectedRows]) })
        #expect(seen.allSatisfy { $0[2] == 2 })
        #expect(c.tokenGroups().allSatisfy { $0.joined().sorted() == Array(0..<16) })
        // 18 tokens, r = 6: 18 → 12 → 7 (the second block clamps to ⌊(12 − 2)/2⌋ = 5).
        let out = try model.forward(pixels, hook: c.hook)
        #expect(out.trace.rowsEnteringMLP == [[12, 12], [7, 7]])
        #expect(c.report().notes.contains { $0.contains("r = 6 clamped at block 1 to 5") && $0.contains("2 protected") })
    }

    /// r beyond what the tokens allow is clamped per block as the authors' code does, and said so once.
    @Test func clampIsNoted() throws {
        let (model, shape, pixels) = try vitShape("vit")
        let c = try ViTToMeCompression.adapter.make(parameters: ["r": "16"], shape: shape)
        let out = try model.forward(pixels, hook: c.hook)
        #expect(out.trace.rowsEnteringMLP == [[9, 9], [5, 5], [3, 3]])
        let notes = c.report().notes
        #expect(notes.count == 1)
        #expect(notes.first?.contains("tome: r = 16 clamped at blocks 0, 1, 2 to 8, 4, 2 (17, 9, 5 tokens entering, 1 protected)") == true, "\(notes)")
        // A small r that fits says nothing; a second forward starts its report afresh.
        let small = try ViTToMeCompression.adapter.make(parameters: ["r": "2"], shape: shape)
        _ = try model.forward(pixels, hook: small.hook)
        _ = try model.forward(pixels, hook: small.hook)
        #expect(small.report().notes.isEmpty)
        #expect(small.report().visualTokensBefore == 17 && small.report().achievedVisualTokens == 11)
    }

    @Test func badParametersAreRefused() throws {
        let shape = ViTModelShape(layers: 12, width: 768, heads: 12, patchesPerSide: 14, classTokens: 1)
        for (p, fragment) in [(["r": "-1"], "r=-1"), (["r": "x"], "integer"), (["schedule": "cosine"], "constant or decreasing"),
                              (["k": "1"], "unknown parameter"), (["prop_attn": "maybe"], "boolean")] {
            #expect { try ViTToMeCompression.adapter.make(parameters: p, shape: shape) } throws: { "\($0)".contains(fragment) }
        }
        let c = try ViTToMeCompression.adapter.make(parameters: ["r": "16", "schedule": "decreasing", "prop_attn": "false"], shape: shape)
        #expect(c.setting == "r=16 decreasing no-prop-attn" && !c.hook.proportionalAttention)
        #expect(try ViTToMeCompression.adapter.make(shape: shape).hook.proportionalAttention)
    }
}

@Suite struct CompressionViTEViTTests {
    /// Counts per block follow EViT's rule at the depth-scaled blocks (3 blocks: 1, 2), and the
    /// in-model result equals `EViT.reorganize` applied by hand with the [CLS] row of each block.
    @Test func countsAndHandEquality() throws {
        let (model, shape, pixels) = try vitShape("vit")
        #expect(EViT.pruningBlocks(depth: 3) == [1, 2] && EViT.pruningBlocks(depth: 12) == [3, 6, 9] && EViT.pruningBlocks(depth: 24) == [6, 12, 18])
        let c = try ViTEViTCompression.adapter.make(parameters: ["keep_rate": "0.7"], shape: shape)
        let out = try model.forward(pixels, hook: c.hook)
        // 17 → 1 + ⌈0.7·16⌉ + 1 = 14 → 1 + ⌈0.7·13⌉ + 1 = 12.
        #expect(EViT.tokenCounts(initialTokens: 17, pruningBlocks: 2) == [17, 14, 12])
        #expect(out.trace.rowsEnteringMLP == [[17, 17], [14, 14], [12, 12]])
        #expect(out.trace.rowsEnteringBlock == [[17, 17], [17, 17], [14, 14]])
        var worst: Float = 0
        for b in 0..<2 {
            let hand = try ViTHandStep(model: model).logits(try ViTHandStep.image(pixels, b)) { i, x, att, sizes in
                guard i >= 1 else { return (x, sizes) }
                return (try EViT.reorganize(x: x, clsAttentionHeads: att.clsRows).x, sizes)
            }
            worst = max(worst, modelsMaxAbs(hand, try out.logits.rows(b..<(b + 1))))
        }
        print("EViT in model vs EViT.reorganize by hand: max |Δlogits| = \(worst)")
        #expect(worst <= 1e-5)
        // The fused token holds every patch it absorbed: the groups still cover all 16 patches.
        for groups in c.tokenGroups() {
            #expect(groups.count == 11 && groups.joined().sorted() == Array(0..<16))
        }
        // Without fusion the dropped patches are gone.
        let noFuse = try ViTEViTCompression.adapter.make(parameters: ["keep_rate": "0.5", "fuse": "false"], shape: shape)
        let pruned = try model.forward(pixels, hook: noFuse.hook)
        #expect(pruned.trace.rowsEnteringMLP == [[17, 17], [9, 9], [5, 5]])
        #expect(noFuse.droppedPatches().allSatisfy { $0.count == 12 })
    }

    /// DeiT: the distillation token stays second and is no candidate; N − 2 patches are scored.
    @Test func deitDistillationTokenStays() throws {
        let (model, shape, pixels) = try vitShape("deit")
        #expect(EViT.pruningBlocks(depth: 2) == [1])
        let c = try ViTEViTCompression.adapter.make(parameters: ["keep_rate": "0.7"], shape: shape)
        let out = try model.forward(pixels, hook: c.hook)
        // [CLS, dist] + ⌈0.7·16⌉ kept + fused = 15.
        #expect(out.trace.rowsEnteringMLP == [[18, 18], [15, 15]])
        #expect(c.report().notes.contains { $0.contains("distillation token is kept second") })
        #expect(c.tokenGroups().allSatisfy { $0.joined().sorted() == Array(0..<16) })
    }

    @Test func badParametersAreRefused() throws {
        let shape = ViTModelShape(layers: 3, width: 32, heads: 4, patchesPerSide: 4, classTokens: 1)
        for (p, fragment) in [(["keep_rate": "0"], "keep_rate=0"), (["keep_rate": "1.5"], "(0, 1]"), (["blocks": "2,1"], "ascending"),
                              (["blocks": "3"], "0..<3"), (["fuse": "2"], "boolean")] {
            #expect { try ViTEViTCompression.adapter.make(parameters: p, shape: shape) } throws: { "\($0)".contains(fragment) }
        }
        let one = try ViTEViTCompression.adapter.make(parameters: [:], shape: ViTModelShape(layers: 1, width: 32, heads: 4, patchesPerSide: 4, classTokens: 1))
        #expect(one.setting == "keep_rate=0.7")
    }
}

@Suite struct CompressionViTSparseTuningTests {
    /// Random adapters change the outputs; the in-model result equals the authors' loop written out for
    /// this depth (pruning blocks 1, 2: after block 0 x += x_embed + a₀, after block 1 x += a₁, a₂ used
    /// only inside block 2), with EViT by hand at blocks 1 and 2.
    @Test func adaptersByHand() throws {
        let (model, shape, pixels) = try vitShape("vit")
        let path = vitTempPath("adapters.safetensors")
        try writeAdapters(path, layers: 3, width: 32)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let c = try ViTSparseTuningCompression.adapter.make(parameters: ["adapters": path], shape: shape)
        let out = try model.forward(pixels, hook: c.hook)
        #expect(out.trace.rowsEnteringMLP == [[17, 17], [14, 14], [12, 12]])
        let evit = try model.forward(pixels, hook: try ViTEViTCompression.adapter.make(parameters: ["keep_rate": "0.7"], shape: shape).hook)
        #expect(modelsMaxAbs(out.logits, evit.logits) > 1e-3, "the adapters change the outputs")
        #expect(c.extraFlops().allSatisfy { $0 > 0 })

        let adapters = try ViTSparseTuningCompression.load(path: path, shape: shape).adapters
        #expect(c.head == nil)
        var worst: Float = 0
        for b in 0..<2 {
            var a: [Int: Tensor] = [:]
            let hand = try ViTHandStep(model: model).logits(try ViTHandStep.image(pixels, b), afterAttention: { i, x, att, sizes in
                guard i >= 1 else { return (x, sizes) }
                return (try EViT.reorganize(x: x, clsAttentionHeads: att.clsRows).x, sizes)
            }, afterBlock: { i, u, out, embedded in
                a[i] = try adapters[i](u)
                var x = try out + a[i]!
                if i == 0 { x = try x + (try embedded + a[0]!) }
                if i == 1 { x = try x + a[1]! }
                return x
            })
            worst = max(worst, modelsMaxAbs(hand, try out.logits.rows(b..<(b + 1))))
        }
        print("Sparse-Tuning in model vs by hand: max |Δlogits| = \(worst)")
        #expect(worst <= 1e-5)
    }

    /// A file that does not fit the model is refused before the model runs, naming what is wrong.
    @Test func mismatchedAdapterFilesAreClearErrors() throws {
        let shape = ViTModelShape(layers: 3, width: 32, heads: 4, patchesPerSide: 4, classTokens: 1)
        func message(_ write: (String) throws -> Void) throws -> String {
            let path = vitTempPath("bad.safetensors")
            try write(path)
            defer { try? FileManager.default.removeItem(atPath: path) }
            do { _ = try ViTSparseTuningCompression.adapter.make(parameters: ["adapters": path], shape: shape) } catch { return "\(error)" }
            return "no error"
        }
        #expect(try message { try writeAdapters($0, layers: 3, width: 48) }.contains("the model's hidden_size is 32"))
        #expect(try message { try writeAdapters($0, layers: 2, width: 32) }.contains("no 'blocks.2.adapter.w1.weight'"))
        #expect(try message { try writeAdapters($0, layers: 12, width: 32) }.contains("but the model has 3 blocks (0...2)"))
        #expect(try message { try writeAdapters($0, layers: 3, width: 32, extra: ["adapters.0.w1.weight": Tensor(zeros: [8, 32])]) }.contains("mixes"))
        #expect(try message { try writeAdapters($0, layers: 3, width: 32, extra: ["head.fc.weight": Tensor(zeros: [10, 32])]) }.contains("unexpected tensor 'head.fc.weight'"))
        #expect(try message { try writeAdapters($0, layers: 3, width: 32, extra: ["head.linear.weight": Tensor(zeros: [10, 48]), "head.linear.bias": Tensor(zeros: [10])]) }.contains("hidden_size is 32"))
        #expect(try message { try writeAdapters($0, layers: 3, width: 32, extra: ["head.linear.weight": Tensor(zeros: [10, 32]), "head.linear.bias": Tensor(zeros: [10]), "head.norm.running_mean": Tensor(zeros: [32])]) }.contains("both head.norm.running_mean and head.norm.running_var"))
        #expect(try message { try writeAdapters($0, layers: 3, width: 32, skip: ["blocks.1.adapter.w4.bias"]) }.contains("blocks.1.adapter.w4.bias"))
        #expect(try message { try writeAdapters($0, layers: 3, width: 32, extra: ["blocks.0.adapter.w6.weight": Tensor(zeros: [2, 2])]) }.contains("unexpected tensor 'blocks.0.adapter.w6.weight'"))
        #expect(try message { path in
            try writeAdapters(path, layers: 3, width: 32)
            // W4 of block 2 replaced by one that does not take [h1; h2].
            var w = SafetensorsWriter()
            let file = try SafetensorsFile(path: path)
            for n in file.names { try w.add(n, n == "blocks.2.adapter.w4.weight" ? Tensor(zeros: [8, 8]) : try file.tensor(n)) }
            try w.write(to: path)
        }.contains("blocks.2.adapter.w4 weight has shape [8, 8], expected [8, 12]"))
        #expect(try message { try Data("not safetensors".utf8).write(to: URL(fileURLWithPath: $0)) }.contains("cannot read adapters file"))
        #expect { try ViTSparseTuningCompression.adapter.make(parameters: ["adapters": "/nonexistent/a.safetensors"], shape: shape) } throws: {
            "\($0)".contains("does not exist")
        }
        #expect { try ViTSparseTuningCompression.adapter.make(parameters: [:], shape: shape) } throws: { "\($0)".contains("adapters=PATH") }
        // Tensors that are neither adapters nor a head are ignored with a note.
        let path = vitTempPath("extra.safetensors")
        try writeAdapters(path, layers: 3, width: 32, extra: ["optimizer.step": Tensor(zeros: [1])])
        defer { try? FileManager.default.removeItem(atPath: path) }
        let model = try ViTClassifier.load(folder: modelsFixture("vit"))
        let c = try ViTSparseTuningCompression.adapter.make(parameters: ["adapters": path], shape: shape)
        _ = try model.forward(try ModelsReference("vit").tensor("pixel_values"), hook: c.hook)
        #expect(c.report().notes.contains { $0.contains("1 tensor(s) of the adapters file ignored (optimizer.step)") })
    }

    /// The trainer's spelling (`adapters.{i}.{w}`) and its head: BatchNorm (eval) + Linear on the final
    /// [CLS] features replaces the model's head.
    @Test func trainerLayoutWithItsHead() throws {
        let (model, shape, pixels) = try vitShape("vit")
        let blocksPath = vitTempPath("blocks.safetensors"), trainerPath = vitTempPath("adapters.safetensors")
        try writeAdapters(blocksPath, layers: 3, width: 32)
        defer { try? FileManager.default.removeItem(atPath: blocksPath); try? FileManager.default.removeItem(atPath: trainerPath) }
        var rng = SplitMix64(seed: 3)
        let weight = try Tensor(shape: [10, 32], values: (0..<320).map { _ in rng.uniform() - 0.5 })
        let bias = try Tensor(shape: [10], values: (0..<10).map { _ in rng.uniform() - 0.5 })
        let mean = try Tensor(shape: [32], values: (0..<32).map { _ in rng.uniform() - 0.5 })
        let variance = try Tensor(shape: [32], values: (0..<32).map { _ in rng.uniform() + 0.1 })
        var w = SafetensorsWriter()
        w.metadata["batchnorm_eps"] = "1e-06"
        let source = try SafetensorsFile(path: blocksPath)
        for n in source.names {
            try w.add(n.replacingOccurrences(of: "blocks.", with: "adapters.").replacingOccurrences(of: ".adapter.", with: "."), try source.tensor(n))
        }
        try w.add("head.linear.weight", weight); try w.add("head.linear.bias", bias)
        try w.add("head.norm.running_mean", mean); try w.add("head.norm.running_var", variance)
        try w.write(to: trainerPath)

        let same = try ViTSparseTuningCompression.adapter.make(parameters: ["adapters": blocksPath], shape: shape)
        let trainer = try ViTSparseTuningCompression.adapter.make(parameters: ["adapters": trainerPath], shape: shape)
        let a = try model.forward(pixels, hook: same.hook), b = try model.forward(pixels, hook: trainer.hook)
        #expect(a.classFeatures.values == b.classFeatures.values, "the two spellings load the same adapters")
        let head = try #require(trainer.head)
        #expect(head.classes == 10 && head.eps == 1e-6)
        let logits = try head(b.classFeatures)
        for r in 0..<2 {
            for k in 0..<10 {
                var z = Double(bias[flat: k])
                for j in 0..<32 {
                    let x = (Double(b.classFeatures[r, j]) - Double(mean[flat: j])) / (Double(variance[flat: j]) + 1e-6).squareRoot()
                    z += Double(weight[k, j]) * x
                }
                #expect(abs(Double(logits[r, k]) - z) < 1e-4)
            }
        }
        #expect(trainer.report().notes.contains { $0.contains("logits from the adapters file's head (BatchNorm + Linear") })
    }
}

@Suite struct CompressionViTCLIPTests {
    /// The same adapters run in CLIP's vision tower ([CLS] protected, after pre_layrnorm).
    @Test func toMeAndEViTInCLIPsVisionTower() throws {
        let model = try CLIPModel.load(folder: modelsFixture("clip"))
        let pixels = try ModelsReference("clip").tensor("pixel_values")
        let shape = ViTModelShape(clipVision: model.config.vision)
        #expect(shape.classTokens == 1)
        let plain = try model.imageFeatures(pixels)
        let tome = try ViTToMeCompression.adapter.make(parameters: ["r": "2"], shape: shape)
        let merged = try model.imageFeatures(pixels, hook: tome.hook)
        let counts = ToMe.tokenCounts(initialTokens: shape.tokenCount, rs: Array(repeating: 2, count: shape.layers))
        #expect(merged.trace.rowsEnteringMLP.map { $0[0] } == Array(counts.dropFirst()))
        #expect(modelsMaxAbs(merged.features, plain.features) > 0)
        #expect(tome.tokenGroups().allSatisfy { $0.joined().sorted() == Array(0..<shape.patchCount) })
        let evit = try ViTEViTCompression.adapter.make(parameters: ["blocks": "1", "keep_rate": "0.5"], shape: shape)
        let pruned = try model.imageFeatures(pixels, hook: evit.hook)
        #expect(pruned.trace.rowsEnteringMLP[1][0] == 1 + Int((0.5 * Double(shape.tokenCount - 1)).rounded(.up)) + 1)
    }
}
