import Foundation

/// A Hugging Face `tokenizer.json` tokenizer (BPE, sentencepiece style with byte fallback or
/// byte-level as in GPT-2/Qwen2), producing the same ids as the Python `tokenizers` library.
///
/// Encoding runs the reference pipeline: added tokens are cut out of the raw text first (those
/// with `normalized: false`), each remaining stretch is normalized and searched for the
/// `normalized: true` added tokens, pre-tokenized into words, and each word goes through BPE;
/// the post-processor then adds BOS and friends when `addSpecialTokens` is set.
public struct Tokenizer: Sendable {
    let model: BPEModel
    let addedTokens: [Int: AddedToken]
    let addedByContent: [String: Int]
    /// What an added token decodes to: its content, normalized when the token is `normalized`
    /// (the reference library hands the normalized form to the decoder, e.g. "▁<extra>").
    let addedDecodeForm: [Int: String]
    let rawMatcher: AddedTokenMatcher
    let normalizedMatcher: AddedTokenMatcher
    let normalizer: TokenizerNormalizer?
    let preTokenizer: PreTokenizer?
    let postProcessor: PostProcessor?
    let decoder: TokenDecoder?

    /// Beginning- and end-of-sequence ids, from tokenizer_config.json, special_tokens_map.json or
    /// generation_config.json (in that order of preference) when those files were given.
    public var bosTokenID: Int?
    public var eosTokenID: Int?
    /// The token strings behind `bosTokenID` / `eosTokenID` (chat templates print them).
    public var bosToken: String?
    public var eosToken: String?

    /// Number of ids the tokenizer can produce (model vocabulary plus added tokens): largest id + 1.
    public let vocabularySize: Int

    /// Reads tokenizer.json and, when present, tokenizer_config.json, special_tokens_map.json and
    /// generation_config.json from a model folder.
    ///
    /// `transformersCompatible`: transformers 5 does not run every tokenizer.json as written; its
    /// `LlamaTokenizer` class replaces the normalizer, pre-tokenizer and decoder with its own
    /// (Metaspace, prepend_scheme "first" unless `legacy`), which changes the ids right after an
    /// added token such as `<image>`. Set this to reproduce the ids of `AutoTokenizer` in
    /// transformers 5 instead of those of the `tokenizers` library (the default).
    public init(folder: String, transformersCompatible: Bool = false) throws {
        let dir = URL(fileURLWithPath: folder)
        let path = dir.appendingPathComponent("tokenizer.json")
        guard let data = try? Data(contentsOf: path) else {
            throw TokenizerError("cannot read \(path.path) (only tokenizer.json tokenizers are supported)")
        }
        func optional(_ name: String) throws -> JSONValue? {
            let url = dir.appendingPathComponent(name)
            guard let d = try? Data(contentsOf: url) else { return nil }
            do { return try JSONValue.parse(d) } catch { throw TokenizerError("\(url.path): invalid JSON: \(error)") }
        }
        try self.init(tokenizerJSON: data,
                      tokenizerConfig: try optional("tokenizer_config.json"),
                      specialTokensMap: try optional("special_tokens_map.json"),
                      generationConfig: try optional("generation_config.json"),
                      transformersCompatible: transformersCompatible)
    }

    public init(tokenizerJSON: Data) throws {
        try self.init(tokenizerJSON: tokenizerJSON, tokenizerConfig: nil)
    }

    /// `tokenizerConfig`, `specialTokensMap` and `generationConfig` are the parsed companion files;
    /// they decide `bosTokenID`/`eosTokenID` (and, with `transformersCompatible`, the class overrides).
    public init(tokenizerJSON: Data, tokenizerConfig: JSONValue?, specialTokensMap: JSONValue? = nil,
                generationConfig: JSONValue? = nil, transformersCompatible: Bool = false) throws {
        let json: JSONValue
        do { json = try JSONValue.parse(tokenizerJSON) } catch { throw TokenizerError("tokenizer.json: invalid JSON: \(error)") }
        guard let modelJSON = json["model"] else { throw TokenizerError("tokenizer.json: missing 'model'") }
        model = try BPEModel(json: modelJSON)
        var added: [Int: AddedToken] = [:]
        var byContent: [String: Int] = [:]
        var list: [AddedToken] = []
        for entry in json["added_tokens"]?.arrayValue ?? [] {
            let t = try AddedToken(json: entry)
            added[t.id] = t
            byContent[t.content] = t.id
            list.append(t)
        }
        addedTokens = added
        addedByContent = byContent
        vocabularySize = max(model.idToToken.keys.max() ?? -1, added.keys.max() ?? -1) + 1
        var normalizer = try json.tokPresent("normalizer").map { try TokenizerNormalizer(json: $0) }
        var preTokenizer = try json.tokPresent("pre_tokenizer").map { try PreTokenizer(json: $0) }
        postProcessor = try json.tokPresent("post_processor").map { try PostProcessor(json: $0) }
        var decoder = try json.tokPresent("decoder").map { try TokenDecoder(json: $0) }
        if transformersCompatible, let config = tokenizerConfig,
           let cls = config["tokenizer_class"]?.stringValue, cls == "LlamaTokenizer" || cls == "LlamaTokenizerFast" {
            // What transformers 5's LlamaTokenizer.__init__ installs over tokenizer.json.
            let addPrefixSpace = config["add_prefix_space"]?.boolValue ?? true
            let legacy = config["legacy"]?.boolValue ?? false
            normalizer = nil
            preTokenizer = .metaspace(replacement: "▁", prepend: addPrefixSpace ? (legacy ? .always : .first) : .never, split: false)
            var steps: [TokenDecoder] = [.replace(.literal(["▁"]), " "), .byteFallback, .fuse]
            if addPrefixSpace { steps.append(.strip(content: " ", start: 1, stop: 0)) }
            decoder = .sequence(steps)
        }
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.decoder = decoder
        if let t = json.tokPresent("truncation") { throw TokenizerError("tokenizer.json: truncation \(t) is not supported") }
        // Padding to the longest sequence of a batch leaves a single sequence as it is (files saved after a
        // batch call carry it, e.g. CLIP's); a fixed length would change the ids.
        if let p = json.tokPresent("padding"),
           p["strategy"]?.stringValue != "BatchLongest" || (p.tokPresent("pad_to_multiple_of")?.intValue ?? 1) > 1 {
            throw TokenizerError("tokenizer.json: padding \(p) is not supported (only BatchLongest, which leaves one sequence unchanged)")
        }
        let norm = normalizer
        var decodeForm: [Int: String] = [:]
        for t in list { decodeForm[t.id] = t.normalized ? (norm?.apply(t.content) ?? t.content) : t.content }
        addedDecodeForm = decodeForm
        rawMatcher = AddedTokenMatcher(tokens: list.filter { !$0.normalized }, form: { $0 })
        normalizedMatcher = AddedTokenMatcher(tokens: list.filter { $0.normalized }, form: { norm?.apply($0) ?? $0 })

        bosToken = Self.specialToken("bos_token", tokenizerConfig, specialTokensMap)
        eosToken = Self.specialToken("eos_token", tokenizerConfig, specialTokensMap)
        bosTokenID = nil
        eosTokenID = nil
        bosTokenID = bosToken.flatMap { tokenID($0) } ?? Self.firstID(generationConfig?["bos_token_id"])
        eosTokenID = eosToken.flatMap { tokenID($0) } ?? Self.firstID(generationConfig?["eos_token_id"])
        if bosToken == nil, let id = bosTokenID { bosToken = token(for: id) }
        if eosToken == nil, let id = eosTokenID { eosToken = token(for: id) }
    }

    /// `"<s>"` or `{"content": "<s>", ...}` from the first file that names it.
    private static func specialToken(_ key: String, _ files: JSONValue?...) -> String? {
        for f in files {
            guard let v = f?[key] else { continue }
            if let s = v.stringValue { return s }
            if let s = v["content"]?.stringValue { return s }
        }
        return nil
    }

    private static func firstID(_ v: JSONValue?) -> Int? {
        v?.intValue ?? v?.arrayValue?.first?.intValue
    }

    /// The id of a token string: added tokens first, then the model vocabulary.
    public func tokenID(_ token: String) -> Int? {
        addedByContent[token] ?? model.vocab[token]
    }

    /// The token string of an id, or nil for an id outside the vocabulary.
    public func token(for id: Int) -> String? {
        addedTokens[id]?.content ?? model.idToToken[id]
    }

    /// Whether `id` is an added token marked special (skipped by `decode` by default).
    public func isSpecial(_ id: Int) -> Bool { addedTokens[id]?.special ?? false }

    public func encode(_ text: String, addSpecialTokens: Bool = true) throws -> [Int] {
        var ids: [Int] = []
        for segment in rawMatcher.split(text, atStart: true) {
            switch segment {
            case .token(let id):
                ids.append(id)
            case .text(let raw, let atStart):
                let normalized = normalizer?.apply(raw) ?? raw
                for inner in normalizedMatcher.split(normalized, atStart: atStart) {
                    switch inner {
                    case .token(let id):
                        ids.append(id)
                    case .text(let piece, let pieceAtStart):
                        let start = [PreToken(text: piece, atStart: pieceAtStart)]
                        let words = preTokenizer?.apply(start) ?? start
                        for w in words { model.tokenize(w.text, into: &ids) }
                    }
                }
            }
        }
        if addSpecialTokens, let post = postProcessor { ids = post.apply(ids) }
        return ids
    }

    /// Text of `ids`; ids outside the vocabulary are skipped, special added tokens too unless
    /// `skipSpecialTokens` is false.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = true) -> String {
        var tokens: [String] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            if skipSpecialTokens && isSpecial(id) { continue }
            guard let t = addedDecodeForm[id] ?? model.idToToken[id] else { continue }
            tokens.append(t)
        }
        guard let decoder else { return tokens.joined(separator: " ") }
        return decoder.apply(tokens).joined()
    }
}
