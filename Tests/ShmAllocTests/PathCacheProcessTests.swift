// The path cache across real processes: writers × threads sharing paths, inserts from signal
// handlers, writers killed at every crash point and at random. Every check is of what the writers
// journaled as completed, so no assertion depends on timing.

import Foundation
@_spi(CrashTesting) import ShmAlloc
import ShmFormat
import ShmPathCache
import ShmTestSupport
import ShmWorkloads
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension MultiProcessTests {
    /// Makes a path cache file and a zeroed journal in `scratch`.
    static func pathCacheFiles(_ scratch: ScratchDirectory) throws -> (paths: PathCache, journal: String) {
        let paths = try PathCache(cache: makeCache(at: scratch.file("paths.shm"), geometry: PathCacheTests.geometry))
        let journal = scratch.file("journal")
        _ = try ProgressJournal(path: journal, creating: true)
        return (paths, journal)
    }

    /// Starts a `paths-writer` process running `threads` writers from `first`.
    static func startPathWriter(
        _ files: (paths: PathCache, journal: String), first: Int, threads: Int, writers: Int, operations: Int,
        in scratch: ScratchDirectory
    ) throws -> TestProcess {
        try TestProcess(
            BuiltProducts.helper,
            [
                "paths-writer", files.paths.cache.path, files.journal, "\(first)", "\(threads)", "\(writers)",
                "\(operations)",
            ], in: scratch)
    }

    /// Expects every insert the journal records as completed, by writers `0 ..< writers`, to be
    /// found with its flags, and the cache to be whole.
    static func expectJournaledInsertsFound(_ files: (paths: PathCache, journal: String), writers: Int) throws {
        let journal = try ProgressJournal(path: files.journal, creating: false)
        var checked = 0
        for writer in 0..<writers {
            for operation in 0..<Int(journal[writer]) {
                let seed = PathCacheWorkload.seed(writer: writer, operation: operation)
                let path = PathCacheWorkload.path(seed: seed)
                let found = try? files.paths.search(path)
                if found != PathFlags(rawValue: PathCacheWorkload.flags(path: path)) {
                    Issue.record(
                        "writer \(writer)'s insert \(operation) (seed \(seed)) found as \(String(describing: found))")
                    return
                }
                checked += 1
            }
        }
        #expect(checked > 0, "the writers must have completed inserts")
        let census = files.paths.census()
        #expect(census.invalidSlots == 0)
        #expect(census.storedPrefixCount >= UInt64(census.prefixEntries))
        #expect(files.paths.cache.invalidBlocks == [])
    }

    @Test("path cache: 3 processes × 2 threads insert overlapping paths; each finds the others' completed inserts")
    func pathWriters() throws {
        let scratch = try ScratchDirectory()
        let files = try Self.pathCacheFiles(scratch)
        let writers = try (0..<3).map { process in
            try Self.startPathWriter(files, first: process * 2, threads: 2, writers: 6, operations: 1500, in: scratch)
        }
        for writer in writers {
            #expect(writer.wait(timeout: .seconds(120)) == .exited(0), "\(writer.outputTail)")
            #expect(writer.result("misses") == 0 && writer.result("errors") == 0)
            #expect(writer.result("checks") > 100, "\(writer.outputTail)")
        }
        try Self.expectJournaledInsertsFound(files, writers: 6)
        let distinct = Set(
            (0..<6).flatMap { writer in (0..<1500).map { PathCacheWorkload.seed(writer: writer, operation: $0) } }
                .map { PathCacheWorkload.path(seed: $0) })
        #expect(files.paths.census().entries == distinct.count, "every distinct path cached exactly once")
    }

    /// Runs `paths-count` on `paths` to its end (see PathWorkloads.swift) and returns its pid.
    static func runCountedPaths(
        _ paths: PathCache, inserts: Int, searches: Int, hits: Int, in scratch: ScratchDirectory
    ) throws -> pid_t {
        let arguments = ["paths-count", paths.cache.path, "\(inserts)", "\(searches)", "\(hits)"]
        let process = try TestProcess(BuiltProducts.helper, arguments, in: scratch)
        #expect(process.wait(timeout: .seconds(60)) == .exited(0), "\(process.outputTail)")
        #expect(process.result("pid") == Int(process.pid), "\(process.outputTail)")
        return process.pid
    }

    /// The owner table of `cache`'s file, as mapped (read once the processes that write it are gone).
    static func ownerTable(_ cache: SharedCache) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: cache.fileBase + cache.layout.ownersOffset, count: OwnerTable.byteCount)
    }

    /// The path counters of the owner entry naming `pid`; `nil` when no entry does.
    static func pathCounters(of pid: pid_t, in cache: SharedCache) -> PathCounters? {
        let table = ownerTable(cache)
        let entry = (0..<OwnerTable.entryCount).first {
            OwnerTable.pid(ofIdentity: OwnerTable.identity(in: table, entry: $0)) == pid
        }
        return entry.map { OwnerTable.pathCounters(in: table, entry: $0) }
    }

    @Test("path counters: a process's inserts, searches and hits (entry or prefix) are in its owner entry, exactly")
    func pathCounters() throws {
        let scratch = try ScratchDirectory()
        let paths = try PathCache(cache: makeCache(at: scratch.file("paths.shm"), geometry: PathCacheTests.geometry))
        let inserter = try Self.runCountedPaths(paths, inserts: 300, searches: 500, hits: 400, in: scratch)
        // Searches alone count too, and a process's counts are its own.
        let searcher = try Self.runCountedPaths(paths, inserts: 0, searches: 700, hits: 250, in: scratch)
        let inserterCounts = Self.pathCounters(of: inserter, in: paths.cache)
        #expect(inserterCounts == PathCounters(searches: 500, hits: 400, inserts: 300))
        #expect(Self.pathCounters(of: searcher, in: paths.cache) == PathCounters(searches: 700, hits: 250, inserts: 0))
        // This process opened the path cache (whose first search, run at opening, is not counted) and used it not.
        #expect(Self.pathCounters(of: getpid(), in: paths.cache) == PathCounters())
    }

    /// Makes entries `1 ..< end` of `cache`'s owner table name this (live) process, as entry 0
    /// does since it opened the cache, so that other processes find them taken.
    static func takeOwnerEntries(_ cache: SharedCache, below end: Int) throws {
        let own = OwnerTable.identity(in: ownerTable(cache), entry: 0)
        try #require(OwnerTable.pid(ofIdentity: own) == getpid())
        for entry in 1..<end {
            (cache.fileBase + cache.layout.ownersOffset + entry * OwnerTable.entrySize)
                .storeBytes(of: own.littleEndian, as: UInt64.self)
        }
    }

    @Test("path counters: a process that finds no owner entry free counts nothing in the file")
    func pathCountersWithoutEntry() throws {
        let scratch = try ScratchDirectory()
        let paths = try PathCache(cache: makeCache(at: scratch.file("paths.shm"), geometry: PathCacheTests.geometry))
        try Self.takeOwnerEntries(paths.cache, below: OwnerTable.entryCount)
        let helper = try Self.runCountedPaths(paths, inserts: 300, searches: 500, hits: 400, in: scratch)
        #expect(Self.pathCounters(of: helper, in: paths.cache) == nil, "no entry names the helper")
        let table = Self.ownerTable(paths.cache)
        let counted = (0..<OwnerTable.entryCount).map { OwnerTable.pathCounters(in: table, entry: $0) }
        #expect(counted.allSatisfy { $0 == PathCounters() }, "and no entry counted its searches")
        #expect(try paths.search("/counted/299") == .allow, "its inserts themselves are in the cache")
    }

    /// A path cache whose owner table has one entry left, the last (every other names this live
    /// process), which a first helper took and left with 500 searches, 400 hits and 300 inserts.
    static func lastEntryUsedOnce(in scratch: ScratchDirectory) throws -> PathCache {
        let paths = try PathCache(cache: makeCache(at: scratch.file("paths.shm"), geometry: PathCacheTests.geometry))
        try takeOwnerEntries(paths.cache, below: OwnerTable.entryCount - 1)
        let first = try runCountedPaths(paths, inserts: 300, searches: 500, hits: 400, in: scratch)
        #expect(lastEntry(of: paths) == (first, PathCounters(searches: 500, hits: 400, inserts: 300)))
        return paths
    }

    /// The pid the last owner entry names, and its path counters.
    static func lastEntry(of paths: PathCache) -> (pid: pid_t, counters: PathCounters) {
        let table = ownerTable(paths.cache)
        let last = OwnerTable.entryCount - 1
        return (
            OwnerTable.pid(ofIdentity: OwnerTable.identity(in: table, entry: last)),
            OwnerTable.pathCounters(in: table, entry: last)
        )
    }

    @Test("path counters: an owner entry taken over from an exited process starts from 0")
    func pathCountersOfReusedEntry() throws {
        let scratch = try ScratchDirectory()
        let paths = try Self.lastEntryUsedOnce(in: scratch)
        let second = try Self.runCountedPaths(paths, inserts: 0, searches: 200, hits: 100, in: scratch)
        #expect(Self.lastEntry(of: paths) == (second, PathCounters(searches: 200, hits: 100, inserts: 0)))
    }

    @Test("path counters: a process killed between claiming an exited owner's entry and zeroing its counters")
    func killedBeforeCountersZeroed() throws {
        let scratch = try ScratchDirectory()
        let paths = try Self.lastEntryUsedOnce(in: scratch)
        let victim = try runToEnd(BuiltProducts.helper, ["register-crash", paths.cache.path], in: scratch)
        try #require(victim.termination == .signalled(SIGKILL), "\(victim.outputTail)")
        // The window left the exited owner's counts under the dead claimer's name, and nothing else.
        #expect(Self.lastEntry(of: paths) == (victim.pid, PathCounters(searches: 500, hits: 400, inserts: 300)))
        #expect(paths.cache.invalidBlocks == [])
        // The dead claimer was outside any operation: the next process takes the entry, from 0.
        let next = try Self.runCountedPaths(paths, inserts: 0, searches: 200, hits: 100, in: scratch)
        #expect(Self.lastEntry(of: paths) == (next, PathCounters(searches: 200, hits: 100, inserts: 0)))
        #expect(try paths.search("/counted/299") == .allow, "the first process's inserts stay cached")
    }

    @Test("path cache: inserts and searches from SIGALRM handlers interrupting inserts and searches")
    func pathSignals() throws { try Self.expectPathSignalSafety(helper: BuiltProducts.helper) }

    /// Runs `paths-signals`: inserts and searches (prefix probes included) in a loop and in SIGALRM
    /// handlers; every path of either must be found after.
    static func expectPathSignalSafety(helper: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let scratch = try ScratchDirectory()
        let files = try pathCacheFiles(scratch)
        let worker = try runToEnd(
            helper, ["paths-signals", files.paths.cache.path], in: scratch, timeout: .seconds(120))
        #expect(worker.termination == .exited(0), "\(worker.outputTail)", sourceLocation: sourceLocation)
        #expect(
            worker.result("handlerRuns") > 1000 && worker.result("missing") == 0, "\(worker.outputTail)",
            sourceLocation: sourceLocation)
        #expect(files.paths.census().entries == worker.result("paths"), sourceLocation: sourceLocation)
    }

    @Test("path cache: zero heap allocations over 200 000 inserts, each with two searches (debug build)")
    func pathHeapAllocations() throws { try Self.expectNoPathHeapAllocations(helper: BuiltProducts.helper) }

    /// Runs `paths-heap`: 200 000 inserts, each with two searches, under the malloc interposer must
    /// make no heap allocation; a bracketed control `malloc` must count as one.
    static func expectNoPathHeapAllocations(helper: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let scratch = try ScratchDirectory()
        let files = try pathCacheFiles(scratch)
        let run = try runToEnd(
            helper, ["paths-heap", files.paths.cache.path, "200000"], in: scratch, timeout: .seconds(120))
        #expect(run.termination == .exited(0), "\(run.outputTail)", sourceLocation: sourceLocation)
        #expect(
            run.result("control") == 1, "the counter must see a malloc: \(run.outputTail)",
            sourceLocation: sourceLocation)
        #expect(
            run.result("failures") == 0 && run.result("mallocs") == 0, "\(run.outputTail)",
            sourceLocation: sourceLocation)
    }

    @Test(
        "path cache SIGKILL soak: 16 rounds of 2 writer processes × 2 threads killed at random; every journaled insert found",
        .timeLimit(.minutes(5)))
    func pathKillSoak() throws {
        let scratch = try ScratchDirectory()
        let files = try Self.pathCacheFiles(scratch)
        let journal = try ProgressJournal(path: files.journal, creating: false)
        var random = SplitMix64(seed: 14)
        let rounds = 16
        for round in 0..<rounds {
            let first = round * 4
            let writers = try (0..<2).map { process in
                try Self.startPathWriter(
                    files, first: first + process * 2, threads: 2, writers: first + 4, operations: 0, in: scratch)
            }
            // Each thread has done something before the kill, whatever the machine's speed.
            #expect(poll(timeout: .seconds(60)) { (first..<(first + 4)).allSatisfy { journal[$0] >= 100 } })
            usleep(UInt32(random.next() % 50_000))
            for writer in writers { writer.killNow() }
            for writer in writers {
                #expect(
                    !(writer.output + writer.error).contains("found as"),
                    "a writer missed a completed insert: \(writer.outputTail)")
            }
        }
        try Self.expectJournaledInsertsFound(files, writers: rounds * 4)
    }
}

@Suite("Path cache crash points")
struct PathCacheCrashPointTests {
    static let cases: [(CrashPoint, Int)] = CrashPoint.allCases.filter(\.isPathCachePoint).flatMap { point in
        [1, 2, 31].map { (point, $0) }
    }

    @Test(
        "killed at a path cache crash point: completed inserts found with their flags, the one in flight old or new",
        .timeLimit(.minutes(3)), arguments: cases)
    func killedAt(point: CrashPoint, hit: Int) throws {
        let scratch = try ScratchDirectory()
        let files = try MultiProcessTests.pathCacheFiles(scratch)
        let seed = UInt64(hit * 7919)
        let victim = try runToEnd(
            BuiltProducts.helper,
            ["paths-crash", files.paths.cache.path, point.name, "\(hit)", "\(seed)", files.journal], in: scratch)
        try #require(
            victim.termination == .signalled(SIGKILL), "the helper must die at \(point) #\(hit): \(victim.outputTail)")

        // What the completed operations left, and the operation that was cut short.
        let completed = Int(try ProgressJournal(path: files.journal, creating: false)[0])
        var operations = PathCacheWorkload.CrashOperations(seed: seed)
        var expected: [[UInt8]: UInt8] = [:]
        for _ in 0..<completed {
            let (pathSeed, flags) = operations.next()
            expected[PathCacheWorkload.path(seed: pathSeed)] = flags
        }
        let inFlight = operations.next()
        let inFlightPath = PathCacheWorkload.path(seed: inFlight.pathSeed)

        var cached: [[UInt8]: UInt8] = [:]
        let census = files.paths.census { path, flags, _ in cached[Array(path)] = flags }
        #expect(census.invalidSlots == 0)
        #expect(census.storedPrefixCount >= UInt64(census.prefixEntries), "the prefix count may only be too high")
        #expect(Set(cached.keys).subtracting([inFlightPath]) == Set(expected.keys).subtracting([inFlightPath]))
        #expect(
            [expected[inFlightPath], inFlight.flags].contains(cached[inFlightPath]),
            "the insert in flight: old or new flags")
        for (path, flags) in expected where path != inFlightPath {
            #expect(try files.paths.search(path) == PathFlags(rawValue: flags))
        }
        #expect(files.paths.cache.invalidBlocks == [])

        // The victim's statistics: every completed operation (an insert, then a search of its
        // path) counted; the one in flight counted up to the point that killed it, and at
        // pathDuplicateFreed the same-path insert the victim itself made to win the race.
        let owners = UnsafeRawBufferPointer(
            start: files.paths.cache.fileBase + files.paths.cache.layout.ownersOffset, count: OwnerTable.byteCount)
        let victimEntry = try #require(
            (0..<OwnerTable.entryCount).first {
                OwnerTable.pid(ofIdentity: OwnerTable.identity(in: owners, entry: $0)) == victim.pid
            })
        let counters = OwnerTable.pathCounters(in: owners, entry: victimEntry)
        let searchedInFlight = UInt64(point == .pathSearchCounted ? 1 : 0)
        let insertedInFlight = UInt64(point == .pathSearchCounted || point == .pathDuplicateFreed ? 1 : 0)
        #expect(counters.inserts == UInt64(completed) + insertedInFlight)
        #expect(counters.searches == UInt64(completed) + searchedInFlight)
        #expect(counters.hits == UInt64(completed))

        // The cache goes on working: the insert in flight, again.
        try files.paths.insert(inFlightPath, flags: PathFlags(rawValue: inFlight.flags))
        #expect(try files.paths.search(inFlightPath) == PathFlags(rawValue: inFlight.flags))
    }
}
