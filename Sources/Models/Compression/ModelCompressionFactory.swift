import TokenCompression

/// One builder per method that can run inside a model, by registry name, with the method
/// parameters (`--param NAME=VALUE`) it accepts. `ModelCompression.make` refuses any other name
/// before the builder runs, and `tokc methods --details` lists them.
enum ModelCompressionFactory {
    typealias Builder = (Budget, [String: String]) throws -> ModelCompression
    struct Entry {
        let parameters: [String]
        let build: Builder
    }
    static let entries: [String: Entry] = [
        "dart": Entry(parameters: ["layer", "pivot_image", "pivot_text"], build: DARTCompression.make),
        "fastv": Entry(parameters: ["layer"], build: AttentionRowCompression.makeFastV),
        "a-score": Entry(parameters: ["layer"], build: AttentionRowCompression.makeAScore),
        "k-norm": Entry(parameters: ["layer", "l2", "smallest"], build: { try SignalNormCompression.make(.keys, budget: $0, parameters: $1) }),
        "v-norm": Entry(parameters: ["layer", "l2", "smallest"], build: { try SignalNormCompression.make(.values, budget: $0, parameters: $1) }),
        "random": Entry(parameters: ["layer", "seed"], build: SignalNormCompression.makeRandom),
        "pdrop": Entry(parameters: ["layers", "lambda"], build: PDropCompression.make),
        "sparsevlm": Entry(parameters: [], build: SparseVLMCompression.make),
        "mustdrop": Entry(parameters: ["global", "individual", "window", "merge_threshold"], build: MustDropCompression.make),
        "fastervlm": Entry(parameters: ["vision_layer"], build: VisionMethods.fasterVLM),
        "hired": Entry(parameters: ["vision_layer", "alpha"], build: HiREDCompression.make),
        "visionzip": Entry(parameters: ["vision_layer", "contextual"], build: VisionMethods.visionZip),
        "prumerge": Entry(parameters: ["vision_layer", "adaptive"], build: { try VisionMethods.pruMerge(plus: false, budget: $0, parameters: $1) }),
        "prumerge_plus": Entry(parameters: ["vision_layer"], build: { try VisionMethods.pruMerge(plus: true, budget: $0, parameters: $1) }),
        "pooling": Entry(parameters: ["window"], build: VisionMethods.pooling),
        "globalcom2": Entry(parameters: [], build: GlobalCom2Compression.make),
        "ficoco_v": Entry(parameters: ["r", "beta", "quantile"], build: FiCoCoVCompression.make),
    ]
}
