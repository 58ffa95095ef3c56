import ArgumentParser
import Runtime
import Testing
@testable import tokc

/// `tokc run`: its option checks (in `run`, so bad input exits with status 1) tested directly.
@Suite struct RunCommandTests {
    static func check(_ arguments: [String], llava: Bool = true) throws {
        let c = try RunCommand.parse(arguments)
        try c.checkOptions()
        if llava { try c.checkLlavaOptions() }
    }

    @Test func goodInvocationsPassWithTheirValues() throws {
        let c = try RunCommand.parse(["--model", "m", "--image", "a.png", "--prompt", "What?", "--method", "fastv", "--ratio", "0.25",
                                      "--param", "layer=3", "--param", "k=2", "--max-new-tokens", "4", "--threads", "2", "--json", "--raw"])
        try c.checkOptions()
        try c.checkLlavaOptions()
        #expect(c.model == "m" && c.image == "a.png" && c.prompt == "What?" && c.method == "fastv" && c.ratio == 0.25)
        #expect(c.param == ["layer=3", "k=2"] && c.maxNewTokens == 4 && c.threads == 2 && c.json && c.raw)
        #expect(c.keep == nil && c.topK == 5)
        try Self.check([])
        try Self.check(["--method", "random", "--keep", "64"])
        try Self.check(["--video", "v.mp4", "--frames", "8", "--prompt", "What happens?"])
        try Self.check(["--model", "vit", "--image", "a.png", "--merge-map", "m.png"], llava: false)
    }

    @Test(arguments: [
        (["--keep", "10", "--ratio", "0.5", "--method", "fastv"], "give either --keep or --ratio, not both"),
        (["--keep", "0", "--method", "fastv"], "--keep must be at least 1, got 0"),
        (["--ratio", "0", "--method", "fastv"], "--ratio must be in (0, 1], got 0.0"),
        (["--ratio", "1.5", "--method", "fastv"], "--ratio must be in (0, 1], got 1.5"),
        (["--max-new-tokens", "0"], "--max-new-tokens must be at least 1"),
        (["--threads", "0"], "--threads must be positive"),
        (["--frames", "4"], "--frames samples the frames of --video"),
        (["--video", "v.mp4", "--frames", "0", "--prompt", "q"], "--frames must be at least 1, got 0"),
        (["--video", "v.mp4", "--image", "a.png", "--prompt", "q"], "give either --image or --video, not both"),
        (["--video", "v.mp4"], "--video needs --prompt"),
        (["--keep", "10"], "--keep/--ratio need --method"),
        (["--method", "fastv"], "--method needs a budget"),
        (["--merge-map", "m.png"], "--merge-map draws a ViT method's merged tokens"),
    ])
    func badOptionsAreRejected(_ arguments: [String], _ expected: String) {
        expectRejected(arguments, expected, as: VLMRunError.self, message: { $0.message }) { try Self.check(arguments) }
    }
}
