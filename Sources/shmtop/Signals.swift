// Ctrl-C and SIGTERM for the long-running commands: a flag the main loops poll.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import ArgumentParser
import ShmInspect
import Synchronization

/// The signal (SIGINT or SIGTERM) that asked to stop, 0 before one came. Set by the handler;
/// polled by `load`, `demo` and the workers. An atomic store is all the handler does, which is
/// async-signal-safe.
let stopSignal = Atomic<Int32>(0)

/// Ctrl-C and SIGTERM as a request to stop that the long-running commands poll.
enum StopSignals {
    /// Makes SIGINT and SIGTERM set ``stopSignal`` instead of killing the process, then unblocks
    /// them (a signal pending since the parent spawned us with them blocked reaches the handler).
    static func install() {
        SignalRouting.install(signals, handler: { signal in stopSignal.store(signal, ordering: .relaxed) })
    }

    /// The signals that request a stop.
    static let signals = [SIGINT, SIGTERM]

    /// True once SIGINT or SIGTERM arrived.
    static var requested: Bool { stopSignal.load(ordering: .relaxed) != 0 }

    /// Ends the command with 128 + the signal, as a shell reports a process the signal killed
    /// (what `watch` and `demo` exit with too), when a stop was requested; returns otherwise.
    static func exitIfRequested() throws {
        let signal = stopSignal.load(ordering: .relaxed)
        if signal != 0 { throw ExitCode(128 + signal) }
    }

    /// Sleeps `seconds` or until a stop is requested, whichever is first.
    static func sleep(seconds: Double) {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while !requested, ContinuousClock.now < deadline {
            var pause = timespec(tv_sec: 0, tv_nsec: 20_000_000)
            nanosleep(&pause, nil)
        }
    }
}
