import Foundation
import Models
import Tensors

/// Prefill speed against PyTorch (tools/bench/pytorch_prefill.py runs the same shapes):
/// a random-weight LLaMA-style decoder and a CLIP ViT-L/14-336 shaped tower, Float32.
///
/// `tokc bench-prefill` calls `runStandard`; timings follow the protocol of the design note
/// (warm-up, then repeated runs, median and spread).
public enum PrefillBenchmark {
    public struct Timing: Sendable, CustomStringConvertible {
        public var name: String
        public var tokens: Int
        public var runsMs: [Double]
        /// Matmul FLOPs of one pass (2 per multiply-add), for a GFLOP/s figure.
        public var flops: Double
        public var medianMs: Double { runsMs.isEmpty ? 0 : Statistics.median(runsMs) }
        public var minMs: Double { runsMs.min() ?? 0 }
        public var maxMs: Double { runsMs.max() ?? 0 }
        public var gflops: Double { medianMs > 0 ? flops / (medianMs * 1e6) : 0 }
        public var description: String {
            String(format: "%@: %d tokens, median %.1f ms (min %.1f, max %.1f), %.1f GFLOP/s", name, tokens, medianMs, minMs, maxMs, gflops)
        }
    }

    /// Deterministic uniform values in [-scale, scale] (xorshift), filled in parallel chunks.
    public static func random(_ shape: [Int], scale: Float, seed: UInt64) -> Tensor {
        var t = Tensor(zeros: shape)
        let n = t.count
        let base = t.withUnsafeMutableBufferPointer { $0.baseAddress! }
        let chunk = 1 << 16
        Parallel.forEach((n + chunk - 1) / chunk) { c in
            var x = seed &+ UInt64(c + 1) &* 0x9E37_79B9_7F4A_7C15
            for i in (c * chunk)..<min(n, (c + 1) * chunk) {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17
                base[i] = (Float(x >> 40) / Float(1 << 24) * 2 - 1) * scale
            }
        }
        return t
    }

    /// A random-weight LLaMA-style decoder held in memory, and random input embeddings.
    public static func randomLlama(width: Int = 2048, heads: Int = 16, mlp: Int = 5632, layers: Int = 8,
                                   tokens: Int = 640, vocab: Int = 1000, seed: UInt64 = 1) throws -> (model: DecoderLM, embeddings: Tensor) {
        let config = LlamaConfig(vocabSize: vocab, hiddenSize: width, intermediateSize: mlp, layers: layers, heads: heads)
        var w: [String: Tensor] = [:]
        var s = seed
        func r(_ shape: [Int], _ scale: Float = 0.02) -> Tensor { s += 1; return random(shape, scale: scale, seed: s) }
        w["model.embed_tokens.weight"] = r([vocab, width])
        w["model.norm.weight"] = Tensor(shape: [width], repeating: 1)
        w["lm_head.weight"] = r([vocab, width])
        for i in 0..<layers {
            let p = "model.layers.\(i)."
            w[p + "input_layernorm.weight"] = Tensor(shape: [width], repeating: 1)
            w[p + "post_attention_layernorm.weight"] = Tensor(shape: [width], repeating: 1)
            for n in ["q", "k", "v", "o"] { w[p + "self_attn.\(n)_proj.weight"] = r([width, width]) }
            w[p + "mlp.gate_proj.weight"] = r([mlp, width])
            w[p + "mlp.up_proj.weight"] = r([mlp, width])
            w[p + "mlp.down_proj.weight"] = r([width, mlp])
        }
        let model = try DecoderLM(config: config, store: WeightStore(tensors: w, location: "random LLaMA"))
        return (model, r([tokens, width], 1))
    }

    /// A random-weight CLIP tower (ViT-L/14-336 shape by default) and a random image.
    public static func randomCLIP(width: Int = 1024, heads: Int = 16, mlp: Int = 4096, layers: Int = 24,
                                  imageSize: Int = 336, patchSize: Int = 14, seed: UInt64 = 2) throws -> (model: VisionTower, pixels: Tensor) {
        let config = try VisionTowerConfig(kind: .clip, hiddenSize: width, intermediateSize: mlp, layers: layers, heads: heads,
                                           imageSize: imageSize, patchSize: patchSize)
        var w: [String: Tensor] = [:]
        var s = seed
        func r(_ shape: [Int], _ scale: Float = 0.02) -> Tensor { s += 1; return random(shape, scale: scale, seed: s) }
        let p = "vision_model."
        w[p + "embeddings.patch_embedding.weight"] = r([width, 3, patchSize, patchSize])
        w[p + "embeddings.class_embedding"] = r([width])
        w[p + "embeddings.position_embedding.weight"] = r([config.tokenCount, width])
        for n in ["pre_layrnorm", "post_layernorm"] {
            w[p + n + ".weight"] = Tensor(shape: [width], repeating: 1)
            w[p + n + ".bias"] = Tensor(zeros: [width])
        }
        for i in 0..<layers {
            let l = p + "encoder.layers.\(i)."
            for n in ["layer_norm1", "layer_norm2"] {
                w[l + n + ".weight"] = Tensor(shape: [width], repeating: 1)
                w[l + n + ".bias"] = Tensor(zeros: [width])
            }
            for n in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                w[l + "self_attn.\(n).weight"] = r([width, width])
                w[l + "self_attn.\(n).bias"] = r([width])
            }
            w[l + "mlp.fc1.weight"] = r([mlp, width]); w[l + "mlp.fc1.bias"] = r([mlp])
            w[l + "mlp.fc2.weight"] = r([width, mlp]); w[l + "mlp.fc2.bias"] = r([width])
        }
        let model = try VisionTower(config: config, store: WeightStore(tensors: w, location: "random CLIP"))
        return (model, r([3, imageSize, imageSize], 1))
    }

    static func time(_ repeats: Int, warmup: Int, _ body: () throws -> Void) rethrows -> [Double] {
        for _ in 0..<warmup { try body() }
        return try (0..<repeats).map { _ in
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        }
    }

    /// Prefill of the random decoder (all layers, logits of the last position).
    public static func timeDecoder(width: Int = 2048, heads: Int = 16, mlp: Int = 5632, layers: Int = 8, tokens: Int = 640,
                                   repeats: Int = 3, warmup: Int = 1) throws -> Timing {
        let (model, x) = try randomLlama(width: width, heads: heads, mlp: mlp, layers: layers, tokens: tokens)
        let runs = try time(repeats, warmup: warmup) { _ = try model.prefill(embeddings: x) }
        let n = Double(tokens), d = Double(width), m = Double(mlp)
        let flops = Double(layers) * (2 * n * 4 * d * d + 2 * 2 * n * n * d + 2 * 3 * n * d * m)
        return Timing(name: "LLaMA-style decoder d\(width) h\(heads) mlp\(mlp) L\(layers)", tokens: tokens, runsMs: runs, flops: flops)
    }

    /// Forward of the random CLIP tower over all layers.
    public static func timeVision(width: Int = 1024, heads: Int = 16, mlp: Int = 4096, layers: Int = 24, imageSize: Int = 336,
                                  patchSize: Int = 14, repeats: Int = 3, warmup: Int = 1) throws -> Timing {
        let (model, pixels) = try randomCLIP(width: width, heads: heads, mlp: mlp, layers: layers, imageSize: imageSize, patchSize: patchSize)
        let runs = try time(repeats, warmup: warmup) { _ = try model.forward(pixels, hiddenStates: [-1]) }
        let n = Double(model.config.tokenCount), d = Double(width), m = Double(mlp)
        let flops = Double(layers) * (2 * n * 4 * d * d + 2 * 2 * n * n * d + 2 * 2 * n * d * m)
        return Timing(name: "CLIP ViT tower d\(width) L\(layers) \(imageSize)px/\(patchSize)", tokens: model.config.tokenCount, runsMs: runs, flops: flops)
    }

    /// Per-operation wall time of one pass of each standard model (after one warm-up pass), from
    /// `OpProfile`: where the time above the sgemm floor goes.
    public static func profileStandard() throws -> [(model: String, entries: [OpProfile.Entry], totalMs: Double)] {
        let (decoder, embeddings) = try randomLlama()
        let (tower, pixels) = try randomCLIP()
        let runs: [(String, () throws -> Void)] = [
            ("decoder", { _ = try decoder.prefill(embeddings: embeddings) }),
            ("vision", { _ = try tower.forward(pixels, hiddenStates: [-1]) }),
        ]
        var out: [(model: String, entries: [OpProfile.Entry], totalMs: Double)] = []
        for (name, body) in runs {
            try body()
            OpProfile.reset()
            OpProfile.isEnabled = true
            defer { OpProfile.isEnabled = false }
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            let total = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
            out.append((name, OpProfile.entries(), total))
        }
        return out
    }

    /// Both standard shapes of the issue.
    public static func runStandard(repeats: Int = 3) throws -> [Timing] {
        [try timeDecoder(repeats: repeats), try timeVision(repeats: repeats)]
    }
}
