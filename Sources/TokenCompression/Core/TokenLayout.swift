/// Where the parts of a multimodal sequence are: always-kept system tokens, the visual span a
/// method may touch, and the text after it (LLaVA layout: system, image, text).
public struct TokenLayout: Sendable, Equatable {
    /// Index of the first visual token.
    public let imageStart: Int
    /// Number of visual tokens.
    public let imageCount: Int
    /// Total sequence length.
    public let totalCount: Int

    public init(imageStart: Int, imageCount: Int, totalCount: Int) throws {
        guard imageStart >= 0, imageCount >= 0, imageStart + imageCount <= totalCount else {
            throw CompressionError.shapeMismatch("image span [\(imageStart), \(imageStart + imageCount)) does not fit a sequence of \(totalCount) tokens")
        }
        self.imageStart = imageStart
        self.imageCount = imageCount
        self.totalCount = totalCount
    }

    public var imageRange: Range<Int> { imageStart..<(imageStart + imageCount) }
    public var systemRange: Range<Int> { 0..<imageStart }
    /// Every token after the image span (question and template suffix).
    public var textRange: Range<Int> { (imageStart + imageCount)..<totalCount }
    /// The final prompt token, the query row of FastV / PDrop.
    public var lastIndex: Int { totalCount - 1 }

    /// Whole-sequence kept list: all system and text tokens plus the given visual ones.
    public func keptSequence(visual: [Int]) -> [Int] {
        Array(systemRange) + visual.sorted() + Array(textRange)
    }
}
