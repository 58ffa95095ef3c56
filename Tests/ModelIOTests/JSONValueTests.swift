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
}
