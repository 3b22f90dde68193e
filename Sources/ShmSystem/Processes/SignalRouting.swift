// Signals that a long-running command turns into a flag its loop polls, instead of dying of them.

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Installs handlers for the signals a command catches, and only then unblocks them.
public enum SignalRouting {
    /// Makes `signals` call `handler` and unblocks them with `alsoUnblocking` (a parent such as a
    /// test runner or `load` may have left them blocked). Unblocking comes last: a signal that
    /// arrived while they were blocked is still pending and must reach `handler`, not the default
    /// action. Without `SA_RESTART`, a blocking call such as a key read returns at once when one
    /// arrives.
    ///
    /// `handler` runs in signal context: it should only store to an atomic.
    ///
    /// The C functions `sigaction` and `pthread_sigmask`.
    public static func install(
        _ signals: [Int32], handler: @convention(c) (Int32) -> Void, alsoUnblocking: [Int32] = []
    ) {
        for signal in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = handler
            sigemptyset(&action.sa_mask)
            action.sa_flags = 0
            sigaction(signal, &action, nil)
        }
        var unblocked = sigset_t()
        sigemptyset(&unblocked)
        for signal in signals + alsoUnblocking { sigaddset(&unblocked, signal) }
        pthread_sigmask(SIG_UNBLOCK, &unblocked, nil)
    }
}
