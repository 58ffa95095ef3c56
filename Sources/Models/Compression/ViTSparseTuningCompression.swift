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
/// of the model, `blocks.{i}.adapter.{w1,w2,w3,w4,w5}.{weight,bias}` (`[out, in]`, W1 [h, d], W2 [s, h],
/// W3 [h, s], W4 [h, s + h], W5 [d, h]; h = 64, s = 32 in the release) — the layout
/// `builtin/models/vit-shapes/adapters/README.md` describes. A file that does not fit the model (missing
/// or extra blocks, another width, layers that do not chain) is refused before the model runs, naming the
/// tensor; tensors outside `blocks.*` are ignored with a note.
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
        let (adapters, ignored) = try loadAdapters(path: path, shape: shape)
        let blocks = SparseTuning.pruningBlocks(depth: shape.layers)
        let hook = try SparseTuningViTHook(shape: shape, blocks: blocks, parameters: parameters, adapters: adapters,
                                           stages: try SparseTuning.stages(depth: shape.layers, pruningBlocks: blocks))
        if !ignored.isEmpty {
            hook.startNotes.append("\(ignored.count) tensor(s) of the adapters file outside blocks.* ignored (\(ignored.prefix(3).joined(separator: ", "))\(ignored.count > 3 ? ", …" : ""))")
        }
        return ViTCompression(info: SparseTuning.info, shape: shape, setting: "keep_rate=\(ViTAdapterParameters.rateText(keep))", hook: hook)
    }

    static let layerNames = ["w1", "w2", "w3", "w4", "w5"]

    /// The file's adapter of every block, checked against the model; also the names it ignored.
    public static func loadAdapters(path: String, shape: ViTModelShape) throws -> (adapters: [SparseTuning.DenseAdapter], ignored: [String]) {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ModelError("sparse_tuning: adapters file '\(path)' does not exist")
        }
        let file: SafetensorsFile
        do { file = try SafetensorsFile(path: path) } catch { throw ModelError("sparse_tuning: cannot read adapters file '\(path)': \(error)") }
        let context = "sparse_tuning: adapters file '\(path)'"
        var ignored: [String] = []
        var seenBlocks = Set<Int>()
        for name in file.names {
            guard name.hasPrefix("blocks.") else { ignored.append(name); continue }
            let parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 5, let block = Int(parts[1]), block >= 0, parts[2] == "adapter", layerNames.contains(parts[3]),
                  parts[4] == "weight" || parts[4] == "bias" else {
                throw ModelError("\(context): unexpected tensor '\(name)' (expected blocks.{i}.adapter.{w1,w2,w3,w4,w5}.{weight,bias})")
            }
            guard block < shape.layers else {
                throw ModelError("\(context) holds an adapter for block \(block), but the model has \(shape.layers) blocks (0...\(shape.layers - 1)): it was trained for another model")
            }
            seenBlocks.insert(block)
        }
        guard !seenBlocks.isEmpty else {
            throw ModelError("\(context) holds no blocks.{i}.adapter.* tensors")
        }
        var adapters: [SparseTuning.DenseAdapter] = []
        for i in 0..<shape.layers {
            func tensor(_ layer: String, _ kind: String) throws -> Tensor {
                let name = "blocks.\(i).adapter.\(layer).\(kind)"
                guard file.contains(name) else {
                    throw ModelError("\(context) has no '\(name)': the model has \(shape.layers) blocks and every one needs w1…w5 (weight and bias)")
                }
                return try file.tensor(name)
            }
            let w = try layerNames.map { try tensor($0, "weight") }
            let b = try layerNames.map { try tensor($0, "bias") }
            guard w[0].rank == 2, w[0].shape[1] == shape.width else {
                throw ModelError("\(context): 'blocks.\(i).adapter.w1.weight' has shape \(w[0].shape), expected [hidden, \(shape.width)]: the model's hidden_size is \(shape.width)")
            }
            do {
                adapters.append(try SparseTuning.DenseAdapter(w1: w[0], b1: b[0], w2: w[1], b2: b[1], w3: w[2], b3: b[2], w4: w[3], b4: b[3],
                                                             w5: w[4], b5: b[4], name: { "blocks.\(i).adapter.w\($0)" }))
            } catch {
                throw ModelError("\(context): \(error)")
            }
        }
        return (adapters, ignored.sorted())
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
