import Foundation
import FuzzSupport
import ModelIO

/// Chat templates (the Jinja subset): parsed, then rendered for one user turn with and without an
/// image. Input: the template, a NUL byte, the user text (without a NUL, a fixed question).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzChatTemplate(_ bytes: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let (source, rest) = FuzzInput.split(FuzzInput.data(bytes, size))
    guard let template = try? ChatTemplate(source: FuzzInput.text(source)) else { return 0 }
    let user = rest.map(FuzzInput.text) ?? "What is in the picture?"
    _ = try? template.render(userText: user, withImage: true, bosToken: "<s>", eosToken: "</s>")
    _ = try? template.render(userText: user, withImage: false, addGenerationPrompt: false)
    return 0
}
