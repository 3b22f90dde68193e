// Real threads for workloads that must run in parallel: the benchmarks' and the test helper's.

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Runs `body(0)`, …, `body(count - 1)` each on its own POSIX thread, all at once, and returns
/// their results in that order. Real threads rather than a task pool: each has its own stack and
/// keeps its core for the whole body, as an allocator's callers do.
public func onThreads<Result>(_ count: Int, _ body: @escaping (Int) -> Result) -> [Result] {
    let slots = (0..<count).map { _ in ThreadResult<Result>() }
    let threads = slots.enumerated().map { index, slot in
        let work = Unmanaged.passRetained(ThreadWork { slot.value = body(index) }).toOpaque()
        var thread = pthread_t()
        let status = pthread_create(
            &thread, nil,
            { context in
                Unmanaged<ThreadWork>.fromOpaque(context!).takeRetainedValue().run()
                return nil
            }, work)
        precondition(status == 0, "pthread_create failed (\(status))")
        return thread
    }
    for thread in threads { pthread_join(thread, nil) }
    return slots.map { $0.value! }
}

/// One thread's work, passed through `pthread_create`'s context pointer (a C function cannot
/// capture, so the closure travels as an object).
private final class ThreadWork {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

/// One thread's result; read only after `pthread_join`, which orders the read after the write.
private final class ThreadResult<Value> {
    var value: Value?
}
