// The calling process's identity: its pid, cached so the hot path never makes a system call, and
// its start time, which names it for good in a cache's owner table.

import CShmSystem
import Synchronization

#if !hasFeature(Embedded)  // the C library compiles the core's files as one module
    import ShmFormat
    import ShmSystem
#endif

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

    /// The state and start time of process `pid`, read from `/proc/<pid>/stat`; `nil` when there
    /// is no such process (or `/proc` is not mounted). Allocates nothing and makes only
    /// async-signal-safe calls, so a child of `fork` may register from its first allocation,
    /// wherever that happens.
    ///
    /// The C functions `open`, `read` and `close`, each retried on `EINTR`.
    static func status(ofProcess pid: Int32) -> ProcessStatLine? {
        guard pid > 0 else { return nil }
        return withUnsafeTemporaryAllocation(byteCount: 1024, alignment: 8) { buffer in
            // "/proc/<pid>/stat" spelled into the buffer by hand: no String, no heap.
            var length = 0
            func append(_ byte: UInt8) {
                buffer[length] = byte
                length += 1
            }
            func append(_ text: StaticString) {
                for byte in UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount) { append(byte) }
            }
            append("/proc/")
            var divisor: Int32 = 1_000_000_000
            var started = false
            var remaining = pid
            while divisor > 0 {
                let digit = remaining / divisor
                if digit != 0 || started || divisor == 1 {
                    append(UInt8(ascii: "0") + UInt8(digit))
                    started = true
                }
                remaining %= divisor
                divisor /= 10
            }
            append("/stat")
            append(0)
            // Plain C calls rather than ShmSystem's wrappers: this runs inside whatever allocation
            // comes first, a signal handler's included, and the wrappers' generic code would need
            // runtime metadata (which takes a lock) in an unoptimised build.
            let descriptor = buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: length) { path in
                var descriptor: Int32
                repeat {
                    descriptor = shm_open_file(path, O_RDONLY | O_CLOEXEC, 0)
                } while descriptor < 0 && shm_errno() == EINTR
                return descriptor
            }
            guard descriptor >= 0 else { return nil }
            defer { close(descriptor) }
            // `/proc` files are generated per read call, so one read may return less than all.
            var filled = 0
            while filled < buffer.count {
                let count = read(descriptor, buffer.baseAddress! + filled, buffer.count - filled)
                if count < 0, shm_errno() == EINTR { continue }
                if count <= 0 { break }
                filled += count
            }
            return ProcessStatLine(parsing: UnsafeRawBufferPointer(rebasing: buffer[..<filled]))
        }
    }
}
