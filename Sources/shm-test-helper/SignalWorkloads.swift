// The roles that prove the hot path fit for signal handlers and free of the heap: SIGALRM handlers
// allocating while the interrupted loop does, and a count of heap allocations over a million pairs.

import MallocInterposerSwift
import ShmAlloc
import ShmSystem
import ShmWorkloads
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// MARK: - signals

/// The cache the signal handler allocates in: published once before the timer starts.
let handlerCache = Atomic<UInt>(0)
/// The runs and failures of a role's SIGALRM handler (this one's, or the path cache's).
let handlerRuns = Atomic<Int>(0)
let handlerFailures = Atomic<Int>(0)

/// SIGALRM handler: allocates, fills, verifies and frees, interrupting the main loop at any point.
func allocatingSignalHandler(_ signal: Int32) {
    runSignalHandler(handlerCache) { address, run in
        Unmanaged<SharedCache>.fromOpaque(address)._withUnsafeGuaranteedRef { cache in
            var random = SplitMix64(seed: UInt64(run) &* 0x2545_F491_4F6C_DD1D)
            let size = mixedRequestSize(cache.geometry, &random)
            let tag = 0x5160_0000_0000_0000 | UInt64(run)
            do {
                let offset = try cache.allocate(size)
                fillPattern(cache.base + Int(offset.rawValue), count: size, tag: tag)
                if !patternMatches(cache.base + Int(offset.rawValue), count: size, tag: tag) {
                    handlerFailures.add(1, ordering: .relaxed)
                }
                try cache.free(offset)
            } catch {
                handlerFailures.add(1, ordering: .relaxed)
            }
        }
    }
}

/// The part every SIGALRM handler of the helper shares: `errno` kept, the object the handler works
/// on (published in `object` before the timer starts: nothing to do before), the run counted.
func runSignalHandler(_ object: borrowing Atomic<UInt>, _ body: (_ address: UnsafeRawPointer, _ run: Int) -> Void) {
    let savedErrno = errno
    defer { errno = savedErrno }
    guard let address = UnsafeRawPointer(bitPattern: object.load(ordering: .acquiring)) else { return }
    body(address, handlerRuns.add(1, ordering: .relaxed).newValue)
}

/// Allocates and frees in a loop for `seconds`, and on until both the loop and the handler have run
/// `minimumRuns` times (so a slow, e.g. sanitized, build does as much work as a fast one), while a
/// 50 µs interval timer raises SIGALRM, whose handler allocates and frees too. A deadlock shows as
/// a hang (the test's deadline kills it).
func signals(path: String, seconds: Double) {
    let cache = attach(path)
    handlerCache.store(UInt(bitPattern: Unmanaged.passRetained(cache).toOpaque()), ordering: .releasing)
    startSignalTimer(allocatingSignalHandler)

    let deadline = SystemClock.monotonicNanoseconds() &+ UInt64(seconds * 1e9)
    var random = SplitMix64(seed: 42)
    var loops = 0
    var mismatches = 0
    var live: [LiveAllocation] = []
    live.reserveCapacity(16)
    let minimumRuns = 1001
    while SystemClock.monotonicNanoseconds() < deadline || loops < minimumRuns
        || handlerRuns.load(ordering: .relaxed) < minimumRuns
    {
        let size = mixedRequestSize(cache.geometry, &random)
        let tag = UInt64(loops)
        do {
            let offset = try cache.allocate(size)
            fillPattern(cache.base + Int(offset.rawValue), count: size, tag: tag)
            live.append(LiveAllocation(offset: offset, size: size, tag: tag))
            if live.count == 16 {
                for allocation in live {
                    if !patternMatches(
                        cache.base + Int(allocation.offset.rawValue), count: allocation.size, tag: allocation.tag)
                    {
                        mismatches += 1
                    }
                    try cache.free(allocation.offset)
                }
                live.removeAll(keepingCapacity: true)
            }
        } catch {
            fail("main loop: \(error)")
        }
        loops += 1
    }
    stopSignalTimer()
    for allocation in live { try? cache.free(allocation.offset) }
    let failures = handlerFailures.load(ordering: .relaxed)
    FileDescriptor.standardOutput.writeLine(
        "loops=\(loops) handlerRuns=\(handlerRuns.load(ordering: .relaxed)) handlerFailures=\(failures) mismatches=\(mismatches)"
    )
    if failures != 0 || mismatches != 0 { exit(1) }
}

// MARK: - heap

/// Installs `handler` for SIGALRM and raises SIGALRM every 50 µs.
func startSignalTimer(_ handler: @convention(c) (Int32) -> Void) {
    // The counters' first use runs their lazy initialisers (`swift_once`, under a lock that any
    // other one-time initialisation of the interrupted thread may hold): done here, before any
    // handler can be the first.
    _ = handlerRuns.load(ordering: .relaxed) + handlerFailures.load(ordering: .relaxed)
    var action = sigaction()
    action.__sigaction_handler.sa_handler = handler
    action.sa_flags = SA_RESTART
    sigemptyset(&action.sa_mask)
    guard sigaction(SIGALRM, &action, nil) == 0 else { fail("sigaction: \(errno)") }
    var interval = itimerval(it_interval: timeval(tv_sec: 0, tv_usec: 50), it_value: timeval(tv_sec: 0, tv_usec: 50))
    guard setitimer(__itimer_which_t(ITIMER_REAL.rawValue), &interval, nil) == 0 else { fail("setitimer: \(errno)") }
}

/// Stops the timer of ``startSignalTimer(_:)``.
func stopSignalTimer() {
    var interval = itimerval()
    setitimer(__itimer_which_t(ITIMER_REAL.rawValue), &interval, nil)
}

/// Where the control allocation of `countHeapAllocations` escapes to.
let controlAllocation = Atomic<UInt>(0)

/// Counts heap allocations (Swift and libc) over `pairs` allocate/free pairs of mixed sizes.
func countHeapAllocations(path: String, pairs: Int) {
    let cache = attach(path)
    var random = SplitMix64(seed: 7)
    countHeapAllocations(pairs: pairs) {
        do {
            let offset = try cache.allocate(mixedRequestSize(cache.geometry, &random))
            try cache.free(offset)
            return true
        } catch {
            return false
        }
    }
}

/// Runs `pair` 1000 times as a warm-up (any one-time work, metadata or lazy globals, happens
/// there), then `pairs` times under the malloc interposer, and prints the heap allocations counted
/// and the pairs that failed. A control bracket around one `malloc` proves the counter counts.
func countHeapAllocations(pairs: Int, _ pair: () -> Bool) {
    for _ in 0..<1000 { _ = pair() }
    MallocInterposerSwift.initialize()
    MallocInterposerSwift.hook()
    // Published through an atomic so the optimiser cannot drop the malloc/free pair as unused.
    controlAllocation.store(UInt(bitPattern: malloc(64)), ordering: .relaxed)
    MallocInterposerSwift.unhook()
    free(UnsafeMutableRawPointer(bitPattern: controlAllocation.load(ordering: .relaxed)))
    let controlCount = MallocInterposerSwift.getStatistics().mallocCount

    var failures = 0
    MallocInterposerSwift.initialize()
    MallocInterposerSwift.hook()
    for _ in 0..<pairs where !pair() { failures &+= 1 }
    MallocInterposerSwift.unhook()
    let statistics = MallocInterposerSwift.getStatistics()
    FileDescriptor.standardOutput.writeLine(
        "pairs=\(pairs) mallocs=\(statistics.mallocCount) bytes=\(statistics.mallocBytesCount) "
            + "failures=\(failures) control=\(controlCount)")
}
