import TokenCompression

/// One builder per method that can run inside a model, by registry name.
enum ModelCompressionFactory {
    typealias Builder = (Budget, [String: String]) throws -> ModelCompression
    static let builders: [String: Builder] = [
        "dart": DARTCompression.make,
        "fastv": AttentionRowCompression.makeFastV,
        "a-score": AttentionRowCompression.makeAScore,
        "k-norm": { try SignalNormCompression.make(.keys, budget: $0, parameters: $1) },
        "v-norm": { try SignalNormCompression.make(.values, budget: $0, parameters: $1) },
        "random": SignalNormCompression.makeRandom,
        "pdrop": PDropCompression.make,
        "sparsevlm": SparseVLMCompression.make,
        "mustdrop": MustDropCompression.make,
        "fastervlm": VisionMethods.fasterVLM,
        "hired": HiREDCompression.make,
        "visionzip": VisionMethods.visionZip,
        "prumerge": { try VisionMethods.pruMerge(plus: false, budget: $0, parameters: $1) },
        "prumerge_plus": { try VisionMethods.pruMerge(plus: true, budget: $0, parameters: $1) },
        "pooling": VisionMethods.pooling,
        "globalcom2": GlobalCom2Compression.make,
        "ficoco_v": FiCoCoVCompression.make,
    ]
}
