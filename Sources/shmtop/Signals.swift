// Ctrl-C and SIGTERM for the long-running commands: a flag the main loops poll.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import ShmInspect
import Synchronization

/// Set by the SIGINT / SIGTERM handler; polled by `load`, `demo` and the workers. An atomic store
/// is all the handler does, which is async-signal-safe.
let stopRequested = Atomic<Bool>(false)

enum StopSignals {
    /// Makes SIGINT and SIGTERM set ``stopRequested`` instead of killing the process, then unblocks
    /// them (a signal pending since the parent spawned us with them blocked reaches the handler).
    static func install() {
        SignalRouting.install(signals, handler: { _ in stopRequested.store(true, ordering: .relaxed) })
    }

    /// The signals that request a stop.
    static let signals = [SIGINT, SIGTERM]

    /// True once SIGINT or SIGTERM arrived.
    static var requested: Bool { stopRequested.load(ordering: .relaxed) }

    /// Sleeps `seconds` or until a stop is requested, whichever is first.
    static func sleep(seconds: Double) {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while !requested, ContinuousClock.now < deadline {
            var pause = timespec(tv_sec: 0, tv_nsec: 20_000_000)
            nanosleep(&pause, nil)
        }
    }
}
