extension Tokenizer {
    /// Ids of a prompt rendered by a chat template, as the transformers processors produce them:
    /// the post-processor's special tokens (LLaMA's `<s>`) are added unless the template already
    /// wrote the BOS token itself, so that BOS is never doubled.
    public func encodePrompt(_ rendered: String) throws -> [Int] {
        let templateWroteBOS = bosToken.map { !$0.isEmpty && rendered.hasPrefix($0) } ?? false
        return try encode(rendered, addSpecialTokens: !templateWroteBOS)
    }
}
