// Worker processes for ShmAllocTests: each subcommand is one role in a multi-process test.
// Results go to stdout as `key=value` words on one line; problems go to stderr and make the
// exit status non-zero, so the test can assert on both.
//
//   stress  PATH SECONDS THREADS WINDOW   allocate/fill/verify/free in THREADS threads
//   open    PATH MIN MAX CAPACITY START_NS  open a (new) path at wall-clock START_NS, print what it saw
//   signals PATH SECONDS                   allocate/free in a loop while SIGALRM handlers do the same
//                                          (for SECONDS, and at least 1001 runs of each)
//   heap    PATH PAIRS                     count heap allocations over PAIRS allocate/free pairs
//   crash   PATH POINT HIT SEED            churn until the HIT-th reach of crash point POINT kills it
//   fork    PATH                           allocate, fork, allocate in the child; print both pids

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import MallocInterposerSwift
@_spi(CrashTesting) import ShmAlloc
import ShmFormat
import Synchronization

// MARK: - Small utilities

/// Writes one line to a file descriptor without Foundation or stdio buffering.
func writeLine(_ text: String, to descriptor: Int32 = STDOUT_FILENO) {
    let line = text + "\n"
    _ = line.withCString { write(descriptor, $0, strlen($0)) }
}

/// How many problem lines a worker has printed; after 20 it only counts them.
let problemLines = Atomic<Int>(0)

/// Prints one problem line to stderr, unless 20 were printed already (the counts in the result
/// line tell the whole story).
func reportProblem(_ message: String) {
    if problemLines.add(1, ordering: .relaxed).newValue <= 20 { writeLine(message, to: STDERR_FILENO) }
}

/// Reports a problem and exits with status 1.
func fail(_ message: String) -> Never {
    writeLine("shm-test-helper: \(message)", to: STDERR_FILENO)
    exit(1)
}

func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
}

func wallClockNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
}

func attach(_ path: String) -> SharedCache {
    do { return try SharedCache(path: path, policy: .attach) } catch { fail("\(error)") }
}

/// A tiny xorshift generator: no allocation, usable inside a signal handler.
struct FastRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed | 1 }
    mutating func next() -> UInt64 {
        state ^= state &<< 13
        state ^= state &>> 7
        state ^= state &<< 17
        return state
    }
    mutating func below(_ bound: Int) -> Int { Int(truncatingIfNeeded: next() % UInt64(bound)) }
}

/// A request size spread over every size class: pick an order, then a size that needs exactly it.
func mixedRequestSize(_ geometry: Geometry, _ random: inout FastRandom) -> Int {
    let order = random.below(geometry.orderCount)
    let largest = geometry.nodeSize(ofOrder: order) &- AllocationHeader.size
    let smallest = order == 0 ? 1 : geometry.nodeSize(ofOrder: order &- 1) &- AllocationHeader.size &+ 1
    return smallest &+ random.below(largest &- smallest &+ 1)
}

// MARK: - The pattern every allocation carries

/// Fills `count` bytes with words derived from `tag` (which names process, thread and sequence),
/// so any overlap with another allocation shows up as a mismatch when either side verifies.
func fillPattern(_ start: UnsafeMutableRawPointer, count: Int, tag: UInt64) {
    var index = 0
    while index &+ 8 <= count {
        start.storeBytes(of: tag &+ UInt64(index), toByteOffset: index, as: UInt64.self)
        index &+= 8
    }
    while index < count {
        start.storeBytes(of: UInt8(truncatingIfNeeded: tag &>> UInt64((index & 7) &* 8)), toByteOffset: index, as: UInt8.self)
        index &+= 1
    }
}

/// True when the bytes still hold what ``fillPattern(_:count:tag:)`` wrote.
func patternMatches(_ start: UnsafeRawPointer, count: Int, tag: UInt64) -> Bool {
    var index = 0
    while index &+ 8 <= count {
        if start.load(fromByteOffset: index, as: UInt64.self) != tag &+ UInt64(index) { return false }
        index &+= 8
    }
    while index < count {
        if start.load(fromByteOffset: index, as: UInt8.self) != UInt8(truncatingIfNeeded: tag &>> UInt64((index & 7) &* 8)) {
            return false
        }
        index &+= 1
    }
    return true
}

/// One live allocation of a worker.
struct LiveAllocation {
    let offset: ShmOffset
    let size: Int
    let tag: UInt64
}

// MARK: - Threads

/// Runs `body(index)` on `count` POSIX threads and waits for all of them.
func runThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    final class Work: @unchecked Sendable {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }
    var threads: [pthread_t] = []
    for index in 0..<count {
        let work = Unmanaged.passRetained(Work { body(index) }).toOpaque()
        var thread = pthread_t()
        let status = pthread_create(&thread, nil, { raw in
            Unmanaged<Work>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, work)
        guard status == 0 else { fail("pthread_create: \(status)") }
        threads.append(thread)
    }
    for thread in threads { pthread_join(thread, nil) }
}

// MARK: - stress

/// Allocates mixed sizes, fills each allocation with its own pattern, and verifies it before
/// freeing; keeps up to `window` allocations live per thread. Prints the totals.
///
/// With `fillingFirst` (the optional sixth argument `fill-first`), each thread first allocates
/// without freeing and beyond `window` until the cache refuses it once, and only then runs the
/// mixed loop until the deadline: every thread meets an out-of-space however fast the machine and
/// however late the other workers start. That first phase needs no deadline of its own, since a
/// thread that only allocates fills the cache (or gets what others free) within capacity / `min
/// size` allocations.
func stress(path: String, seconds: Double, threadCount: Int, window: Int, fillingFirst: Bool) {
    let cache = attach(path)
    let deadline = monotonicNanoseconds() &+ UInt64(seconds * 1e9)
    let allocations = Atomic<Int>(0), outOfSpace = Atomic<Int>(0), mismatches = Atomic<Int>(0), errors = Atomic<Int>(0)
    let pid = UInt64(UInt32(bitPattern: getpid()))

    runThreads(threadCount) { thread in
        var random = FastRandom(seed: pid &* 0x9E37_79B9 &+ UInt64(thread) &* 0x7F4A_7C15 &+ monotonicNanoseconds())
        var live: [LiveAllocation] = []
        live.reserveCapacity(window)
        var sequence: UInt64 = 0
        var done = 0, full = 0
        var filling = fillingFirst

        func release(_ allocation: LiveAllocation) {
            if !patternMatches(cache.base + Int(allocation.offset.rawValue), count: allocation.size, tag: allocation.tag) {
                mismatches.add(1, ordering: .relaxed)
                reportProblem("pattern mismatch at \(allocation.offset), size \(allocation.size)")
            }
            do { try cache.free(allocation.offset) } catch {
                errors.add(1, ordering: .relaxed)
                reportProblem("free: \(error)")
            }
        }

        while true {
            if !filling, done & 255 == 0, monotonicNanoseconds() >= deadline { break }
            if filling || live.count < window && (live.isEmpty || random.below(2) == 0) {
                let size = mixedRequestSize(cache.geometry, &random)
                do throws(AllocationError) {
                    let offset = try cache.allocate(size)
                    sequence &+= 1
                    // pid in the top half, thread and sequence below: unique across the whole run.
                    let tag = pid &<< 32 | UInt64(thread) &<< 24 | sequence & 0xFF_FFFF
                    fillPattern(cache.base + Int(offset.rawValue), count: size, tag: tag)
                    live.append(LiveAllocation(offset: offset, size: size, tag: tag))
                    done &+= 1
                } catch .outOfSpace {
                    full &+= 1
                    filling = false
                    if !live.isEmpty { release(live.removeLast()) }
                } catch {
                    errors.add(1, ordering: .relaxed)
                    reportProblem("allocate(\(size)): \(error)")
                }
            } else {
                let index = random.below(live.count)
                live.swapAt(index, live.count - 1)
                release(live.removeLast())
            }
        }
        for allocation in live { release(allocation) }
        allocations.add(done, ordering: .relaxed)
        outOfSpace.add(full, ordering: .relaxed)
    }
    writeLine("allocations=\(allocations.load(ordering: .relaxed)) outOfSpace=\(outOfSpace.load(ordering: .relaxed)) "
        + "mismatches=\(mismatches.load(ordering: .relaxed)) errors=\(errors.load(ordering: .relaxed))")
    if mismatches.load(ordering: .relaxed) != 0 || errors.load(ordering: .relaxed) != 0 { exit(1) }
}

// MARK: - open

/// Waits for wall-clock `startNanoseconds` (the start barrier shared by all racers), opens the
/// path, and prints what it found.
func openAtBarrier(path: String, geometry: Geometry, startNanoseconds: UInt64) {
    while wallClockNanoseconds() < startNanoseconds {}   // spin: a sleep would spread the start
    do {
        let cache = try SharedCache(path: path, policy: .createIfNeeded(geometry))
        let header = cache.header
        writeLine("pid=\(getpid()) creator=\(header.creatorPID) createdAt=\(header.createdAtNanoseconds) "
            + "geometry=\(header.geometry.minSize),\(header.geometry.maxSize),\(header.geometry.blockCount)")
    } catch {
        fail("\(error)")
    }
}

// MARK: - signals

/// The cache the signal handler allocates in: published once before the timer starts.
let handlerCache = Atomic<UInt>(0)
let handlerRuns = Atomic<Int>(0)
let handlerFailures = Atomic<Int>(0)

/// SIGALRM handler: allocates, fills, verifies and frees, interrupting the main loop at any point.
func allocatingSignalHandler(_ signal: Int32) {
    let savedErrno = errno
    defer { errno = savedErrno }
    guard let address = UnsafeRawPointer(bitPattern: handlerCache.load(ordering: .acquiring)) else { return }
    Unmanaged<SharedCache>.fromOpaque(address)._withUnsafeGuaranteedRef { cache in
        let run = handlerRuns.add(1, ordering: .relaxed).newValue
        var random = FastRandom(seed: UInt64(run) &* 0x2545_F491_4F6C_DD1D)
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

/// Allocates and frees in a loop for `seconds`, and on until both the loop and the handler have run
/// `minimumRuns` times (so a slow, e.g. sanitized, build does as much work as a fast one), while a
/// 50 µs interval timer raises SIGALRM, whose handler allocates and frees too. A deadlock shows as
/// a hang (the test's deadline kills it).
func signals(path: String, seconds: Double) {
    let cache = attach(path)
    handlerCache.store(UInt(bitPattern: Unmanaged.passRetained(cache).toOpaque()), ordering: .releasing)
    var action = sigaction()
    action.__sigaction_handler.sa_handler = allocatingSignalHandler
    action.sa_flags = SA_RESTART
    sigemptyset(&action.sa_mask)
    guard sigaction(SIGALRM, &action, nil) == 0 else { fail("sigaction: \(errno)") }
    var interval = itimerval(it_interval: timeval(tv_sec: 0, tv_usec: 50), it_value: timeval(tv_sec: 0, tv_usec: 50))
    guard setitimer(__itimer_which_t(ITIMER_REAL.rawValue), &interval, nil) == 0 else { fail("setitimer: \(errno)") }

    let deadline = monotonicNanoseconds() &+ UInt64(seconds * 1e9)
    var random = FastRandom(seed: 42)
    var loops = 0, mismatches = 0
    var live: [LiveAllocation] = []
    live.reserveCapacity(16)
    let minimumRuns = 1001
    while monotonicNanoseconds() < deadline || loops < minimumRuns || handlerRuns.load(ordering: .relaxed) < minimumRuns {
        let size = mixedRequestSize(cache.geometry, &random)
        let tag = UInt64(loops)
        do {
            let offset = try cache.allocate(size)
            fillPattern(cache.base + Int(offset.rawValue), count: size, tag: tag)
            live.append(LiveAllocation(offset: offset, size: size, tag: tag))
            if live.count == 16 {
                for allocation in live {
                    if !patternMatches(cache.base + Int(allocation.offset.rawValue), count: allocation.size, tag: allocation.tag) {
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
    interval = itimerval()
    setitimer(__itimer_which_t(ITIMER_REAL.rawValue), &interval, nil)
    for allocation in live { try? cache.free(allocation.offset) }
    let failures = handlerFailures.load(ordering: .relaxed)
    writeLine("loops=\(loops) handlerRuns=\(handlerRuns.load(ordering: .relaxed)) handlerFailures=\(failures) mismatches=\(mismatches)")
    if failures != 0 || mismatches != 0 { exit(1) }
}

// MARK: - heap

/// Where the control allocation of `countHeapAllocations` escapes to.
let controlAllocation = Atomic<UInt>(0)

/// Counts heap allocations (Swift and libc) over `pairs` allocate/free pairs of mixed sizes.
/// A control bracket around one `malloc` proves the counter counts.
func countHeapAllocations(path: String, pairs: Int) {
    let cache = attach(path)
    var random = FastRandom(seed: 7)
    // Warm-up: any one-time work (metadata, lazy globals) happens here, outside the count.
    for _ in 0..<1000 {
        if let offset = try? cache.allocate(mixedRequestSize(cache.geometry, &random)) { try? cache.free(offset) }
    }
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
    for _ in 0..<pairs {
        do {
            let offset = try cache.allocate(mixedRequestSize(cache.geometry, &random))
            try cache.free(offset)
        } catch {
            failures &+= 1
        }
    }
    MallocInterposerSwift.unhook()
    let statistics = MallocInterposerSwift.getStatistics()
    writeLine("pairs=\(pairs) mallocs=\(statistics.mallocCount) bytes=\(statistics.mallocBytesCount) "
        + "failures=\(failures) control=\(controlCount)")
}

// MARK: - main

/// Swift Testing's threads block most signals and spawned children inherit the mask; a helper
/// must see SIGALRM and SIGTERM whoever started it.
func unblockAllSignals() {
    var none = sigset_t()
    sigemptyset(&none)
    pthread_sigmask(SIG_SETMASK, &none, nil)
}

let arguments = CommandLine.arguments
// The test commands want every signal unblocked at once; the soak's processes start with their
// stop signals blocked and unblock them only once StopSignals has installed its handlers (a
// SIGTERM arriving in between would kill a writer that is still starting).
if !["soak", "soak-writer"].contains(arguments.dropFirst().first) { unblockAllSignals() }
func argument(_ index: Int) -> String {
    guard index < arguments.count else { fail("missing argument \(index); usage in Sources/shm-test-helper/main.swift") }
    return arguments[index]
}
func integer(_ index: Int) -> Int {
    guard let value = Int(argument(index)) else { fail("argument \(index) is not an integer: \(argument(index))") }
    return value
}
func seconds(_ index: Int) -> Double {
    guard let value = Double(argument(index)) else { fail("argument \(index) is not a number: \(argument(index))") }
    return value
}

switch argument(1) {
case "stress":
    stress(path: argument(2), seconds: seconds(3), threadCount: integer(4), window: integer(5),
           fillingFirst: arguments.count > 6 && argument(6) == "fill-first")
case "open":
    do {
        let geometry = try Geometry(minSize: integer(3), maxSize: integer(4), capacity: integer(5))
        openAtBarrier(path: argument(2), geometry: geometry, startNanoseconds: UInt64(integer(6)))
    } catch {
        fail("\(error)")
    }
case "signals":
    signals(path: argument(2), seconds: seconds(3))
case "heap":
    countHeapAllocations(path: argument(2), pairs: integer(3))
case "fork":
    forkAndAllocate(path: argument(2))
case "soak":
    Soak.main(Array(arguments.dropFirst(2)))
case "soak-writer":
    SoakWriter.main(Array(arguments.dropFirst(2)))
case "crash":
    #if SHM_CRASH_POINTS
    guard let point = CrashPoint(name: argument(3)) else { fail("unknown crash point \(argument(3))") }
    crashWorkload(path: argument(2), point: point, hit: integer(4), seed: UInt64(integer(5)))
    #else
    fail("crash points exist only in a debug build of the helper")
    #endif
case let command:
    fail("unknown command \(command)")
}
