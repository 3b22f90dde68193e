// The path cache's roles (Tests/ShmAllocTests/PathCacheProcessTests.swift): writers that insert
// overlapping paths and check the others' completed inserts, a crash workload killed at a crash
// point, inserts from a signal handler, and a process whose searches and inserts are counted.

@_spi(CrashTesting) import ShmAlloc
import ShmPathCache
import ShmSystem
import ShmWorkloads
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

func attachPaths(_ path: String) -> PathCache {
    do { return try PathCache(cache: attach(path)) } catch { fail("path cache: \(error)") }
}

func openJournal(_ path: String) -> ProgressJournal {
    do { return try ProgressJournal(path: path, creating: false) } catch { fail("journal \(path): \(error)") }
}

// MARK: - paths-writer

/// `paths-writer PATH JOURNAL FIRST THREADS WRITERS OPERATIONS`: threads `FIRST ..< FIRST+THREADS`
/// of `WRITERS` insert their operations' paths (forever when OPERATIONS is 0), recording each
/// completed insert in the journal word of their writer number; every fourth operation, a thread
/// picks a writer, reads how many inserts it completed and searches one of them, which must be
/// found with its flags.
func pathWriters(path: String, journal: String, first: Int, threads: Int, writers: Int, operations: Int) -> Never {
    let paths = attachPaths(path)
    let journal = openJournal(journal)
    let results = onThreads(threads) { thread in
        let writer = first + thread
        var random = SplitMix64(seed: UInt64(writer) &+ 77)
        var checks = 0
        var misses = 0
        var errors = 0
        var operation = 0
        while operations == 0 || operation < operations {
            let seed = PathCacheWorkload.seed(writer: writer, operation: operation)
            let bytes = PathCacheWorkload.path(seed: seed)
            do {
                try paths.insert(bytes, flags: PathFlags(rawValue: PathCacheWorkload.flags(path: bytes)))
            } catch {
                errors += 1
                reportProblem("writer \(writer): insert \(operation): \(error)")
            }
            operation += 1
            journal[writer] = UInt64(operation)
            guard operation % 4 == 0 else { continue }
            let other = random.below(writers)
            let completed = Int(journal[other])
            guard completed > 0 else { continue }
            let checked = PathCacheWorkload.seed(writer: other, operation: random.below(completed))
            checks += 1
            let checkedBytes = PathCacheWorkload.path(seed: checked)
            let found = try? paths.search(checkedBytes)
            if found != PathFlags(rawValue: PathCacheWorkload.flags(path: checkedBytes)) {
                misses += 1
                reportProblem(
                    "writer \(writer): seed \(checked) of writer \(other) found as \(String(describing: found))")
            }
        }
        return (checks, misses, errors)
    }
    let checks = results.reduce(0) { $0 + $1.0 }
    let misses = results.reduce(0) { $0 + $1.1 }
    let errors = results.reduce(0) { $0 + $1.2 }
    FileDescriptor.standardOutput.writeLine(
        "inserts=\(threads * operations) checks=\(checks) misses=\(misses) errors=\(errors)")
    exit(misses == 0 && errors == 0 ? 0 : 1)
}

// MARK: - paths-crash

#if SHM_CRASH_POINTS
    /// The bytes of the insert in progress, for the callback that races it (pathDuplicateFreed).
    nonisolated(unsafe) var insertInProgress: (bytes: [UInt8], flags: PathFlags) = ([], PathFlags(rawValue: 0))

    /// `paths-crash PATH POINT HIT SEED JOURNAL`: runs `PathCacheWorkload.CrashOperations(seed:)`,
    /// each insert followed by a search of its path, counting completed operations in journal word
    /// 0, until the HIT-th reach of POINT kills it.
    /// For pathDuplicateFreed, which only a lost race reaches, the HIT-th entry write first lets
    /// another insert of the same path (same flags) win the slot, then arms the point.
    func pathCrashWorkload(path: String, point: CrashPoint, hit: Int, seed: UInt64, journal: String) -> Never {
        let paths = attachPaths(path)
        let journal = openJournal(journal)
        if point == .pathDuplicateFreed {
            CrashPoints.arm(.pathEntryWritten, hit: hit) {
                try! paths.insert(insertInProgress.bytes, flags: insertInProgress.flags)
                CrashPoints.arm(.pathDuplicateFreed)
            }
        } else {
            CrashPoints.arm(point, hit: hit)
        }
        var operations = PathCacheWorkload.CrashOperations(seed: seed)
        for completed in 1...200_000 {
            let (pathSeed, flags) = operations.next()
            insertInProgress = (PathCacheWorkload.path(seed: pathSeed), PathFlags(rawValue: flags))
            do {
                try paths.insert(insertInProgress.bytes, flags: insertInProgress.flags)
                guard try paths.search(insertInProgress.bytes) != nil else { fail("insert \(completed - 1) not found") }
            } catch {
                fail("operation \(completed - 1): \(error)")
            }
            journal[0] = UInt64(completed)
        }
        fail("crash point \(point) was not reached \(hit) times")
    }
#endif

// MARK: - paths-signals

/// The path cache the handler inserts into, published before the timer starts, and the handler's
/// buffer for its paths (preallocated: a handler must not touch the heap).
let pathHandlerCache = Atomic<UInt>(0)
nonisolated(unsafe) let handlerPathBuffer = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 8)

/// Writes `/signals/<role>/<number>` into `buffer`, without the heap, and returns its bytes.
func signalPath(_ role: UInt8, _ number: Int, into buffer: UnsafeMutableRawPointer) -> UnsafeRawBufferPointer {
    let prefix: StaticString = "/signals/"
    buffer.copyMemory(from: prefix.utf8Start, byteCount: prefix.utf8CodeUnitCount)
    var length = prefix.utf8CodeUnitCount
    buffer.storeBytes(of: role, toByteOffset: length, as: UInt8.self)
    buffer.storeBytes(of: UInt8(ascii: "/"), toByteOffset: length + 1, as: UInt8.self)
    length += 2
    var digits = 1
    var scale = 1
    while number / scale >= 10 {
        scale *= 10
        digits += 1
    }
    while scale > 0 {
        buffer.storeBytes(of: UInt8(ascii: "0") + UInt8(number / scale % 10), toByteOffset: length, as: UInt8.self)
        length += 1
        scale /= 10
    }
    return UnsafeRawBufferPointer(start: buffer, count: length)
}

/// The flags of the signal workloads' path number `number`: every bit pattern, prefix included.
func signalFlags(_ number: Int) -> PathFlags { PathFlags(rawValue: UInt8(truncatingIfNeeded: number)) }

/// Inserts path `number` of `role`, then searches it and a path below it, which only a prefix
/// answers (so the ancestor probes run too). Returns whether both answers were right. Concrete
/// code, no heap: the SIGALRM handler runs it.
func insertAndCheckSignalPath(_ paths: PathCache, _ role: UInt8, _ number: Int, buffer: UnsafeMutableRawPointer) -> Bool
{
    let bytes = signalPath(role, number, into: buffer)
    let flags = signalFlags(number)
    buffer.storeBytes(of: UInt8(ascii: "/"), toByteOffset: bytes.count, as: UInt8.self)
    buffer.storeBytes(of: UInt8(ascii: "x"), toByteOffset: bytes.count + 1, as: UInt8.self)
    let below = UnsafeRawBufferPointer(start: buffer, count: bytes.count + 2)
    do {
        try paths.insert(bytes, flags: flags)
        return try paths.search(bytes) == flags && paths.search(below) == (flags.contains(.prefix) ? flags : nil)
    } catch {
        return false
    }
}

/// The distinct paths of each role of `paths-signals`; past them a role updates its paths again.
/// Bounded, so a starved main loop (a sanitized build under load once ran the handler 69 218
/// times) cannot fill the test's cache: 2 × 20 000 entries take about 2.6 MiB of its 4 MiB.
let signalPathsPerRole = 20_000

/// SIGALRM handler: inserts the next handler path and checks it.
func pathInsertingSignalHandler(_ signal: Int32) {
    runSignalHandler(pathHandlerCache) { address, run in
        Unmanaged<PathCache>.fromOpaque(address)._withUnsafeGuaranteedRef { paths in
            let number = (run &- 1) % signalPathsPerRole &+ 1
            if !insertAndCheckSignalPath(paths, UInt8(ascii: "h"), number, buffer: handlerPathBuffer) {
                handlerFailures.add(1, ordering: .relaxed)
            }
        }
    }
}

/// `paths-signals PATH`: inserts and searches paths in a loop while a 50 µs SIGALRM handler does
/// the same, until both ran at least 1001 times; then every path of either must be found.
func pathSignals(path: String) -> Never {
    let paths = attachPaths(path)
    pathHandlerCache.store(UInt(bitPattern: Unmanaged.passRetained(paths).toOpaque()), ordering: .releasing)
    startSignalTimer(pathInsertingSignalHandler)
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 8)
    // Each role goes round its paths again (updating them) past `signalPathsPerRole`: a release
    // build loops ~100 times per handler run, a starved sanitized one the other way round.
    var loops = 0
    var failures = 0
    while loops < 1001 || handlerRuns.load(ordering: .relaxed) < 1001 {
        loops += 1
        if !insertAndCheckSignalPath(paths, UInt8(ascii: "m"), (loops - 1) % signalPathsPerRole + 1, buffer: buffer) {
            failures += 1
        }
    }
    stopSignalTimer()
    let runs = handlerRuns.load(ordering: .relaxed)
    var missing = 0
    let rolePaths = [
        (UInt8(ascii: "m"), min(loops, signalPathsPerRole)), (UInt8(ascii: "h"), min(runs, signalPathsPerRole)),
    ]
    for (role, count) in rolePaths {
        for number in 1...count where (try? paths.search(signalPath(role, number, into: buffer))) != signalFlags(number)
        {
            missing += 1
        }
    }
    let handlerFailed = handlerFailures.load(ordering: .relaxed)
    FileDescriptor.standardOutput.writeLine(
        "loops=\(loops) paths=\(rolePaths[0].1 + rolePaths[1].1) handlerRuns=\(runs) handlerFailures=\(handlerFailed) "
            + "failures=\(failures) missing=\(missing)")
    exit(handlerFailed == 0 && failures == 0 && missing == 0 ? 0 : 1)
}

// MARK: - paths-heap

/// `paths-heap PATH PAIRS`: counts heap allocations over PAIRS inserts (of 20 000 distinct paths,
/// over and over) each followed by two searches, one answered by a prefix (see
/// `insertAndCheckSignalPath`).
func countPathHeapAllocations(path: String, pairs: Int) {
    let paths = attachPaths(path)
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 8)
    var number = 0
    countHeapAllocations(pairs: pairs) {
        number = number % 20_000 + 1
        return insertAndCheckSignalPath(paths, UInt8(ascii: "q"), number, buffer: buffer)
    }
}

// MARK: - paths-count

/// `paths-count PATH INSERTS SEARCHES HITS`: inserts `/counted/0` (a prefix entry) …
/// `/counted/<INSERTS-1>`, then makes SEARCHES searches of which the first HITS must be answered
/// (alternately by an entry and by the prefix: `/counted/0/below/<n>`) and the rest must not
/// (`/missing/<n>`). A count of 0 inserts searches what an earlier run inserted. Prints `pid=…`; a
/// wrong answer fails it.
func countedPaths(path: String, inserts: Int, searches: Int, hits: Int) -> Never {
    let paths = attachPaths(path)
    do {
        for number in 0..<inserts {
            try paths.insert("/counted/\(number)", flags: number == 0 ? PathFlags.allow.union(.prefix) : .allow)
        }
        for number in 0..<searches {
            let searched =
                number >= hits
                ? "/missing/\(number)"
                : number % 2 == 0 ? "/counted/\(number / 2)" : "/counted/0/below/\(number)"
            guard try (paths.search(searched) != nil) == (number < hits) else { fail("\(searched): wrong answer") }
        }
    } catch {
        fail("\(error)")
    }
    FileDescriptor.standardOutput.writeLine("pid=\(getpid())")
    exit(0)
}
