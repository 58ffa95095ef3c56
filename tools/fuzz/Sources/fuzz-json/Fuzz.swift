import Foundation
import FuzzSupport
import ModelIO

/// The JSON parser behind every config, tokenizer, header and case file; what it accepts must print
/// (`description`) without trapping.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ bytes: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let value = try? JSONValue.parse(FuzzInput.data(bytes, size)) else { return 0 }
    _ = value.description
    return 0
}
