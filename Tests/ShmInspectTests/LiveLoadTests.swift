// The inspector against real writer processes: `shmtop load` on a live cache.

import Foundation
import ShmAlloc
import ShmFormat
import ShmInspect
import ShmPathCache
import ShmSystem
import ShmTestSupport
import ShmWorkloads
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Live multi-writer runs", .serialized)
struct LiveLoadTests {
    /// Starts `shmtop load` with stdout on a pipe.
    func startLoad(_ path: String, _ options: [String]) throws -> (ChildProcess, Int32) {
        let output = try ChildProcess.makePipe()
        let load = try ChildProcess.spawn(BuiltProducts.shmtop, ["load", path] + options, standardOutput: output.write)
        close(output.write)
        return (load, output.read)
    }

    /// Snapshots each live run is checked over: a count, not a time, so that a slow machine
    /// checks as much as a fast one.
    static let liveSnapshots = 10

    @Test(
        "allocated + free + reserved == managed bytes on every one of 10 snapshots of a live run; no verification errors"
    )
    func invariantUnderLoad() throws {
        let file = TemporaryFile("live")
        defer { file.remove() }
        // 128 Ki blocks: large enough for the census to be split across threads.
        let geometry = try Geometry(minSize: 32, maxSize: 1024, capacity: 128 << 20)
        _ = try file.createCache(geometry)
        // The writers run until they are interrupted, once the snapshots have seen them at work.
        let (load, output) = try startLoad(
            file.path, ["--writers", "2", "--seconds", "0", "--rate", "40000", "--period", "1", "--fill", "0.9"])
        let inspector = try CacheInspector(path: file.path)
        var snapshots = 0
        var sawAllocations = false
        var sawWriters = false
        var previous: (snapshot: CacheSnapshot, statistics: CacheStatistics)?
        var allocationsSeen = 0
        // A safety net, not a pace: a run ends when it has seen enough.
        let deadline = ContinuousClock.now + .seconds(120)
        var ended: ChildProcess.Termination?  // set only if the writers stopped on their own (a failure)
        while snapshots < Self.liveSnapshots || !sawAllocations || !sawWriters || allocationsSeen == 0,
            ContinuousClock.now < deadline
        {
            ended = load.poll()
            if ended != nil { break }
            let snapshot = try inspector.snapshot()
            let statistics = CacheStatistics(snapshot)
            #expect(
                statistics.allocatedBytes + statistics.freeBytes + statistics.reservedBytes == statistics.managedBytes)
            #expect(statistics.invalidWords == 0)
            #expect(statistics.sizeClasses.map(\.allocatedBytes).reduce(0, +) == statistics.allocatedBytes)
            #expect(statistics.sizeClasses.map { $0.freeChunks * $0.size }.reduce(0, +) == statistics.freeBytes)
            #expect((statistics.owners ?? []).map(\.bytes).reduce(0, +) <= statistics.allocatedBytes)
            sawAllocations = sawAllocations || statistics.liveAllocations > 0
            sawWriters = sawWriters || statistics.aliveOwnerCount == 2
            #expect(CacheStatistics(snapshot, threads: 1) == statistics)
            if let previous {
                allocationsSeen += SnapshotRates(from: previous.snapshot, to: snapshot).allocations
                // Recounting only the changed blocks gives the same statistics as a full pass.
                #expect(CacheStatistics(snapshot, updating: previous.statistics, of: previous.snapshot) == statistics)
            }
            previous = (snapshot, statistics)
            snapshots += 1
            usleep(20_000)
        }
        if ended == nil { load.send(SIGINT) }
        let termination = ended ?? load.wait()
        let text = String(decoding: ChildProcess.readAll(output), as: UTF8.self)
        close(output)
        #expect(termination == .exited(128 + SIGINT), "\(text)")
        #expect(snapshots >= Self.liveSnapshots)
        #expect(sawAllocations)
        #expect(sawWriters)
        #expect(allocationsSeen > 0)
        #expect(text.contains("verificationErrors=0 invalidFrees=0"), "\(text)")
        // Writers free everything they hold when they finish.
        #expect(CacheStatistics(try inspector.snapshot()).liveAllocations == 0)
    }

    @Test(
        "SIGINT or SIGTERM stops load: writers free what they hold, the summary is printed, exit status 128 + the signal (as demo and watch)",
        arguments: [SIGINT, SIGTERM])
    func interruptStopsWriters(signal: Int32) throws {
        let file = TemporaryFile("interrupt")
        defer { file.remove() }
        _ = try file.createCache(try Geometry(minSize: 32, maxSize: 1024, capacity: 4 << 20))
        let (load, output) = try startLoad(file.path, ["--writers", "3", "--seconds", "0"])
        let inspector = try CacheInspector(path: file.path)
        // Wait until the writers hold something.
        let deadline = ContinuousClock.now + .seconds(10)
        while CacheStatistics(try inspector.snapshot()).liveAllocations == 0, ContinuousClock.now < deadline {
            usleep(10_000)
        }
        load.send(signal)
        let termination = load.wait()
        let text = String(decoding: ChildProcess.readAll(output), as: UTF8.self)
        close(output)
        #expect(termination == .exited(128 + signal), "\(text)")
        #expect(text.contains("load: allocations="), "\(text)")
        #expect(text.contains("verificationErrors=0"), "\(text)")
        let statistics = CacheStatistics(try inspector.snapshot())
        #expect(statistics.liveAllocations == 0)
        #expect(statistics.owners == [])
    }

    @Test(
        "demo without a terminal: snapshots of a live temporary cache; SIGINT stops the writers, removes the file, exit status 130"
    )
    func demoStopsAndCleansUp() throws {
        let output = try ChildProcess.makePipe()
        let demo = try ChildProcess.spawn(
            BuiltProducts.shmtop, ["demo", "--writers", "2", "--interval", "0.3", "--ascii"],
            standardOutput: output.write)
        close(output.write)
        let temporaryFile = NSTemporaryDirectory() + "shmtop-demo-\(demo.pid).shm"
        // Let it draw a few frames, then interrupt it as Ctrl-C would.
        let deadline = ContinuousClock.now + .seconds(10)
        while !FileManager.default.fileExists(atPath: temporaryFile), ContinuousClock.now < deadline { usleep(10_000) }
        usleep(1_200_000)
        demo.send(SIGINT)
        let termination = demo.wait()
        let text = String(decoding: ChildProcess.readAll(output.read), as: UTF8.self)
        close(output.read)
        #expect(termination == .exited(128 + SIGINT), "\(text.suffix(2000))")
        #expect(text.contains("Heatmap:"))
        #expect(text.contains("load: allocations="), "the writers' summary")
        #expect(text.contains("verificationErrors=0"))
        #expect(!FileManager.default.fileExists(atPath: temporaryFile))
    }

    @Test("demo: writers check real paths; verdicts cached with the rule's flags, counted in writers' owner entries")
    func demoChecksPaths() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.file("demo.shm")
        let arguments = ["demo", "--file", path, "--writers", "2", "--interval", "0.5", "--ascii"]
        let demo = try TestProcess(BuiltProducts.shmtop, arguments, in: scratch)
        // Stopped once both writers have searched a while and hit: their first searches all miss.
        // Attached once the demo has made the file whole: it exists, empty, for a moment before.
        var attached: SharedCache?
        try #require(
            poll(timeout: .seconds(60)) {
                attached = try? SharedCache(path: path, policy: .attach)
                return attached != nil
            })
        let watched = try PathCache(cache: try #require(attached))
        let ownerTable = UnsafeRawBufferPointer(
            start: watched.cache.fileBase + watched.cache.layout.ownersOffset, count: OwnerTable.byteCount)
        func counters() -> [PathCounters] {
            (0..<OwnerTable.entryCount).map { OwnerTable.pathCounters(in: ownerTable, entry: $0) }
        }
        #expect(poll(timeout: .seconds(120)) { counters().filter { $0.searches > 5000 && $0.hits > 0 }.count == 2 })
        demo.send(SIGINT)
        #expect(demo.wait(timeout: .seconds(60)) == .exited(128 + SIGINT), "\(demo.outputTail)")
        let lines = demo.output.split(separator: "\n")
        let summary = try #require(lines.last { $0.hasPrefix("load: allocations=") })
        let totals = try #require(WorkloadSummary(line: String(summary)))
        #expect(totals.verificationErrors == 0)
        let figures = totals.paths
        #expect(figures.searches == totals.allocations + totals.failures, "one path check per allocation")
        #expect(figures.hits > 0 && figures.hits < figures.searches, "a cache that warmed up: \(figures)")
        #expect(figures.verdicts > 0 && figures.refused == 0)
        #expect(figures.verified == figures.verdicts && figures.errors == 0, "every verdict found with its flags")
        let figuresLine = "load: path cache: \(figures.searches) searches, \(figures.hits) hits (hit rate "
        #expect(lines.contains { $0.hasPrefix(figuresLine) })

        var misjudged = 0
        let census = watched.census { key, flags, _ in
            let verdict = Verdict.entry(for: key)
            if verdict.keyLength != key.count || verdict.flags.rawValue != flags { misjudged += 1 }
        }
        #expect(census.entries > 0 && census.entries <= figures.verdicts, "two writers may insert one verdict at once")
        #expect(census.invalidSlots == 0)
        #expect(misjudged == 0, "every entry is a key with the rule's verdict")
        #expect(lines.contains { $0.contains("hits (hit rate ") && $0.contains("), \(census.entries) entries;") })
        // The writers' own counts, and their verification's (one search and one hit per verdict), are in the file.
        let counted = counters()
        #expect(counted.map(\.searches).reduce(0, +) == UInt64(figures.searches + figures.verdicts))
        #expect(counted.map(\.hits).reduce(0, +) == UInt64(figures.hits + figures.verified))
        #expect(counted.map(\.inserts).reduce(0, +) == UInt64(figures.verdicts))
        #expect(counted.filter { $0.searches > 0 }.count == 2, "each writer counts in its own entry")
    }
}
