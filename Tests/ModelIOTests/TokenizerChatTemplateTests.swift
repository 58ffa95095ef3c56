import Foundation
import Testing
@testable import ModelIO

/// Templates and their jinja2 renderings, written by tools/fixtures/tokenizer_chat_templates.py.
func tokenizerTemplateFixtures() throws -> [JSONValue] {
    try JSONValue.parse(Data(contentsOf: tokenizerFixtureDir.appendingPathComponent("chat_templates.json"))).arrayValue ?? []
}

@Suite struct TokenizerChatTemplateTests {
    @Test func rendersLikeJinja2() throws {
        let fixtures = try tokenizerTemplateFixtures()
        #expect(fixtures.count >= 9)
        #expect(fixtures.contains { $0["name"]?.stringValue == "builtin" })
        for f in fixtures {
            let name = f["name"]!.stringValue!
            let template = try ChatTemplate(source: f["template"]!.stringValue!)
            for c in f["cases"]!.arrayValue! {
                let got = try template.render(userText: c["user_text"]!.stringValue!, withImage: c["with_image"]!.boolValue!,
                                              addGenerationPrompt: c["add_generation_prompt"]!.boolValue!,
                                              bosToken: "<s>", eosToken: "</s>")
                #expect(got == c["expected"]!.stringValue!, "\(name) \(c["user_text"]!)")
            }
        }
    }

    @Test func builtinPromptMatchesTrainingScript() throws {
        let f = try #require(try tokenizerTemplateFixtures().first { $0["name"]?.stringValue == "builtin" })
        let template = try ChatTemplate(source: f["template"]!.stringValue!)
        // tools/builtin/train.py's prompt_text(question)
        #expect(try template.render(userText: "What is it?", withImage: true, bosToken: "<s>", eosToken: "</s>")
                == "<s>USER: <image>\nWhat is it? ASSISTANT:")
    }

    @Test func readsTemplateFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tok-template-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(throws: TokenizerError.self) { try ChatTemplate(folder: dir.path) }
        let config = #"{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D{{ 1 + 1 }}"}]}"#
        try Data(config.utf8).write(to: dir.appendingPathComponent("tokenizer_config.json"))
        #expect(try ChatTemplate(folder: dir.path).render(context: [:]) == "D2")
        try Data(#"{"chat_template": "J{{ 'x' }}"}"#.utf8).write(to: dir.appendingPathComponent("chat_template.json"))
        #expect(try ChatTemplate(folder: dir.path).source == "J{{ 'x' }}")
    }

    @Test func errorsNameTheConstruct() throws {
        func message(_ source: String) -> String {
            do { _ = try ChatTemplate(source: source).render(userText: "hi", withImage: true); return "" } catch { return "\(error)" }
        }
        #expect(message("{% macro m() %}{% endmacro %}").contains("macro"))
        #expect(message("{{ x | wordwrap }}").contains("wordwrap"))
        #expect(message("{% if true %}open").contains("endif"))
        #expect(message("{{ 'unclosed }}").contains("unterminated string") || message("{{ 'unclosed }}").contains("unclosed"))
        #expect(message("{{ raise_exception('no images please') }}").contains("no images please"))
        #expect(message("{{ foo() }}").contains("foo"))
    }

    @Test func whitespaceControl() throws {
        let t = try ChatTemplate(source: "a  {%- if true -%}  b  {%- endif %}\n  c\n    {% if true %}\nd{{ ' e ' }}\n{% endif %}")
        #expect(try t.render(context: [:]) == "ab  c\nd e \n")
        // Expected strings checked with jinja2 (trim_blocks, lstrip_blocks): comments count as blocks, `{%+` keeps indentation.
        let u = try ChatTemplate(source: "x\n  {# c #}\n  y {% if 1 %}z{% endif %}  \n  {%+ if 1 %}w{% endif %}")
        #expect(try u.render(context: [:]) == "x\n  y z  \n  w")
    }
}

@Suite struct TokenizerPromptTests {
    /// Template and tokenizer together reproduce the ids the Python side computes for the prompt.
    @Test func builtinPromptIDs() throws {
        let (tok, cases) = try tokenizerFixture("builtin")
        let f = try #require(try tokenizerTemplateFixtures().first { $0["name"]?.stringValue == "builtin" })
        let template = try ChatTemplate(source: f["template"]!.stringValue!)
        let prompt = try template.render(userText: "What is shown in this image?", withImage: true,
                                         bosToken: tok.bosToken, eosToken: tok.eosToken)
        let want = try #require(cases.first { $0["text"]?.stringValue == prompt })
        #expect(try tok.encodePrompt(prompt) == want["ids"]!.arrayValue!.map { $0.intValue! })
        #expect(try tok.encodePrompt(prompt).first == tok.bosTokenID)
        #expect(try tok.encodePrompt(prompt).filter { $0 == tok.tokenID("<image>") }.count == 1)
    }

    /// LLaVA-1.5's template leaves BOS to the post-processor; a template that writes it is not doubled.
    @Test func bosNotDoubled() throws {
        let (tok, _) = try tokenizerFixture("llama_legacy")
        let bos = try #require(tok.bosTokenID)
        let a = try tok.encodePrompt("USER: <image>\nHi ASSISTANT:")
        let b = try tok.encodePrompt("<s>USER: <image>\nHi ASSISTANT:")
        #expect(a.first == bos && a.dropFirst().first != bos)
        #expect(b.first == bos && b.dropFirst().first != bos)
    }
}

@Suite struct TokenizerJinjaArithmeticTests {
    @Test func pythonSemantics() throws {
        let t = try ChatTemplate(source: "{{ -7 // 2 }},{{ -7 % 3 }},{{ 7 % -3 }},{{ 7 / 2 }},{{ 2 - 5 }},{{ 'ab' ~ 1 ~ none }},{{ 1 == 1.0 }},{{ [1] + [2] }},{{ {'a': 'x'} }}")
        // Checked with Python: -7 // 2 == -4, -7 % 3 == 2, 7 % -3 == -2.
        #expect(try t.render(context: [:]) == "-4,2,-2,3.5,-3,ab1None,True,[1, 2],{'a': 'x'}")
        #expect(throws: TokenizerError.self) { try ChatTemplate(source: "{{ 9223372036854775807 + 1 }}").render(context: [:]) }
        #expect(throws: TokenizerError.self) { try ChatTemplate(source: "{{ 1 // 0 }}").render(context: [:]) }
        #expect(throws: TokenizerError.self) { try ChatTemplate(source: "{{ 'a' + 1 }}").render(context: [:]) }
    }
}
