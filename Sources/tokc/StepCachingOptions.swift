import ArgumentParser
import Foundation
import Models
import Runtime
import TokenCompression

/// The options of the whole-block caching methods (TeaCache, Δ-DiT), read the same way by
/// `tokc generate` and `tokc schedule` so that both build the same parameters from the same flags.
enum StepCachingOptions {
    /// Methods `tokc generate --method` runs through `DiTStepCache` instead of a module schedule.
    static let methods = ["teacache", "delta_dit"]

    /// TeaCache's parameters: `coefficients` ("c0,c1,...", highest degree first) or `calibration`
    /// ("@FILE" or "FILE", as tokc teacache-calibrate writes it) override `defaultCoefficients`.
    static func teaCache(threshold: Double?, coefficients: String?, calibration: String?,
                         defaultCoefficients: [Double], defaultThreshold: Double) throws -> TeaCache.Parameters {
        if coefficients != nil, calibration != nil { throw ValidationError("give --param coefficients or --param calibration, not both") }
        var c = defaultCoefficients
        if let coefficients {
            let parsed = coefficients.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard !parsed.isEmpty, parsed.allSatisfy({ $0 != nil }) else {
                throw ValidationError("--param coefficients must be comma-separated numbers (highest degree first), got '\(coefficients)'")
            }
            c = parsed.map { $0! }
        }
        if let calibration {
            c = try TeaCacheCalibration(file: calibration.hasPrefix("@") ? String(calibration.dropFirst()) : calibration).coefficients
        }
        return try TeaCache.Parameters(relL1Threshold: threshold ?? defaultThreshold, coefficients: c)
    }

    /// Δ-DiT's parameters: `--interval`, `--param boundary=b`, `blocks=N_c`, `first=K`.
    static func deltaDiT(interval: Int?, boundary: Int?, blocks: Int?, first: Int?) throws -> DeltaDiT.Parameters {
        try DeltaDiT.Parameters(interval: interval ?? 3, boundary: boundary, cachedBlocks: blocks, firstEnhance: first ?? 1)
    }

    /// The policy `tokc generate --method NAME` runs (DiT and PixArt-α alike: both lack official coefficients).
    static func policy(method: String, interval: Int?, ratio: Double?, params: [String]) throws -> DiTStepCache.Policy {
        guard ratio == nil else { throw ValidationError("\(method) does not use --ratio") }
        let p = try MethodParameters.parse(params)
        let known: Set<String>
        let policy: DiTStepCache.Policy
        switch method {
        case "teacache":
            guard interval == nil else { throw ValidationError("teacache does not use --interval (it decides from the input)") }
            known = ["threshold", "coefficients", "calibration"]
            policy = .teaCache(try teaCache(threshold: try p.double("threshold"), coefficients: p.string("coefficients"), calibration: p.string("calibration"),
                                            defaultCoefficients: TeaCache.identityCoefficients, defaultThreshold: TeaCache.uncalibratedThreshold))
        case "delta_dit":
            known = ["boundary", "blocks", "first"]
            policy = .deltaDiT(try deltaDiT(interval: interval, boundary: try p.int("boundary"), blocks: try p.int("blocks"), first: try p.int("first")))
        default:
            throw ValidationError("'\(method)' is not a step-caching method (\(methods.joined(separator: ", ")))")
        }
        let unknown = Set(p.values.keys).subtracting(known)
        guard unknown.isEmpty else {
            throw ValidationError("\(method) does not use --param \(unknown.sorted().joined(separator: ", ")) (it takes \(known.sorted().joined(separator: ", ")))")
        }
        return policy
    }
}
