import Evaluation
import Foundation
import ModelIO
import Models
import Runtime
import TokenCompression

extension RunCommand {
    /// `tokc run --model <ViT folder> --image P [--method tome --param r=8] [--merge-map OUT.png]`.
    func executeClassifier(folder: String) throws {
        if keep != nil || ratio != nil {
            throw ClassifierRunError("a ViT method takes its own parameters (--param r=8, --param keep_rate=0.7), not a visual-token budget (--keep/--ratio)")
        }
        if prompt != nil || raw { throw ClassifierRunError("--prompt/--raw apply to LLaVA models; a classifier takes only --image") }
        if keepMap != nil { throw ClassifierRunError("a classifier draws --merge-map OUT.png (each token's patches as one region), not --keep-map") }
        guard let imagePath = image else { throw ClassifierRunError("classifying needs --image FILE") }
        guard topK >= 1 else { throw ClassifierRunError("--top-k must be at least 1, got \(topK)") }
        // The method first (parameters, adapters file), from the config alone: fails before the weights load.
        let config = try ViTClassifierConfig.load(folder: folder)
        var compression: ViTCompression?
        if let method {
            compression = try MethodCatalog.vitCompression(method: method, parameters: try MethodParameters.parse(param, method: method).values,
                                                           shape: ViTModelShape(config))
        } else if !param.isEmpty {
            throw ClassifierRunError("--param needs --method")
        }
        printError("loading \(folder)")
        let runner = try ClassifierRunner(folder: folder)
        let picture = try runner.prepare(path: imagePath)
        printError("classifying \(imagePath) \(compression.map { "with \($0.info.name) (\($0.setting))" } ?? "uncompressed")")
        let result = try runner.classify([picture], compression: compression, topK: topK)
        let flops = try ViTFlops.perImage(config: runner.model.config, classes: runner.model.classCount, trace: result.trace, image: 0,
                                          extra: result.extraFlops[0])
        if let logitsOut {
            var w = SafetensorsWriter()
            w.metadata["format"] = "pt"
            try w.add("logits", try result.logits.reshaped([result.logits.count]), as: .F32)
            do { try w.write(to: logitsOut) } catch { throw ClassifierRunError("cannot write logits to '\(logitsOut)': \(error)") }
            printError("logits [\(result.logits.count)] written to \(logitsOut)")
        }
        if let mergeMap {
            let groups = result.tokenGroups?[0] ?? (0..<runner.model.config.patchCount).map { [$0] }
            let map = try runner.mergeMap(picture, groups: groups)
            do { try map.writePNG(path: mergeMap) } catch { throw ClassifierRunError("cannot write merge map '\(mergeMap)': \(error)") }
            let merged = groups.filter { $0.count > 1 }.count
            printError("merge map (\(groups.count) tokens over \(runner.model.config.patchCount) patches, \(merged) of several patches) written to \(mergeMap)")
        }
        let blocks = result.trace.rowsEnteringBlock.map { $0[0] } + [result.tokensOut[0]]
        if json {
            var o = result.jsonObject(paths: [imagePath])
            o["model"] = folder
            o["gflops_per_image"] = flops / 1e9
            if let mergeMap { o["merge_map"] = mergeMap }
            FileHandle.standardOutput.write(try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys, .withoutEscapingSlashes]))
            print()
            return
        }
        for n in result.notes { printError("note: \(n)") }
        print("image: \(imagePath)")
        for (i, p) in result.predictions[0].enumerated() {
            print(String(format: "%2d. %@  %.4f", i + 1, p.label, p.probability))
        }
        print(String(format: "tokens per block %@, %.4f GFLOPs/image, forward %.1f ms, peak tensors %.1f MiB, peak RSS %.1f MiB",
                     blocks.map(String.init).joined(separator: "→"), flops / 1e9, result.forwardMs,
                     Double(result.peakTensorBytes) / 1_048_576, Double(result.processPeakRSS) / 1_048_576))
    }
}
