import Foundation
import Testing
@testable import ModelIO

@Suite struct JSONValueTests {
    @Test func parsesTypesDistinctly() throws {
        let v = try JSONValue.parse(Data(#"{"a": [1, 2.5, true, null, "x\u00e9\n"], "b": {"c": -3e2}, "n": NaN}"#.utf8))
        #expect(v["a"]?.arrayValue?[0].intValue == 1)
        #expect(v["a"]?.arrayValue?[1].doubleValue == 2.5)
        #expect(v["a"]?.arrayValue?[1].intValue == nil)
        #expect(v["a"]?.arrayValue?[2].boolValue == true)
        #expect(v["a"]?.arrayValue?[2].intValue == nil)
        #expect(v["a"]?.arrayValue?[3].isNull == true)
        #expect(v["a"]?.arrayValue?[4].stringValue == "xé\n")
        #expect(v["b"]?["c"]?.intValue == -300)
        #expect(v["n"]?.doubleValue?.isNaN == true)
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "tru", "\"abc", "{} x", "[1e]"])
    func malformedInputThrows(text: String) {
        #expect(throws: JSONError.self) { try JSONValue.parse(Data(text.utf8)) }
    }

    @Test func surrogatePairsDecode() throws {
        #expect(try JSONValue.parse(Data(#""\ud83d\ude00""#.utf8)).stringValue == "😀")
    }

    /// Written text is valid JSON: strings with quotes, backslashes and control characters round-trip, and
    /// NaN or infinity (which JSON cannot hold) are written as null.
    @Test func writtenTextEscapesStringsAndNonFiniteNumbers() throws {
        let tricky = "C:\\models\\\"odd\" name\n\ttab\u{01}é"
        let value = JSONValue.object(["path": .string(tricky), "key \"q\"": .number(1), "psnr": .number(.infinity),
                                      "nan": .number(.nan), "list": .array([.string("a\\b")])])
        for text in [value.description, value.formatted()] {
            let back = try JSONValue.parse(Data(text.utf8))
            #expect(back["path"]?.stringValue == tricky)
            #expect(back["key \"q\""]?.intValue == 1)
            #expect(back["psnr"]?.isNull == true && back["nan"]?.isNull == true)
            #expect(back["list"]?.arrayValue?.first?.stringValue == "a\\b")
        }
        #expect(JSONValue.string("\u{01}").description == #""\u0001""#)
    }
}
