import Foundation
import FuzzSupport
import ModelIO

/// tokenizer.json, then arbitrary text encoded and decoded with it. Input: tokenizer.json, a NUL
/// byte, the text (without a NUL, a fixed sentence with an added token is encoded).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTokenizer(_ bytes: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let (json, rest) = FuzzInput.split(FuzzInput.data(bytes, size))
    guard let tokenizer = try? Tokenizer(tokenizerJSON: json) else { return 0 }
    let text = rest.map(FuzzInput.text) ?? "USER: <image>\nWhat colour is the square? ASSISTANT: red 123 ünïcödé"
    guard let ids = try? tokenizer.encode(text) else { return 0 }
    _ = tokenizer.decode(ids)
    _ = tokenizer.decode(ids, skipSpecialTokens: false)
    return 0
}
