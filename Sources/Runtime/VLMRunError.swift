import Foundation

/// Why a single VLM run cannot go ahead: bad user input caught before the model runs, with the
/// file, option or figure that is wrong (the CLI prints it and exits 1).
public struct VLMRunError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
