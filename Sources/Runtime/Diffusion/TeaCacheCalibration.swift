import Foundation
import ModelIO
import Models
import Tensors
import TokenCompression

/// TeaCache's polynomial for a model it has no coefficients for (every DiT and PixArt-α model here):
/// sample uncached, record per call the relative L1 change of block 0's modulated input and of the
/// model output, fit `output change ≈ P(input change)` (degree 4, least squares, as the authors fit
/// theirs) and keep the coefficients in a JSON file that `--param calibration=@FILE` reads back.
public struct TeaCacheCalibration: Sendable, Equatable {
    /// Highest degree first (`TeaCache.Parameters.coefficients`).
    public var coefficients: [Double]
    public var inputChanges: [Double]
    public var outputChanges: [Double]
    /// What was sampled (model folder, classes or prompt file, seeds, steps, guidance, scheduler).
    public var source: String

    /// Fits the polynomial to the pairs.
    public init(inputChanges: [Double], outputChanges: [Double], source: String, degree: Int = TeaCache.calibrationDegree) throws {
        do {
            coefficients = try TeaCache.fitPolynomial(x: inputChanges, y: outputChanges, degree: degree)
        } catch {
            throw ModelError("TeaCache calibration of \(source): \(error)")
        }
        self.inputChanges = inputChanges
        self.outputChanges = outputChanges
        self.source = source
    }

    /// Root-mean-square difference between the fitted polynomial and the recorded output changes.
    public var rmsError: Double {
        guard !inputChanges.isEmpty else { return 0 }
        let sq = zip(inputChanges, outputChanges).reduce(0.0) { s, p in
            let e = TeaCache.rescale(p.0, coefficients: coefficients) - p.1
            return s + e * e
        }
        return (sq / Double(inputChanges.count)).squareRoot()
    }

    /// Records the pairs of uncached runs of a DiT pipeline, one per (class, seed).
    public static func record(_ pipeline: DiTPipeline, classes: [Int], seeds: [UInt64], steps: Int, guidance: Double,
                              scheduler: String?) throws -> [(input: Float, output: Float)] {
        guard !classes.isEmpty, !seeds.isEmpty else { throw ModelError("TeaCache calibration needs ≥ 1 class and ≥ 1 seed") }
        var pairs: [(input: Float, output: Float)] = []
        for label in classes {
            for seed in seeds {
                let r = try pipeline.generate(DiTGenerationOptions(classLabel: label, steps: steps, guidance: guidance, seed: seed,
                                                                   scheduler: scheduler, stepCaching: .calibrate))
                pairs += r.stepCache?.calibrationPairs ?? []
            }
        }
        return pairs
    }

    /// Records the pairs of uncached runs of a PixArt-α pipeline, one per seed.
    public static func record(_ pipeline: PixArtPipeline, captions: PromptEmbeddings, seeds: [UInt64], steps: Int, guidance: Double,
                              scheduler: String?) throws -> [(input: Float, output: Float)] {
        guard !seeds.isEmpty else { throw ModelError("TeaCache calibration needs ≥ 1 seed") }
        var pairs: [(input: Float, output: Float)] = []
        for seed in seeds {
            let r = try pipeline.generate(PixArtGenerationOptions(captions: captions, steps: steps, guidance: guidance, seed: seed,
                                                                  scheduler: scheduler, stepCaching: .calibrate))
            pairs += r.stepCache?.calibrationPairs ?? []
        }
        return pairs
    }

    /// The file's content: coefficients first for people, pairs for re-fitting elsewhere.
    public var json: JSONValue {
        .object([
            "method": .string("teacache"),
            "source": .string(source),
            "degree": .number(Double(coefficients.count - 1)),
            "coefficients": .array(coefficients.map { .number($0) }),
            "rms_error": .number(rmsError),
            "pairs": .number(Double(inputChanges.count)),
            "input_rel_l1": .array(inputChanges.map { .number($0) }),
            "output_rel_l1": .array(outputChanges.map { .number($0) }),
        ])
    }

    public func write(to path: String) throws {
        do {
            try Data((json.formatted() + "\n").utf8).write(to: URL(fileURLWithPath: path))
        } catch {
            throw ModelError("\(path): cannot write the calibration: \(error)")
        }
    }

    /// Reads a file `write(to:)` wrote (the pairs and source are optional, the coefficients required).
    public init(file path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw ModelError("\(path): no such calibration file") }
        let root: JSONValue
        do { root = try JSONValue.parse(data) } catch { throw ModelError("\(path): not JSON: \(error)") }
        guard let values = root["coefficients"]?.arrayValue, !values.isEmpty else {
            throw ModelError("\(path): no 'coefficients' array (a TeaCache calibration file, as tokc teacache-calibrate writes it)")
        }
        let coefficients = values.compactMap(\.doubleValue)
        guard coefficients.count == values.count, coefficients.allSatisfy(\.isFinite) else {
            throw ModelError("\(path): 'coefficients' must be finite numbers")
        }
        func numbers(_ key: String) throws -> [Double] {
            guard let a = root[key]?.arrayValue else { return [] }
            let v = a.compactMap(\.doubleValue)
            guard v.count == a.count else { throw ModelError("\(path): '\(key)' must hold numbers") }
            return v
        }
        self.coefficients = coefficients
        inputChanges = try numbers("input_rel_l1")
        outputChanges = try numbers("output_rel_l1")
        guard inputChanges.count == outputChanges.count else {
            throw ModelError("\(path): \(inputChanges.count) input changes for \(outputChanges.count) output changes")
        }
        source = root["source"]?.stringValue ?? path
    }
}
