import Testing
@testable import Tensors

@Suite struct BLASKernelTests {
    @Test func genericCoreOnAVX512MachineGetsSkylakeX() {
        let flags: Set<String> = ["avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"]
        #expect(BLAS.recommendedCoreType(coreName: "Prescott", cpuFlags: flags) == "SkylakeX")
        #expect(BLAS.recommendedCoreType(coreName: "Prescott", cpuFlags: ["avx", "avx2", "fma"]) == "Haswell")
        #expect(BLAS.recommendedCoreType(coreName: "Haswell", cpuFlags: flags) == nil)
        #expect(BLAS.recommendedCoreType(coreName: nil, cpuFlags: flags) == nil)
        #expect(BLAS.recommendedCoreType(coreName: "Prescott", cpuFlags: []) == nil)
    }
}
