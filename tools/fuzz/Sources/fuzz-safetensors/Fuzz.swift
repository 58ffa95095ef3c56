import Foundation
import FuzzSupport
import ModelIO

/// Safetensors: header length, header JSON, dtypes, shapes and data offsets, then every tensor read
/// back (as Float32 or as integers), so an offset the header check let through would show here.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ bytes: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let path = FuzzScratch.write(FuzzInput.data(bytes, size), "model.safetensors")
    guard let file = try? SafetensorsFile(path: path) else { return 0 }
    for info in file.tensors {
        _ = try? file.rawBytes(info.name)
        if info.dtype.isFloatingPoint { _ = try? file.tensor(info.name) } else { _ = try? file.integers(info.name) }
    }
    _ = file.metadata.count
    return 0
}
