// The shared path cache: what a traced process pays to ask whether a path may be accessed, from
// the cache and from a server over a Unix socket, and what the cache costs in memory.

import ArgumentParser
import Foundation
@_spi(PathCounters) import ShmAlloc
import ShmFormat
import ShmPathCache
import ShmSystem
import ShmWorkloads
import Synchronization

/// The `paths` group: 100 000 distinct 40-byte paths in a 64 MiB cache.
struct PathBenchmarks {
    let runs: Int
    let scratch: Scratch
    static let entries = 100_000
    static let pathLength = 40
    static let searchesPerRun = 2_000_000
    static let section = "path cache, 100 000 cached 40-byte paths"

    /// `count` distinct realistic paths of 40 bytes each, end to end: a `PathNames` path cut (or
    /// padded) to 31 bytes, then `/` and the index in 8 hex digits, which makes each one unique.
    static func paths(count: Int, firstSeed: Int = 0) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count * pathLength)
        for index in firstSeed..<(firstSeed + count) {
            var path = Array(PathNames.path(seed: UInt64(index)).prefix(pathLength - 9))
            path += repeatElement(UInt8(ascii: "_"), count: pathLength - 9 - path.count)
            let digits = String(index, radix: 16)
            bytes += path + Array(("/" + String(repeating: "0", count: 8 - digits.count) + digits).utf8)
        }
        return bytes
    }

    /// The path at `index` of `paths(count:)`'s bytes.
    @inline(__always)
    static func path(_ bytes: UnsafeRawBufferPointer, _ index: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[(index * pathLength)..<((index + 1) * pathLength)])
    }

    /// A path cache in a fresh 64 MiB cache holding `paths`, and the nanoseconds per insert it took.
    func filledCache(_ paths: [UInt8]) throws -> (PathCache, Double) {
        let pathCache = try PathCache(cache: scratch.cache(capacity: 64 << 20))
        let start = SystemClock.monotonicNanoseconds()
        try paths.withUnsafeBytes { bytes in
            for step in 0..<Self.entries {
                let index = Self.scattered(step, count: Self.entries)
                try pathCache.insert(
                    Self.path(bytes, index), flags: PathFlags(rawValue: UInt8(truncatingIfNeeded: index) & 0xFB))
            }
        }
        return (pathCache, Double(SystemClock.monotonicNanoseconds() - start) / Double(Self.entries))
    }

    /// Step `step` of a walk through `0 ..< count` that visits every index far from the previous
    /// one (7919 is a prime that divides no count used here).
    @inline(__always)
    static func scattered(_ step: Int, count: Int) -> Int { step &* 7919 % count }

    /// Nanoseconds per search of the paths of `paths` that `steps` name (steps continue a sequence
    /// across calls). The paths are searched in their order in `paths`, which the processor
    /// prefetches, as a caller's path is in its cache when it asks; they were inserted in a
    /// scattered order, so their entries are not.
    static func searches(_ pathCache: PathCache, _ paths: [UInt8], steps: Range<Int>, expectFound: Bool) -> Double {
        let pathCount = paths.count / pathLength
        let count = steps.count
        var found = 0
        let start = SystemClock.monotonicNanoseconds()
        paths.withUnsafeBytes { bytes in
            for step in steps where (try? pathCache.search(path(bytes, step % pathCount))) != nil {
                found &+= 1
            }
        }
        let elapsed = SystemClock.monotonicNanoseconds() - start
        precondition(found == (expectFound ? count : 0), "path cache search found \(found) of \(count)")
        return Double(elapsed) / Double(count)
    }

    func run(into table: inout ResultTable) throws {
        let paths = Self.paths(count: Self.entries)
        let uncached = Self.paths(count: Self.entries, firstSeed: Self.entries)
        var inserts: [Double] = []
        var hits: [Double] = []
        var misses: [Double] = []
        var pathCache: PathCache?
        for _ in 0..<runs {
            if let pathCache { scratch.remove(pathCache.cache) }
            let (filled, insertCost) = try filledCache(paths)
            pathCache = filled
            inserts.append(insertCost)
            hits.append(Self.searches(filled, paths, steps: 0..<Self.searchesPerRun, expectFound: true))
            misses.append(Self.searches(filled, uncached, steps: 0..<Self.searchesPerRun, expectFound: false))
        }
        guard let pathCache else { return }
        defer { scratch.remove(pathCache.cache) }
        let hit = median(hits)
        let insert = median(inserts)
        table.add(
            ResultRow(
                section: Self.section, workload: "search, cached", value: hit, unit: "ns",
                target: "≤ 150 ns", met: hit <= 150))
        table.add(ResultRow(section: Self.section, workload: "search, not cached", value: median(misses), unit: "ns"))
        table.add(
            ResultRow(
                section: Self.section, workload: "insert, new path (tables included)", value: insert, unit: "ns",
                target: "≤ 1 µs", met: insert <= 1000))

        let census = pathCache.census()
        let perPath = Double(census.entryNodeBytes + census.tableNodeBytes) / Double(census.entries)
        table.add(
            ResultRow(
                section: Self.section,
                workload: "cache bytes per path (nodes, tables; depth ≤ \(census.depthCounts.count - 1))",
                value: perPath, unit: "B", baseline: Double(Self.pathLength), baselineName: "path",
                ratio: perPath / Double(Self.pathLength), ratioName: "path", target: "≤ 2× the path",
                met: perPath <= 2 * Double(Self.pathLength)))

        let threaded = (0..<runs).map { _ in Self.searchesOnTwoThreads(pathCache, paths) }
        let threadedHit = median(threaded.map(\.nanoseconds))
        table.add(
            ResultRow(
                section: Self.section, workload: "search, cached, 2 threads of one process",
                value: threadedHit, unit: "ns", baseline: hit, baselineName: "1 thread",
                ratio: threadedHit / hit, ratioName: "1 thread"))
        table.add(
            ResultRow(
                section: Self.section, workload: "their searches the process's counters kept",
                value: median(threaded.map(\.counted)) * 100, unit: "%"))

        let slice = try Self.watcherSlice(path: pathCache.cache.path, walks: max(3, runs))
        table.add(
            ResultRow(
                section: Self.section,
                workload: "shmtop watch: path cache slice per refresh (\(slice.refreshes) refreshes a walk)",
                value: slice.microseconds, unit: "µs"))
        // A refresh every 100 ms: µs per refresh / 100 000 µs, in percent.
        table.add(
            ResultRow(
                section: Self.section, workload: "shmtop watch: path cache slices at 10 Hz, while walking",
                value: slice.microseconds / 1000, unit: "% core"))

        let one = median(try (0..<runs).map { _ in try searchThroughput(processes: 1, path: pathCache.cache.path) })
        let two = median(try (0..<runs).map { _ in try searchThroughput(processes: 2, path: pathCache.cache.path) })
        table.add(ResultRow(section: Self.section, workload: "searches, 1 process", value: one, unit: "M/s"))
        table.add(
            ResultRow(
                section: Self.section, workload: "searches, 2 processes", value: two, unit: "M/s",
                baseline: one, baselineName: "1 proc", ratio: two / one, ratioName: "1 proc",
                target: "≥ 1.8× 1 process", met: two / one >= 1.8))

        let roundTrip = median(
            try (0..<runs).map { _ in try SocketRoundTrip.nanoseconds(pathCache, paths, count: 100_000) })
        table.add(
            ResultRow(
                section: Self.section, workload: "the same question to a server, Unix socket round trip",
                value: roundTrip, unit: "ns", baseline: hit, baselineName: "cache", ratio: roundTrip / hit,
                ratioName: "cache search"))
    }

    /// Nanoseconds per search of two threads searching the cached paths at once, and the share of
    /// their searches that the process's path counters kept: the threads share the counters, whose
    /// increments are a load and a store (see `PathCache.count`), so some overwrite others.
    static func searchesOnTwoThreads(
        _ pathCache: PathCache, _ paths: [UInt8]
    ) -> (nanoseconds: Double, counted: Double) {
        let counters = pathCache.cache.pathCounters()
        let before = counters[PathCounters.searchesIndex].load(ordering: .relaxed)
        let perThread = onThreads(2) { thread in
            let first = thread * entries / 2
            return searches(pathCache, paths, steps: first..<(first + searchesPerRun / 2), expectFound: true)
        }
        let counted = counters[PathCounters.searchesIndex].load(ordering: .relaxed) - before
        return (perThread.reduce(0, +) / 2, Double(counted) / Double(searchesPerRun / 2 * 2))
    }

    /// Million searches per second summed over `processes` path workers started together.
    func searchThroughput(processes: Int, path: String) throws -> Double {
        let milliseconds = 500
        // A second's lead: each worker maps the cache and reads its paths before the start (a late
        // one would search for less than the window it is credited with).
        let searches = try workerCounts(processes: processes, leadMilliseconds: 1000) { startAt in
            ["path-worker", "--file", path, "--start-at", String(startAt), "--milliseconds", String(milliseconds)]
        }
        return Double(searches) / (Double(milliseconds) / 1000) / 1e6
    }
}

extension ShmBench {
    /// One process of the path cache's scaling figure: waits for the common start, searches the
    /// cached paths for a fixed time, prints how many searches it made.
    struct PathWorker: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "path-worker", shouldDisplay: false)
        @Option var file: String
        @Option var startAt: UInt64
        @Option var milliseconds: Int

        func run() throws {
            let pathCache = try PathCache(cache: SharedCache(path: file, policy: .attach))
            // The cached paths, read from the cache (in its walk's order, scattered in memory): far
            // quicker than making them again, so a loaded machine still has the worker ready in time.
            var paths: [UInt8] = []
            paths.reserveCapacity(PathBenchmarks.entries * PathBenchmarks.pathLength)
            _ = pathCache.census { path, _, _ in paths += path }
            let startAt = startAt  // not the option's getter, which a spinning loop would call millions of times
            guard SystemClock.monotonicNanoseconds() < startAt else {
                throw ValidationFailure("path worker ready after the start")
            }
            while SystemClock.monotonicNanoseconds() < startAt {}
            let end = startAt + UInt64(milliseconds) * 1_000_000
            var searches = 0
            let batch = 4096
            // Workers start at different paths: walking the same ones in step, one would fetch the
            // other's entries into the shared cache.
            let first = Int(getpid()) &* 7919 % PathBenchmarks.entries
            while SystemClock.monotonicNanoseconds() < end {
                _ = PathBenchmarks.searches(
                    pathCache, paths, steps: (first + searches)..<(first + searches + batch), expectFound: true)
                searches += batch
            }
            print(searches)
        }
    }
}

/// What the cache saves: the same question put to a server process over a Unix socket, as a
/// tracing server is asked: the client sends the path, the server searches its cache (the same
/// one) and sends back one byte of flags.
enum SocketRoundTrip {
    /// Nanoseconds per round trip, over `count` paths of `paths` in a scattered order.
    static func nanoseconds(_ pathCache: PathCache, _ paths: [UInt8], count: Int) throws -> Double {
        var sockets: [Int32] = [0, 0]
        // Sequenced packets: each read takes one whole request, as the server's protocol would.
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0, &sockets) == 0 else {
            throw ValidationFailure("socketpair: \(errno)")
        }
        // Allocated before the fork: the child of a process with threads must not call malloc.
        let request = UnsafeMutableRawPointer.allocate(byteCount: PathBenchmarks.pathLength, alignment: 8)
        defer { request.deallocate() }
        let server = fork()
        guard server >= 0 else { throw ValidationFailure("fork: \(errno)") }
        if server == 0 {
            close(sockets[0])
            serve(pathCache, socket: sockets[1], request: request)
        }
        close(sockets[1])
        defer {
            close(sockets[0])  // the server reads end-of-file and exits
            waitpid(server, nil, 0)
        }
        var answer: UInt8 = 0
        let start = SystemClock.monotonicNanoseconds()
        try paths.withUnsafeBytes { bytes in
            for step in 0..<count {
                let path = PathBenchmarks.path(bytes, step % (bytes.count / PathBenchmarks.pathLength))
                guard write(sockets[0], path.baseAddress, path.count) == path.count, read(sockets[0], &answer, 1) == 1
                else {
                    throw ValidationFailure("the path server stopped answering")
                }
            }
        }
        return Double(SystemClock.monotonicNanoseconds() - start) / Double(count)
    }

    /// The server's loop, in the forked child: read a path, search it, answer its flags (0 when
    /// not cached); exits when the client closes its end.
    static func serve(_ pathCache: PathCache, socket: Int32, request: UnsafeMutableRawPointer) -> Never {
        while true {
            let length = read(socket, request, PathBenchmarks.pathLength)
            guard length > 0 else { _exit(0) }
            var answer = (try? pathCache.search(UnsafeRawBufferPointer(start: request, count: length)))??.rawValue ?? 0
            guard write(socket, &answer, 1) == 1 else { _exit(1) }
        }
    }
}
