import Foundation

/// A model's chat template (the Jinja text from `chat_template.json`, `chat_template.jinja` or
/// `tokenizer_config.json`), run by a small Jinja interpreter that covers what the LLaVA, Qwen2 and
/// LLaMA templates use. Constructs outside that subset fail with an error naming them.
public struct ChatTemplate: @unchecked Sendable {
    public let source: String
    let nodes: [JinjaNode]

    public init(source: String) throws {
        self.source = source
        nodes = try JinjaParser.parse(source)
    }

    /// Looks in `chat_template.json`, then `chat_template.jinja`, then `tokenizer_config.json`;
    /// a list of named templates (`[{"name", "template"}]`) gives the one named "default".
    public init(folder: String) throws {
        let dir = URL(fileURLWithPath: folder)
        func json(_ name: String) throws -> JSONValue? {
            let url = dir.appendingPathComponent(name)
            guard let d = try? Data(contentsOf: url) else { return nil }
            do { return try JSONValue.parse(d) } catch { throw TokenizerError("\(url.path): invalid JSON: \(error)") }
        }
        if let j = try json("chat_template.json"), let t = j["chat_template"] {
            try self.init(source: try Self.pick(t, file: "chat_template.json"))
        } else if let text = try? String(contentsOf: dir.appendingPathComponent("chat_template.jinja"), encoding: .utf8) {
            try self.init(source: text)
        } else if let j = try json("tokenizer_config.json"), let t = j.tokPresent("chat_template") {
            try self.init(source: try Self.pick(t, file: "tokenizer_config.json"))
        } else {
            throw TokenizerError("no chat template in \(folder) (looked for chat_template.json, chat_template.jinja, tokenizer_config.json 'chat_template')")
        }
    }

    private static func pick(_ t: JSONValue, file: String) throws -> String {
        if let s = t.stringValue { return s }
        if let list = t.arrayValue {
            let named = list.compactMap { e -> (String, String)? in
                guard let n = e["name"]?.stringValue, let s = e["template"]?.stringValue else { return nil }
                return (n, s)
            }
            if let d = named.first(where: { $0.0 == "default" }) { return d.1 }
            throw TokenizerError("\(file): chat_template list has no template named 'default' (has \(named.map(\.0)))")
        }
        throw TokenizerError("\(file): chat_template must be a string or a list of named templates")
    }

    /// Renders with the given variables (`messages`, `add_generation_prompt`, `bos_token`, ...).
    public func render(context: [String: JinjaValue]) throws -> String {
        try JinjaInterpreter.render(nodes, context: context)
    }

    /// One user turn, optionally with one image, as transformers' processors build it:
    /// content as a list `[{"type": "image"}, {"type": "text", "text": ...}]`. Templates that expect
    /// a plain string content (they fail on a list, or drop the text) are rendered again with
    /// `imageToken + "\n" + userText` as the content.
    public func render(userText: String, withImage: Bool, imageToken: String = "<image>", addGenerationPrompt: Bool = true,
                       bosToken: String? = nil, eosToken: String? = nil) throws -> String {
        var parts: [JinjaValue] = []
        if withImage { parts.append(.object(["type": .string("image")])) }
        parts.append(.object(["type": .string("text"), "text": .string(userText)]))
        func context(_ content: JinjaValue) -> [String: JinjaValue] {
            [
                "messages": .list([.object(["role": .string("user"), "content": content])]),
                "add_generation_prompt": .bool(addGenerationPrompt),
                "bos_token": bosToken.map { .string($0) } ?? .string(""),
                "eos_token": eosToken.map { .string($0) } ?? .string(""),
            ]
        }
        var firstError: Error?
        do {
            let text = try render(context: context(.list(parts)))
            if text.contains(userText) { return text }
        } catch {
            firstError = error
        }
        let flat = withImage ? imageToken + "\n" + userText : userText
        do {
            return try render(context: context(.string(flat)))
        } catch {
            throw firstError ?? error
        }
    }
}
