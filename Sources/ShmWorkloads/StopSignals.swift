// Ctrl-C and SIGTERM for the long-running commands and workers: a flag the main loops poll.

import ShmSystem
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The signal (SIGINT or SIGTERM) that asked to stop, 0 before one came. Set by the handler;
/// polled by `load`, `demo` and the workers. An atomic store is all the handler does, which is
/// async-signal-safe.
private let stopSignal = Atomic<Int32>(0)

/// Ctrl-C and SIGTERM as a request to stop that the long-running commands poll.
public enum StopSignals {
    /// Makes SIGINT and SIGTERM set ``stopSignal`` instead of killing the process, then unblocks
    /// them (a signal pending since the parent spawned us with them blocked reaches the handler).
    public static func install() {
        SignalRouting.install(signals, handler: { signal in stopSignal.store(signal, ordering: .relaxed) })
    }

    /// The signals that request a stop.
    public static let signals = [SIGINT, SIGTERM]

    /// True once SIGINT or SIGTERM arrived.
    public static var requested: Bool { stopSignal.load(ordering: .relaxed) != 0 }

    /// The signal that requested the stop, 0 while none has.
    public static var signal: Int32 { stopSignal.load(ordering: .relaxed) }

    /// Sleeps `seconds` or until a stop is requested, whichever is first.
    public static func sleep(seconds: Double) {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while !requested, ContinuousClock.now < deadline {
            var pause = timespec(tv_sec: 0, tv_nsec: 20_000_000)
            nanosleep(&pause, nil)
        }
    }
}
