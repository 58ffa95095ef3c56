import Testing
import Models
import TokenCompression
@testable import Evaluation

/// The one list of methods and the views derived from it.
@Suite struct MethodCatalogTests {
    @Test func entriesAreConsistent() {
        let names = MethodCatalog.all.map { $0.name }
        #expect(Set(names).count == names.count, "a method is listed twice")
        for e in MethodCatalog.all {
            if let a = e.adapter { #expect(a.method == e.name, "\(e.name)'s adapter is built for \(a.method)") }
            if let c = e.conformer { #expect(c.method == e.name, "\(e.name)'s conformer runs cases of \(c.method)") }
        }
        #expect(MethodCatalog.llavaMethods == names.filter { MethodCatalog.entry(named: $0)?.adapter != nil }.sorted())
        #expect(MethodCatalog.vitMethods == ["tome", "evit", "sparse_tuning"])
        #expect(MethodCatalog.inModelMethods == Set(MethodCatalog.llavaMethods + MethodCatalog.vitMethods + MethodCatalog.videoMethods
                                                    + MethodCatalog.diffusionMethods).sorted())
        for e in MethodCatalog.all { if let d = e.diffusionAdapter { #expect(d.method == e.name && e.info.domain == .diffusion, "\(e.name)") } }
        #expect(MethodCatalog.diffusionAdapterMethods == ["tomesd"])
        // The diffusion bench's rows: every caching method the sampler runs, and ToMe-SD.
        #expect(Set(MethodCatalog.diffusionMethods) == ["toca", "duca", "fora", "taylorseer", "tgate", "pab", "teacache", "delta_dit", "tomesd"])
        for e in MethodCatalog.all { if let v = e.videoAdapter { #expect(v.method == e.name && e.info.domain == .videoLLM, "\(e.name)") } }
        #expect(MethodCatalog.videoMethods.starts(with: ["vidcom2", "dycoke"]))
        // On video prompts: the video methods and the decoder-side image methods, not the vision-side ones.
        #expect(Set(["vidcom2", "dycoke", "random", "fastv", "pdrop", "sparsevlm", "dart"]).isSubset(of: MethodCatalog.videoPromptMethods))
        #expect(Set(["visionzip", "fastervlm", "hired", "pooling", "tome"]).isDisjoint(with: MethodCatalog.videoPromptMethods))
        for e in MethodCatalog.all { if let v = e.vitAdapter { #expect(v.method == e.name && e.info.domain == .vit, "\(e.name)") } }
        #expect(MethodCatalog.info(named: "DART")?.displayName == "DART")
    }

    @Test func unknownAndUnwiredMethodsAreRefusedWithTheRunnableList() throws {
        #expect { try MethodCatalog.compression(method: "no-such-method", budget: .count(8)) } throws: {
            "\($0)".contains("unknown method") && "\($0)".contains("fastv")
        }
        #expect { try MethodCatalog.compression(method: "tome", budget: .count(8)) } throws: {
            "\($0)".contains("runs inside the blocks of a ViT")
        }
        #expect { try MethodCatalog.compression(method: "toca", budget: .count(8)) } throws: {
            "\($0)".contains("runs inside a diffusion transformer's sampler")
        }
        #expect(try MethodCatalog.compression(method: "vidcom2", budget: .count(8)).videoHook != nil)
        let shape = ViTModelShape(layers: 12, width: 768, heads: 12, patchesPerSide: 14, classTokens: 1)
        #expect(try MethodCatalog.vitCompression(method: "ToMe", parameters: ["r": "8"], shape: shape).setting == "r=8")
        #expect { try MethodCatalog.vitCompression(method: "fastv", shape: shape) } throws: { "\($0)".contains("runs in LLaVA models") }
        #expect { try MethodCatalog.vitCompression(method: "nope", shape: shape) } throws: { "\($0)".contains("tome, evit, sparse_tuning") }
        #expect(throws: ModelCompressionError.self) { try MethodCatalog.compression(method: "fastv", budget: .count(8), parameters: ["nope": "1"]) }
    }

    /// Every derived list is a view of the catalog: FLOPs plans, scoring benchmarks, conformance.
    @Test func derivedListsComeFromTheEntries() {
        #expect(MethodSchedules.supported == MethodCatalog.all.filter { $0.hasFlopsPlan }.map { $0.name }.sorted())
        #expect(MethodScoringBenchmark.methods == MethodCatalog.all.filter { $0.info.domain == .imageVLM }.map { $0.name })
        #expect(MethodCatalog.conformers.map { $0.method } == MethodCatalog.all.compactMap { $0.conformer?.method })
    }
}
