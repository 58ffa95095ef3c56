import Foundation
import Tensors

/// Re-executes the tool with `OPENBLAS_CORETYPE` set when OpenBLAS fell back to generic kernels
/// on a CPU it did not recognise (see `BLAS.recommendedCoreType`); a 4–5× sgemm difference.
func selectOptimizedBLASKernels() {
    #if os(Linux)
    guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil,
          let core = BLAS.recommendedCoreType() else { return }
    setenv("OPENBLAS_CORETYPE", core, 1)
    let arguments = CommandLine.arguments
    var cArguments = arguments.map { strdup($0) } + [nil]
    execv("/proc/self/exe", &cArguments)
    // execv only returns on failure: carry on with the generic kernels.
    for p in cArguments { free(p) }
    #endif
}

selectOptimizedBLASKernels()
Tokc.main()
