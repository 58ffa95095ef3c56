#if canImport(Glibc)
import Glibc

/// Runs C codec work on a private thread so that a fatal codec error can end that thread instead
/// of the process.
///
/// libpng and libjpeg report fatal errors through callbacks that must not return (the C idiom is
/// `longjmp`, which Swift cannot use). Our callbacks record the message and call `pthread_exit`;
/// glibc unwinds that thread up to its start, never touching the caller's frames. The codec's
/// state structs stay allocated and are destroyed by the caller after the join. Whatever Swift
/// values were live in the abandoned frames leak (a few small objects per failed decode).
final class CodecRun {
    /// The fatal error, when the codec raised one.
    var failure: String?
    /// The first warning the codec emitted.
    var warning: String?

    /// Runs `body` on a fresh thread and waits for it to end, normally or through `abandon()`.
    func run(_ body: @escaping () -> Void) -> Bool {
        let box = Unmanaged.passRetained(CodecRunBody(body))
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            Unmanaged<CodecRunBody>.fromOpaque(raw!).takeUnretainedValue().body()
            return nil
        }, box.toOpaque())
        guard rc == 0 else {
            box.release()
            failure = "cannot start a decoding thread (pthread_create returned \(rc))"
            return false
        }
        pthread_join(thread, nil)
        box.release()
        return failure == nil
    }

    /// Records `message` and ends the current (codec) thread; never returns.
    static func abandon(_ run: CodecRun, _ message: String) -> Never {
        if run.failure == nil { run.failure = message }
        pthread_exit(nil)
    }
}

private final class CodecRunBody {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}
#endif
