import Foundation
import Testing
@testable import Evaluation

/// The README's facts that code can check: counts, the conformance result, the setup command.
@Suite struct ReadmeTests {
    static func readme() throws -> String { try String(contentsOfFile: benchRepoRoot + "/README.md", encoding: .utf8) }

    @Test func methodCountsComeFromTheRegistries() throws {
        let text = try Self.readme()
        #expect(text.contains("**\(MethodCatalog.summary)**"), "README must state: \(MethodCatalog.summary)")
        // No other sentence states a method count that could go stale.
        let counts = try NSRegularExpression(pattern: #"\b(\d+) (?:in-model )?methods\b"#)
        let stated = counts.matches(in: text, range: NSRange(text.startIndex..., in: text)).map { Int((text as NSString).substring(with: $0.range(at: 1)))! }
        #expect(stated == [MethodCatalog.all.count], "method counts stated in README: \(stated)")
    }

    /// Cases of implemented methods pass (ConformanceTests holds them to it); the others fail as
    /// "method not implemented" until their issue is done.
    @Test func conformanceResultMatchesTheCases() throws {
        let cases = try ConformanceRunner.findCases(under: benchRepoRoot + "/conformance/cases")
        let implemented = Set(MethodCatalog.conformers.map { $0.method })
        let passing = cases.filter { implemented.contains(URL(fileURLWithPath: $0).deletingLastPathComponent().lastPathComponent) }.count
        let sentence = "Current result: **\(passing) passed, \(cases.count - passing) failed**"
        #expect(try Self.readme().contains(sentence), "README must state: \(sentence)")
    }

    /// The first command must work where `sudo` does not exist (root in a container) and for a user with sudo.
    @Test func setupCommandWorksWithAndWithoutSudo() throws {
        let text = try Self.readme()
        let block = try #require(text.components(separatedBy: "```bash\n").dropFirst().first?.components(separatedBy: "```").first)
        let commands = block.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        #expect(commands.first?.hasPrefix("bash tools/setup.sh && ") == true)
        #expect(!block.contains("sudo "), "the setup command decides on sudo itself")

        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [benchRepoRoot + "/tools/setup.sh", "--dry-run"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        p.waitUntilExit()
        let printed = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(p.terminationStatus == 0)
        #expect(printed.contains("apt-get install") && printed.contains("libopenblas-dev"))
        // As root no sudo is used (it may not exist); otherwise it is.
        #expect(printed.contains("sudo") == (getuid() != 0))
    }
}

/// The built-in model folder loads in transformers' Auto classes as a llava-hf folder does
/// (tools/builtin/check_hf_folder.py runs them; this holds the files they need to the config).
@Suite struct BuiltinModelFolderTests {
    static let folder = benchRepoRoot + "/builtin/models/llava/"

    func json(_ name: String) throws -> [String: Any] {
        let data = try #require(FileManager.default.contents(atPath: Self.folder + name), "\(name) missing")
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    @Test func processorConfigCountsTheImageTokensOfTheConfig() throws {
        let processor = try json("processor_config.json"), config = try json("config.json")
        let vision = try #require(config["vision_config"] as? [String: Any])
        let patch = try #require(processor["patch_size"] as? Int)
        #expect(patch == vision["patch_size"] as? Int)
        let strategy = try #require(processor["vision_feature_select_strategy"] as? String)
        #expect(strategy == config["vision_feature_select_strategy"] as? String)
        let extra = try #require(processor["num_additional_image_tokens"] as? Int)
        let side = try #require(vision["image_size"] as? Int) / patch
        // LlavaProcessor's count: (size / patch)² + additional tokens, minus the CLS for "default".
        #expect(side * side + extra - (strategy == "default" ? 1 : 0) == config["image_seq_length"] as? Int)
        #expect(processor["image_token"] as? String == "<image>")
    }

    @Test func chatTemplateShipsForTheProcessorAndMatchesTheTokenizers() throws {
        let processor = try json("chat_template.json"), tokenizer = try json("tokenizer_config.json")
        let template = try #require(processor["chat_template"] as? String)
        #expect(template == tokenizer["chat_template"] as? String)
    }
}
