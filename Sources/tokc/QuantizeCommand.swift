import ArgumentParser
import Foundation
import Models
import Tensors

struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Write a weight-only int8 (per channel) or int4 (groups of 32) copy of a decoder checkpoint.",
        discussion: """
        Quantizes every *_proj.weight matrix and lm_head.weight of the language model (symmetric: scale = \
        max |w| / 127 per output row, or max |w| / 7 per group of 32 inputs); a VLM's vision tower and \
        projector, embeddings, norms and biases are copied as stored. The output folder loads like the \
        input (tokc run, bench, bench-decode): linear layers then run on int8/int4 kernels. Format: README, \
        "Speed on large models". The file is written tensor by tensor: memory holds one matrix, not the model.
        """
    )

    @Option(name: .long, help: "Checkpoint folder (or .safetensors file).")
    var model: String
    @Option(name: .long, help: "8 or 4.")
    var bits: Int
    @Option(name: .long, help: "Output folder.")
    var out: String

    func validate() throws {
        guard bits == 8 || bits == 4 else { throw ValidationError("--bits must be 8 or 4 (got \(bits))") }
    }

    func run() throws {
        let summary = try WeightQuantizer.quantize(folder: model, format: bits == 8 ? .int8 : .int4, to: out)
        print("quantized \(summary.quantized.count) matrices to int\(bits); \(String(format: "%.2f", Double(summary.bytesBefore) / 1e9)) GB → \(String(format: "%.2f", Double(summary.bytesAfter) / 1e9)) GB, written to \(out)")
        if !summary.keptUnquantized.isEmpty {
            print("kept unquantized (in_features not a multiple of 32): \(summary.keptUnquantized.joined(separator: ", "))")
        }
    }
}
