import Foundation
import FuzzSupport
import ModelIO

/// JPEG decoding (with the EXIF orientation reader and the alpha handling) of arbitrary bytes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImage(_ bytes: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let data = FuzzInput.data(bytes, size)
    _ = try? RGBImage.decode(data: data)
    _ = try? RGBImage.decode(data: data, applyExifOrientation: false, alpha: .compositeOnWhite)
    return 0
}
