import TokenCompression

/// One builder per method that can run inside a model. (Filled in method by method.)
enum ModelCompressionFactory {
    typealias Builder = (Budget, [String: String]) throws -> ModelCompression
    static let builders: [String: Builder] = [:]
}
