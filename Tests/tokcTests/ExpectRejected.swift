import Testing

/// Runs a command's option check `body` for `arguments`: it must throw an `E` whose message (`message`)
/// contains `expected`; passing, or throwing anything else, fails the test. One place for the
/// "bad options stop before any work" tests of every command.
func expectRejected<E: Error>(_ arguments: [String], _ expected: String, as _: E.Type, message: (E) -> String,
                              _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("\(arguments) passed")
    } catch let e as E {
        #expect(message(e).contains(expected), "\(message(e))")
    } catch {
        Issue.record("\(arguments) threw \(error), not \(E.self)")
    }
}
