/// Errors raised by tensor operations when shapes or indices do not fit.
///
/// Operations validate their arguments and throw instead of trapping: mismatched shapes usually
/// come from a wrong config or a corrupt checkpoint, and the user needs to know which.
public struct TensorError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }

    static func shape(_ op: String, _ detail: String) -> TensorError {
        TensorError("\(op): shape mismatch: \(detail)")
    }
}
