import Foundation

/// Every failure of the tokenizer and chat-template code: a malformed or unsupported
/// `tokenizer.json`, a missing file, a template the Jinja subset cannot run.
/// The message names the component or construct so that the user knows what to look at.
public struct TokenizerError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "tokenizer: " + message }
}

/// Small readers over the JSON tree that throw with the field's path instead of trapping.
extension JSONValue {
    func tokString(_ key: String, in context: String) throws -> String {
        guard let s = self[key]?.stringValue else {
            throw TokenizerError("\(context): missing or non-string field '\(key)'")
        }
        return s
    }

    func tokBool(_ key: String, default value: Bool) -> Bool {
        self[key]?.boolValue ?? value
    }

    /// `null`, a missing key and a present value are three different things in tokenizer.json;
    /// this treats the first two alike.
    func tokPresent(_ key: String) -> JSONValue? {
        guard let v = self[key], !v.isNull else { return nil }
        return v
    }
}
