// The calling process's pid, cached so the hot path never makes a system call.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

/// The pid stamped into allocation headers. `getpid()` is a real system call here (about 140 ns,
/// no pid cache in this glibc), so it is read once and refreshed in every child of `fork` by a
/// `pthread_atfork` handler. Relaxed ordering suffices: each process writes it before it allocates.
private let cachedPID = Atomic<Int32>(0)

/// Registers the `fork` handler once per process; evaluated by `ProcessIdentity.prepare()`.
private let forkHandlerRegistration: Void = {
    cachedPID.store(getpid(), ordering: .relaxed)
    pthread_atfork(nil, nil) { cachedPID.store(getpid(), ordering: .relaxed) }
}()

/// The identity of the calling process as the allocator records it.
enum ProcessIdentity {
    /// Caches the pid and installs the `fork` handler. Call before the first allocation.
    static func prepare() { forkHandlerRegistration }

    /// The calling process's pid, without a system call.
    @inline(__always) static var pid: Int32 { cachedPID.load(ordering: .relaxed) }
}
