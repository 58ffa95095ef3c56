import Foundation
import Testing
@testable import ModelIO

let tokenizerSampleTexts = [
    "Hello world", "  two  spaces\t\ttabs\n\n\nnewlines  ", "It's I'M we'll THEY'RE don't", "12345 3.14 ١٢٣",
    "日本語のテキスト 😀👍🏽 👨‍👩‍👧", "e\u{301}B\u{301} ÀÉ", "!@#$%^&*() ..., -- <image>", "\r\n\r\n x \u{a0}y\u{3000}z",
    "code:\n    if x == 1:\n        return 'ok'\n", "   ", "", "a", "'", "''s", "x'S'Ll'rE",
]

/// A tokenizer.json built in the test, small enough to reason about by hand.
func tokenizerTinyJSON(model: String = #""type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "c": 3, "abc": 4, "<unk>": 5}, "merges": ["a b", ["ab", "c"]], "unk_token": "<unk>""#,
                       extra: String = "") -> Data {
    Data(#"{"added_tokens": [{"id": 6, "content": "<x>", "special": true, "lstrip": true, "rstrip": false, "single_word": false, "normalized": false}], "#.utf8
         + Data(extra.utf8) + Data(#""model": {\#(model)}}"#.utf8))
}

@Suite struct TokenizerComponentTests {
    /// The hand-written scanners must agree with a general regex engine on the same patterns.
    @Test(arguments: [TokenizerPattern.gpt2Source, TokenizerPattern.qwen2Source, TokenizerPattern.llama3Source])
    func scannersAgreeWithICU(source: String) throws {
        let fast = try TokenizerPattern(regex: source, context: "test")
        if case .regex = fast { Issue.record("expected a hand-written scanner for \(source)") }
        let icu = TokenizerPattern.regex(try NSRegularExpression(pattern: source), source: source)
        for text in tokenizerSampleTexts {
            let s = Array(text.unicodeScalars)
            #expect(fast.matches(in: s) == icu.matches(in: s), "\(text.debugDescription)")
        }
    }

    @Test func mergesInBothFormsAndUnknown() throws {
        let tok = try Tokenizer(tokenizerJSON: tokenizerTinyJSON())
        #expect(try tok.encode("abc") == [4])
        #expect(try tok.encode("abab") == [2, 2])
        // Unknown characters map to <unk> (not fused: fuse_unk is off).
        #expect(try tok.encode("azzb") == [0, 5, 5, 1])
        // lstrip: the added token swallows the spaces before it.
        #expect(try tok.encode("ab  <x>c") == [2, 6, 3])
        #expect(tok.decode([2, 6, 3]) == "ab c")
        #expect(tok.decode([2, 6, 3], skipSpecialTokens: false) == "ab <x> c")
    }

    @Test func fuseUnkAndIgnoreMerges() throws {
        let fused = try Tokenizer(tokenizerJSON: tokenizerTinyJSON(model: #""type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "<unk>": 3}, "merges": ["a b"], "unk_token": "<unk>", "fuse_unk": true"#))
        #expect(try fused.encode("azzzb") == [0, 3, 1])
        // ignore_merges: a word found whole in the vocabulary is taken as it is.
        let json = #""type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "bc": 3, "abc": 4}, "merges": ["b c"], "ignore_merges": "#
        #expect(try Tokenizer(tokenizerJSON: tokenizerTinyJSON(model: json + "true")).encode("abc") == [4])
        #expect(try Tokenizer(tokenizerJSON: tokenizerTinyJSON(model: json + "false")).encode("abc") == [0, 3])
    }

    /// CLIP's `</w>` suffix on the last character of a word; a WordPiece-style continuing prefix on the
    /// others, dropped from the right part when merging; BPEDecoder turns the suffix into spaces.
    @Test func wordSuffixAndSubwordPrefix() throws {
        let clip = #""type": "BPE", "vocab": {"a": 0, "b": 1, "a</w>": 2, "b</w>": 3, "ab</w>": 4, "<unk>": 5}, "merges": ["a b</w>"], "unk_token": "<unk>", "continuing_subword_prefix": "", "end_of_word_suffix": "</w>""#
        let tok = try Tokenizer(tokenizerJSON: tokenizerTinyJSON(model: clip, extra: #""decoder": {"type": "BPEDecoder", "suffix": "</w>"}, "padding": {"strategy": "BatchLongest", "pad_id": 5}, "#))
        #expect(try tok.encode("ab") == [4])
        #expect(try tok.encode("aab") == [0, 4])
        #expect(try tok.encode("ba") == [1, 2])
        #expect(try tok.encode("bz") == [1, 5])  // "z</w>" is not in the vocabulary
        #expect(tok.decode([0, 4, 2]) == "aab a")
        let piece = ###""type": "BPE", "vocab": {"a": 0, "##b": 1, "ab": 2, "##a": 3}, "merges": ["a ##b"], "continuing_subword_prefix": "##""###
        let wp = try Tokenizer(tokenizerJSON: tokenizerTinyJSON(model: piece))
        #expect(try wp.encode("aba") == [2, 3])
        #expect(throws: TokenizerError.self) {
            try Tokenizer(tokenizerJSON: tokenizerTinyJSON(extra: #""padding": {"strategy": {"Fixed": 8}}, "#))
        }
        #expect(throws: TokenizerError.self) {
            try Tokenizer(tokenizerJSON: tokenizerTinyJSON(extra: #""padding": {"strategy": "BatchLongest", "pad_to_multiple_of": 8}, "#))
        }
    }

    @Test func unsupportedComponentsAreNamed() throws {
        func message(_ data: Data) -> String {
            do { _ = try Tokenizer(tokenizerJSON: data); return "" } catch { return "\(error)" }
        }
        #expect(message(tokenizerTinyJSON(model: #""type": "WordPiece", "vocab": {}"#)).contains("WordPiece"))
        #expect(message(tokenizerTinyJSON(extra: #""pre_tokenizer": {"type": "BertPreTokenizer"}, "#)).contains("BertPreTokenizer"))
        #expect(message(tokenizerTinyJSON(extra: #""normalizer": {"type": "Precompiled"}, "#)).contains("Precompiled"))
        #expect(message(tokenizerTinyJSON(extra: #""decoder": {"type": "CTC"}, "#)).contains("CTC"))
        #expect(message(tokenizerTinyJSON(extra: #""post_processor": {"type": "Foo"}, "#)).contains("Foo"))
        #expect(message(tokenizerTinyJSON(model: #""type": "BPE", "vocab": {"a": 0}, "merges": ["a q"]"#)).contains("merges[0]"))
        #expect(message(Data("{".utf8)).contains("invalid JSON"))
        #expect(throws: TokenizerError.self) { try Tokenizer(folder: "/nonexistent/folder") }
    }

    @Test func splitBehaviors() {
        let piece = PreToken(text: "a-b--c", atStart: true)
        let dash = TokenizerPattern.literal(["-"])
        func texts(_ b: SplitBehavior, invert: Bool = false) -> [String] {
            PreTokenizer.split(piece, by: dash, behavior: b, invert: invert).map(\.text)
        }
        #expect(texts(.removed) == ["a", "b", "c"])
        #expect(texts(.isolated) == ["a", "-", "b", "-", "-", "c"])
        #expect(texts(.mergedWithPrevious) == ["a-", "b-", "-", "c"])
        #expect(texts(.mergedWithNext) == ["a", "-b", "-", "-c"])
        #expect(texts(.contiguous) == ["a", "-", "b", "--", "c"])
        #expect(texts(.removed, invert: true) == ["-", "-", "-"])
    }

    @Test func folderReadsCompanionFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tok-folder-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data(contentsOf: tokenizerFixtureDir.appendingPathComponent("builtin.tokenizer.json"))
            .write(to: dir.appendingPathComponent("tokenizer.json"))
        try Data(#"{"bos_token_id": 1, "eos_token_id": [2, 0]}"#.utf8).write(to: dir.appendingPathComponent("generation_config.json"))
        let tok = try Tokenizer(folder: dir.path)
        #expect(tok.bosTokenID == 1)
        #expect(tok.eosTokenID == 2)
        #expect(tok.bosToken == "<s>")
        try Data(#"{"eos_token": {"content": "<pad>"}}"#.utf8).write(to: dir.appendingPathComponent("tokenizer_config.json"))
        #expect(try Tokenizer(folder: dir.path).eosTokenID == 0)
    }
}

@Suite struct TokenizerVocabularyTests {
    @Test func sizesAndLookups() throws {
        let (tok, _) = try tokenizerFixture("builtin")
        #expect(tok.vocabularySize == 380)
        #expect(tok.token(for: 3) == "<image>")
        #expect(tok.token(for: 100_000) == nil)
        #expect(tok.decode([100_000, 3, -1], skipSpecialTokens: false) == "<image>")
        #expect(tok.tokenID("no such token") == nil)
    }
}

