import Foundation
import FuzzSupport
import Evaluation

/// The conformance case reader: case.json (method, params, compare), a NUL byte, inputs.safetensors;
/// then every parameter read through each typed accessor and every input tensor read back.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConformanceCase(_ bytes: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let (caseJSON, inputs) = FuzzInput.split(FuzzInput.data(bytes, size))
    FuzzScratch.write(caseJSON, "case.json")
    FuzzScratch.write(inputs ?? Data(), "inputs.safetensors")
    guard let c = try? ConformanceCase(directory: FuzzScratch.folder) else { return 0 }
    for key in c.params.values.keys {
        _ = try? c.params.int(key)
        _ = try? c.params.double(key)
        _ = try? c.params.bool(key)
        _ = try? c.params.string(key)
        _ = try? c.params.ints(key)
        _ = try? c.params.doubles(key)
    }
    for name in c.inputs.file.names {
        _ = try? c.inputs.shape(name)
        _ = try? c.inputs.floats(name)
        _ = try? c.inputs.ints(name)
    }
    return 0
}
