import ArgumentParser
import Models
import Testing
import TokenCompression
@testable import tokc

/// The step-caching options (TeaCache, Δ-DiT) that `tokc generate` and `tokc schedule` share.
@Suite struct StepCachingOptionsTests {
    @Test func teaCacheDefaultsAndOverrides() throws {
        let d = try StepCachingOptions.policy(method: "teacache", interval: nil, ratio: nil, params: [])
        #expect(d == .teaCache(try TeaCache.Parameters(relL1Threshold: TeaCache.uncalibratedThreshold, coefficients: TeaCache.identityCoefficients)))
        let given = try StepCachingOptions.policy(method: "teacache", interval: nil, ratio: nil,
                                                  params: ["threshold=0.25", "coefficients=3, 2,1"])
        #expect(given == .teaCache(try TeaCache.Parameters(relL1Threshold: 0.25, coefficients: [3, 2, 1])))
    }

    @Test func deltaDiTDefaultsAndOverrides() throws {
        let d = try StepCachingOptions.policy(method: "delta_dit", interval: nil, ratio: nil, params: [])
        #expect(d == .deltaDiT(try DeltaDiT.Parameters(interval: 3, boundary: nil, cachedBlocks: nil, firstEnhance: 1)))
        let given = try StepCachingOptions.policy(method: "delta_dit", interval: 2, ratio: nil, params: ["boundary=5", "blocks=4", "first=2"])
        #expect(given == .deltaDiT(try DeltaDiT.Parameters(interval: 2, boundary: 5, cachedBlocks: 4, firstEnhance: 2)))
    }

    @Test(arguments: [
        ("teacache", 3, nil, [String](), "teacache does not use --interval"),
        ("teacache", nil, 0.5, [], "teacache does not use --ratio"),
        ("delta_dit", nil, 0.5, [], "delta_dit does not use --ratio"),
        ("teacache", nil, nil, ["boundary=3"], "teacache does not use --param boundary"),
        ("delta_dit", nil, nil, ["threshold=0.1"], "delta_dit does not use --param threshold"),
        ("teacache", nil, nil, ["coefficients=1,x"], "--param coefficients must be comma-separated numbers"),
        ("teacache", nil, nil, ["coefficients=1,0", "calibration=@c.json"], "not both"),
        ("fora", nil, nil, [], "'fora' is not a step-caching method"),
    ] as [(String, Int?, Double?, [String], String)])
    func badSettingsAreRejected(_ method: String, _ interval: Int?, _ ratio: Double?, _ params: [String], _ expected: String) {
        expectRejected([method] + params, expected, as: ValidationError.self, message: { $0.message }) {
            _ = try StepCachingOptions.policy(method: method, interval: interval, ratio: ratio, params: params)
        }
    }

    /// Values the method's own parameter checks refuse come through as errors too.
    @Test func outOfRangeValuesAreRejected() {
        #expect(throws: (any Error).self) { try StepCachingOptions.policy(method: "teacache", interval: nil, ratio: nil, params: ["threshold=-1"]) }
        #expect(throws: (any Error).self) { try StepCachingOptions.policy(method: "delta_dit", interval: 0, ratio: nil, params: []) }
        #expect(throws: (any Error).self) { try StepCachingOptions.policy(method: "delta_dit", interval: nil, ratio: nil, params: ["first=0"]) }
        #expect(throws: (any Error).self) { try StepCachingOptions.policy(method: "teacache", interval: nil, ratio: nil, params: ["calibration=/no/such/file.json"]) }
    }
}
