import Foundation
import TokenCompression

/// What a method contributes to one sampling run of a diffusion transformer (DiT, PixArt-α), as the
/// pipelines' options take it. Token merging inside the blocks for now (the caching methods run from
/// their `tokc schedule` schedules, `DiTCaching`).
public enum DiffusionMethodSetting: Sendable, Equatable {
    /// ToMe-SD: merge and unmerge around the blocks' sub-layers (`DiTTokenMerging`).
    case tokenMerging(DiTTokenMergingSettings)
}

/// How one method runs inside the diffusion runtime's blocks (`tokc generate --method`, the diffusion
/// bench): the `--param` names it accepts and how its setting is built from them. The diffusion
/// counterpart of `InModelAdapter` (LLaVA) and `ViTAdapter`; a catalog entry names it as `diffusionAdapter:`.
public struct DiffusionAdapter: Sendable {
    public let method: String
    public let parameters: [String]
    let build: @Sendable (MethodParameters) throws -> DiffusionMethodSetting

    init(method: String, parameters: [String], build: @escaping @Sendable (MethodParameters) throws -> DiffusionMethodSetting) {
        self.method = method
        self.parameters = parameters
        self.build = build
    }

    /// The method's setting from its NAME=VALUE `parameters`; unknown names are refused with the
    /// accepted list before the builder runs.
    public func make(parameters values: [String: String] = [:]) throws -> DiffusionMethodSetting {
        let unknown = Set(values.keys).subtracting(parameters)
        guard unknown.isEmpty else {
            throw ModelCompressionError.invalidParameter("\(method): unknown parameter(s) \(unknown.sorted().joined(separator: ", ")); accepted: \(parameters.sorted().joined(separator: ", "))")
        }
        return try build(MethodParameters(method, values))
    }
}
