import Foundation
import Models
import Runtime
import TokenCompression

/// FitPrune's offline search on a real model (`tokc fitprune-fit`): the task's first samples
/// through the model's own chat prompt and image preprocessing, one binary search over α per
/// reduction ratio (`FitPrune.fit`, the authors' procedure with this model's FLOPs sizes), and the
/// schemes written to a file that `--param fitprune.scheme=@FILE` reads.
public enum FitPruneFitting {
    public static func fit(runner: VLMRunner, samples: [BenchSample], ratios: [Double], taskName: String,
                           log: (String) -> Void = { _ in }) throws -> FitPruneSchemeFile {
        guard !samples.isEmpty else { throw BenchError("fitprune-fit: the task has no samples") }
        guard !ratios.isEmpty, ratios.allSatisfy({ $0.isFinite && $0 > 0 && $0 < 1 }) else {
            throw BenchError("fitprune-fit: reduction ratios must lie in (0, 1), got \(ratios)")
        }
        var prompts: [(inputIDs: [Int], image: LlavaImage)] = []
        for s in samples {
            let image = try runner.prepare(try VLMRunner.loadImage(path: s.imagePath))
            prompts.append((try runner.prompt(s.question).inputIDs, image.llava))
        }
        let calibration = try FitPruneCalibration(model: runner.model, prompts: prompts)
        log("calibrating on \(samples.count) samples: \(calibration.systemLength) tokens before the image, \(calibration.imageTokens) visual tokens, \(calibration.layerCount) layers")
        var schemes: [String: [Int]] = [:], alpha: [String: [Double]] = [:], met: [String: Bool] = [:]
        for r in ratios {
            let key = String(format: "%g", r)
            let result = try FitPrune.fit(model: calibration, parameters: .init(reductionRatio: r, systemLength: calibration.systemLength,
                                                                              imageTokens: calibration.imageTokens, flops: calibration.flopsModel))
            schemes[key] = result.scheme
            alpha[key] = [result.alphaInterval.low, result.alphaInterval.high]
            met[key] = result.steps.last?.reachedBudget ?? false
            log(String(format: "reduction %@: α in [%.4f, %.4f], scheme %@ (removes %d of %d)%@", key, result.alphaInterval.low,
                       result.alphaInterval.high, "\(result.scheme)", result.scheme.reduce(0, +), calibration.imageTokens,
                       met[key]! ? "" : "; the last step missed its budget (the script prints it anyway)"))
        }
        return FitPruneSchemeFile(schemes: schemes, model: runner.folder, task: taskName, samples: samples.count, alpha: alpha,
                                  lastStepMetBudget: met)
    }
}
