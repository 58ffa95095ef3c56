import Testing
@testable import TokenCompression

@Suite struct MethodParametersTests {
    @Test func parsesNameValueItems() throws {
        let p = try MethodParameters.parse(["layer=3", "ratio= 0.5", "flag=YES", "layers=8, 16,24", "empty=", "layer=4"], method: "m")
        #expect(try p.int("layer") == 4)  // the later item wins
        #expect(try p.double("ratio") == 0.5)
        #expect(try p.bool("flag") == true)
        #expect(try p.intList("layers") == [8, 16, 24])
        #expect(p.string("empty") == "" && p.has("empty") && !p.has("absent"))
        #expect(try p.int("absent") == nil)
        #expect(try p.int("absent", default: 7) == 7)
    }

    @Test func parsesQualifiedItems() throws {
        let q = try MethodParameters.parseQualified(["FastV.layer=3", "dart.pivot_image=2", "fastv.x=a=b"])
        #expect(q == ["fastv": ["layer": "3", "x": "a=b"], "dart": ["pivot_image": "2"]])
    }

    @Test func badItemsAndValuesNameTheProblem() {
        for bad in ["novalue", "=3"] {
            #expect(throws: CompressionError.self) { try MethodParameters.parse([bad]) }
        }
        for bad in ["layer=3", ".layer=3", "fastv.=3"] {
            #expect(throws: CompressionError.self) { try MethodParameters.parseQualified([bad]) }
        }
        let p = MethodParameters("fastv", ["layer": "x", "r": "inf", "b": "maybe", "l": "1,x"])
        #expect { try p.int("layer") } throws: { "\($0)".contains("fastv: layer=x is not an integer") }
        #expect(throws: CompressionError.self) { try p.double("r") }
        #expect(throws: CompressionError.self) { try p.bool("b") }
        #expect(throws: CompressionError.self) { try p.intList("l") }
    }
}
