import Foundation
import ModelIO
import Tensors
import TokenCompression

/// Sparse-Tuning inside a ViT (`liuting20/Sparse-Tuning`, `models/vit_image.py`): EViT's sparsification
/// (keep rate 0.7, fused token) at blocks 3, 6, 9 scaled to the depth, plus the Dense Adapters of a
/// safetensors file: each block's output gains its adapter's output, and each stage's adapter outputs
/// (stage 0: also the embedded rows) are added again after the stage's last block
/// (`SparseTuning.stages`).
///
/// Parameters: `adapters=PATH` (required), `keep_rate` (default 0.7). The file holds, for every block i
/// of the model, the five layers W1…W5 (`[out, in]`; W1 [h, d], W2 [s, h], W3 [h, s], W4 [h, s + h],
/// W5 [d, h]; h = 64, s = 32 in the release) named `blocks.{i}.adapter.{w1…w5}.{weight,bias}` or
/// `adapters.{i}.{w1…w5}.{weight,bias}` (what tools/builtin/train_dense_adapters.py writes), and
/// optionally the head Sparse-Tuning trains in place of the model's (`main_image.py`: BatchNorm1d without
/// affine on the final [CLS] features, then a Linear): `head.linear.{weight,bias}` with
/// `head.norm.running_{mean,var}` (eps: the file's `batchnorm_eps` metadata, else 1e-6). A file that does
/// not fit the model (missing or extra blocks, another width, layers that do not chain, an unknown
/// `head.*` tensor) is refused before the model runs, naming the tensor; other tensors are ignored with a note.
public enum ViTSparseTuningCompression {
    public static let adapter = ViTAdapter(method: "sparse_tuning", parameters: ["adapters", "keep_rate"],
                                           requires: "its Dense Adapters (adapters=PATH, a safetensors file trained for the model)",
                                           sweep: ViTSweep(parameter: "keep_rate", values: ["0.7"]), build: build)

    static func build(_ p: MethodParameters, _ shape: ViTModelShape) throws -> ViTCompression {
        guard let path = p.string("adapters"), !path.isEmpty else {
            throw ModelCompressionError.invalidParameter("sparse_tuning: needs its Dense Adapters: adapters=PATH (a safetensors file with blocks.{i}.adapter.{w1..w5}.{weight,bias})")
        }
        let keep = try ViTAdapterParameters.keepRate(p, default: SparseTuning.Parameters().keepRate)
        let parameters = SparseTuning.Parameters(keepRate: keep)
        let file = try load(path: path, shape: shape)
        let blocks = SparseTuning.pruningBlocks(depth: shape.layers)
        let hook = try SparseTuningViTHook(shape: shape, blocks: blocks, parameters: parameters, adapters: file.adapters,
                                           stages: try SparseTuning.stages(depth: shape.layers, pruningBlocks: blocks))
        if !file.ignored.isEmpty {
            hook.startNotes.append("\(file.ignored.count) tensor(s) of the adapters file ignored (\(file.ignored.prefix(3).joined(separator: ", "))\(file.ignored.count > 3 ? ", …" : ""))")
        }
        if file.head != nil {
            hook.startNotes.append("logits from the adapters file's head (\(file.head!.runningMean == nil ? "" : "BatchNorm + ")Linear on the final [CLS] features), not the model's classifier")
        }
        let c = ViTCompression(info: SparseTuning.info, shape: shape, setting: "keep_rate=\(ViTAdapterParameters.rateText(keep))", hook: hook)
        c.head = file.head
        return c
    }

    static let layerNames = ["w1", "w2", "w3", "w4", "w5"]

    /// What an adapters file holds, checked against the model.
    public struct AdaptersFile {
        public var adapters: [SparseTuning.DenseAdapter]
        public var head: ViTReplacementHead?
        /// Tensors outside the adapters and the head.
        public var ignored: [String]
    }

    /// The file's adapter of every block (and its head, when it has one), checked against the model.
    public static func load(path: String, shape: ViTModelShape) throws -> AdaptersFile {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ModelError("sparse_tuning: adapters file '\(path)' does not exist")
        }
        let file: SafetensorsFile
        do { file = try SafetensorsFile(path: path) } catch { throw ModelError("sparse_tuning: cannot read adapters file '\(path)': \(error)") }
        let context = "sparse_tuning: adapters file '\(path)'"
        // Two spellings of the same layout: blocks.{i}.adapter.{w} and adapters.{i}.{w}.
        let used = AdapterNames.all.filter { l in file.names.contains { $0.hasPrefix(l.prefix) } }
        guard used.count <= 1 else {
            throw ModelError("\(context) mixes blocks.{i}.adapter.* and adapters.{i}.* tensors; use one layout")
        }
        guard let layout = used.first else {
            throw ModelError("\(context) holds no adapter tensors (expected blocks.{i}.adapter.{w1,w2,w3,w4,w5}.{weight,bias} or adapters.{i}.{w1,…}.{weight,bias})")
        }
        var ignored: [String] = []
        for name in file.names {
            if name.hasPrefix("head.") { continue }
            guard name.hasPrefix(layout.prefix) else { ignored.append(name); continue }
            let parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard let (block, layer, kind) = layout.parse(parts), block >= 0, layerNames.contains(layer), kind == "weight" || kind == "bias" else {
                throw ModelError("\(context): unexpected tensor '\(name)' (expected \(layout.pattern))")
            }
            guard block < shape.layers else {
                throw ModelError("\(context) holds an adapter for block \(block), but the model has \(shape.layers) blocks (0...\(shape.layers - 1)): it was trained for another model")
            }
        }
        var adapters: [SparseTuning.DenseAdapter] = []
        for i in 0..<shape.layers {
            func tensor(_ layer: String, _ kind: String) throws -> Tensor {
                let name = layout.layer(i, layer) + "." + kind
                guard file.contains(name) else {
                    throw ModelError("\(context) has no '\(name)': the model has \(shape.layers) blocks and every one needs w1…w5 (weight and bias)")
                }
                return try file.tensor(name)
            }
            let w = try layerNames.map { try tensor($0, "weight") }
            let b = try layerNames.map { try tensor($0, "bias") }
            guard w[0].rank == 2, w[0].shape[1] == shape.width else {
                throw ModelError("\(context): '\(layout.layer(i, "w1")).weight' has shape \(w[0].shape), expected [hidden, \(shape.width)]: the model's hidden_size is \(shape.width)")
            }
            do {
                adapters.append(try SparseTuning.DenseAdapter(w1: w[0], b1: b[0], w2: w[1], b2: b[1], w3: w[2], b3: b[2], w4: w[3], b4: b[3],
                                                             w5: w[4], b5: b[4], name: { layout.layer(i, "w\($0)") }))
            } catch {
                throw ModelError("\(context): \(error)")
            }
        }
        return AdaptersFile(adapters: adapters, head: try head(file, context: context, width: shape.width), ignored: ignored.sorted())
    }

    /// The trained head, when the file has one: `head.linear.{weight,bias}`, optionally `head.norm.running_{mean,var}`.
    static func head(_ file: SafetensorsFile, context: String, width d: Int) throws -> ViTReplacementHead? {
        let names = Set(file.names.filter { $0.hasPrefix("head.") })
        guard !names.isEmpty else { return nil }
        let known: Set = ["head.linear.weight", "head.linear.bias", "head.norm.running_mean", "head.norm.running_var"]
        if let bad = names.subtracting(known).sorted().first {
            throw ModelError("\(context): unexpected tensor '\(bad)' (a head is head.linear.{weight,bias} with head.norm.running_{mean,var})")
        }
        guard names.contains("head.linear.weight"), names.contains("head.linear.bias") else {
            throw ModelError("\(context): a head needs head.linear.weight and head.linear.bias")
        }
        guard names.contains("head.norm.running_mean") == names.contains("head.norm.running_var") else {
            throw ModelError("\(context): the head's BatchNorm needs both head.norm.running_mean and head.norm.running_var")
        }
        let weight = try file.tensor("head.linear.weight"), bias = try file.tensor("head.linear.bias")
        guard weight.rank == 2, weight.columns == d, weight.rows >= 1, bias.shape == [weight.rows] else {
            throw ModelError("\(context): head.linear.weight \(weight.shape) and bias \(bias.shape) must be [classes, \(d)] and [classes] (the model's hidden_size is \(d))")
        }
        var mean: Tensor?, variance: Tensor?
        if names.contains("head.norm.running_mean") {
            mean = try file.tensor("head.norm.running_mean")
            variance = try file.tensor("head.norm.running_var")
            guard mean!.shape == [d], variance!.shape == [d], variance!.values.allSatisfy({ $0 >= 0 && $0.isFinite }) else {
                throw ModelError("\(context): head.norm.running_mean/var must be [\(d)], the variance non-negative")
            }
        }
        var eps: Float = 1e-6
        if let text = file.metadata["batchnorm_eps"] {
            guard let v = Float(text), v > 0, v.isFinite else { throw ModelError("\(context): metadata batchnorm_eps '\(text)' is not a positive number") }
            eps = v
        }
        return ViTReplacementHead(weight: weight, bias: bias, runningMean: mean, runningVar: variance, eps: eps)
    }
}

/// The two spellings of an adapters file's tensor names.
struct AdapterNames {
    let prefix: String
    /// `blocks.{i}.adapter.{w1,…}.{weight,bias}` or `adapters.{i}.{w1,…}.{weight,bias}`.
    let pattern: String
    /// The name of block i's layer (without `.weight`/`.bias`).
    let layer: (Int, String) -> String
    /// (block, layer, weight|bias) of a name split at its dots.
    let parse: ([String]) -> (Int, String, String)?

    static let all = [
        AdapterNames(prefix: "blocks.", pattern: "blocks.{i}.adapter.{w1,w2,w3,w4,w5}.{weight,bias}", layer: { "blocks.\($0).adapter.\($1)" }) {
            guard $0.count == 5, $0[2] == "adapter", let i = Int($0[1]) else { return nil }
            return (i, $0[3], $0[4])
        },
        AdapterNames(prefix: "adapters.", pattern: "adapters.{i}.{w1,w2,w3,w4,w5}.{weight,bias}", layer: { "adapters.\($0).\($1)" }) {
            guard $0.count == 4, let i = Int($0[1]) else { return nil }
            return (i, $0[2], $0[3])
        },
    ]
}

/// A classifier head a method brings in place of the model's own (Sparse-Tuning's trained head): an
/// optional BatchNorm without affine parameters in eval mode, `(x − mean)/√(var + eps)`, then a Linear, on
/// the [CLS] features after the final layer norm (`ViTClassifierOutput.classFeatures`).
public struct ViTReplacementHead: @unchecked Sendable {
    public let weight: Tensor
    public let bias: Tensor
    public let runningMean: Tensor?
    public let runningVar: Tensor?
    public let eps: Float

    public var classes: Int { weight.rows }

    /// Logits `[B, classes]` from class features `[B, hidden]`.
    public func callAsFunction(_ features: Tensor) throws -> Tensor {
        var x = features
        if let runningMean, let runningVar {
            let d = x.columns
            guard runningMean.count == d else { throw ModelError("replacement head: features of width \(d), BatchNorm of \(runningMean.count)") }
            let m = runningMean.values, inv = runningVar.values.map { 1 / ($0 + eps).squareRoot() }
            x.withUnsafeMutableBufferPointer { p in
                for r in 0..<features.rows { for j in 0..<d { p[r * d + j] = (p[r * d + j] - m[j]) * inv[j] } }
            }
        }
        return try x.linear(weight: weight, bias: bias)
    }
}

/// EViT at the pruning blocks, then at the end of every block its adapter's output, and at the end of
/// every stage the stage's sum.
final class SparseTuningViTHook: EViTViTHook {
    let adapters: [SparseTuning.DenseAdapter]
    let stages: [SparseTuning.Stage]
    /// Stage of each block.
    let stageOf: [Int]
    /// Per image: the embedded rows, and the running sum of the current stage.
    private var embeddings: [Tensor] = []
    private var sums: [Tensor?] = []

    init(shape: ViTModelShape, blocks: [Int], parameters: SparseTuning.Parameters, adapters: [SparseTuning.DenseAdapter],
         stages: [SparseTuning.Stage]) throws {
        guard adapters.count == shape.layers, adapters.allSatisfy({ $0.width == shape.width }) else {
            throw ModelCompressionError.invalidParameter("sparse_tuning: \(adapters.count) adapters for \(shape.layers) blocks of width \(shape.width)")
        }
        self.adapters = adapters
        self.stages = stages
        var of = [Int](repeating: 0, count: shape.layers)
        for (s, stage) in stages.enumerated() { for b in stage.blocks { of[b] = s } }
        stageOf = of
        try super.init(method: "sparse_tuning", shape: shape, blocks: blocks, parameters: parameters.evit)
    }

    override func embedded(image: Int, hidden: Tensor) throws {
        if image == 0 {
            embeddings = []
            sums = []
        }
        embeddings.append(hidden)
        sums.append(nil)
    }

    override func afterBlock(_ step: ViTBlockStep, output: Tensor) throws -> Tensor? {
        let b = step.block, image = step.image
        let a = try adapters[b](step.hidden)
        extraFlops[image] += adapters[b].flops(rows: step.hidden.rows)
        var out = try output + a
        let stage = stages[stageOf[b]]
        if stage.summed.contains(b) { sums[image] = try sums[image].map { try $0 + a } ?? a }
        if b == stage.last {
            var add = sums[image]
            if stage.addsEmbedding { add = try add.map { try $0 + embeddings[image] } ?? embeddings[image] }
            if let add {
                guard add.shape == out.shape else {
                    throw ModelError("sparse_tuning: block \(b), image \(image): the stage sum has shape \(add.shape), the block output \(out.shape) (the token count changed inside a stage)")
                }
                out = try out + add
            }
            sums[image] = nil
        }
        return out
    }
}
