// Clocks and sleeping.

import CShmSystem

/// The system's clocks, read without allocating and without locks (the vDSO answers).
public enum SystemClock {
    /// Nanoseconds since the Unix epoch: what a file records as a time of day.
    ///
    /// The C function is `clock_gettime(CLOCK_REALTIME)`.
    public static func wallNanoseconds() -> UInt64 { nanoseconds(of: CLOCK_REALTIME) }

    /// Nanoseconds since an arbitrary point, never going back: what deadlines and rates use.
    ///
    /// The C function is `clock_gettime(CLOCK_MONOTONIC)`.
    public static func monotonicNanoseconds() -> UInt64 { nanoseconds(of: CLOCK_MONOTONIC) }

    /// Nanoseconds of the monotonic clock at the clock tick's resolution (a few ms): cheap enough
    /// for a failing allocation to read, async-signal-safe.
    ///
    /// The C function is `clock_gettime(CLOCK_MONOTONIC_COARSE)`.
    public static func coarseMonotonicNanoseconds() -> UInt64 { nanoseconds(of: CLOCK_MONOTONIC_COARSE) }

    /// Nanoseconds of CPU time the calling thread has used: what a benchmark on a shared machine
    /// times, as it does not count the time the thread waited for a core.
    ///
    /// The C function is `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`.
    public static func threadCPUNanoseconds() -> UInt64 { nanoseconds(of: CLOCK_THREAD_CPUTIME_ID) }

    /// Sleeps for `nanoseconds`, sleeping on after a signal interrupts it.
    ///
    /// The C function is `nanosleep`.
    public static func sleep(nanoseconds: UInt64) {
        var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && shm_errno() == EINTR { request = remaining }
    }

    private static func nanoseconds(of clock: clockid_t) -> UInt64 {
        var now = timespec()
        clock_gettime(clock, &now)
        return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
    }
}

extension Duration {
    /// The duration in seconds, fractions included: what rates and ages are reckoned in.
    public var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }

    /// The duration in whole nanoseconds, 0 for a negative one: what a deadline on
    /// ``SystemClock/monotonicNanoseconds()`` adds.
    public var wholeNanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0, attoseconds >= 0 else { return 0 }
        return UInt64(seconds) &* 1_000_000_000 &+ UInt64(attoseconds / 1_000_000_000)
    }
}
