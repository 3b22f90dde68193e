// The statistics pass timed against `memcpy` of the same words: the measurement behind
// `shmtop bench-stats` and the `stats` group of `shmbench`, kept here so both print the same thing.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import ShmFormat

/// Times the inspector's statistics pass on a cache file against `memcpy` of its word region,
/// measured in the same run (the performance target of the inspector: at most 3× the copy).
///
/// Build in release. Every figure is the median of the runs, after one warm-up run.
public struct StatisticsBenchmark: Sendable {
    /// The cache's blocks (words).
    public let blockCount: Int
    /// Threads of ``statisticsSeconds``: ``CacheStatistics/defaultThreads``, what `shmtop snapshot` uses.
    public let threads: Int
    /// `memcpy` of the words (8 bytes per block) between two buffers already faulted in.
    public let copySeconds: Double
    /// The census pass over the usable blocks' words, on one thread.
    public let censusSeconds: Double
    /// ``CacheStatistics`` of a words-only snapshot on one thread.
    public let singleThreadSeconds: Double
    /// ``CacheStatistics`` of a words-only snapshot on ``threads`` threads: the statistics pass.
    public let statisticsSeconds: Double
    /// A words-only snapshot (a copy of the mapped words).
    public let snapshotSeconds: Double
    /// A snapshot with the allocation header scan; `nil` unless asked for.
    public let headerScanSeconds: Double?
    /// Live allocations and invalid words the census counted (a check that it counted anything).
    public let liveAllocations: Int, invalidWords: Int

    /// The statistics pass over the copy: the figure the target bounds.
    public var ratio: Double { statisticsSeconds / copySeconds }

    /// Measures the cache file at `path` (medians of `runs`); `headerScan` adds the slow
    /// snapshot that reads every allocation's header (3 runs).
    public init(path: String, runs: Int, headerScan: Bool = false) throws(InspectError) {
        let inspector = try CacheInspector(path: path)
        let snapshot = try inspector.snapshot(readingAllocations: false)
        let words = snapshot.words
        blockCount = words.count
        threads = CacheStatistics.defaultThreads

        let bytes = words.count * 8
        let destination = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        defer { destination.deallocate() }
        memset(destination, 0, bytes)    // fault the pages in: time the copy, not the kernel
        copySeconds = words.withUnsafeBytes { source in Self.median(runs: runs) { memcpy(destination, source.baseAddress!, bytes) } }

        let tree = snapshot.tree
        var census = BuddyCensus(tree: tree)
        censusSeconds = words[snapshot.usableBlocks].withUnsafeBufferPointer { usable in
            Self.median(runs: runs) { census = BuddyCensus(tree: tree, words: usable) }
        }
        liveAllocations = census.allocationsByOrder.reduce(0, +)
        invalidWords = census.invalidWords
        singleThreadSeconds = Self.median(runs: runs) { _ = CacheStatistics(snapshot, threads: 1) }
        statisticsSeconds = Self.median(runs: runs) { [threads] in _ = CacheStatistics(snapshot, threads: threads) }
        snapshotSeconds = Self.median(runs: runs) { _ = try? inspector.snapshot(readingAllocations: false) }
        headerScanSeconds = headerScan ? Self.median(runs: 3) { _ = try? inspector.snapshot(readingAllocations: true) } : nil
    }

    /// The figures as named rows, the copy first (what `shmtop bench-stats` prints).
    public var rows: [(name: String, seconds: Double)] {
        var rows = [
            ("memcpy of the words (\((blockCount * 8) >> 20) MiB)", copySeconds),
            ("census pass (BuddyCensus)", censusSeconds),
            ("CacheStatistics, 1 thread", singleThreadSeconds),
            ("CacheStatistics, \(threads) threads", statisticsSeconds),
            ("snapshot, words only", snapshotSeconds),
        ]
        if let headerScanSeconds { rows.append(("snapshot with allocation header scan", headerScanSeconds)) }
        return rows
    }

    /// The median time of `runs` calls of `body`, in seconds, after one warm-up call.
    public static func median(runs: Int, _ body: () -> Void) -> Double {
        body()
        let times = (0..<max(1, runs)).map { _ in
            let start = ContinuousClock.now
            body()
            return Double((ContinuousClock.now - start) / .nanoseconds(1)) / 1e9
        }.sorted()
        return times[times.count / 2]
    }

    /// Ages a cache the way the benchmark measures it: allocations of `requestSize()` bytes until
    /// `fill` of `capacity` is allocated (or the cache is full), then half of them, chosen at
    /// random, freed again, which leaves most blocks partly used. Returns the allocations held.
    ///
    /// - Parameters:
    ///   - random: chooses the allocations to free.
    ///   - requestSize: the size of the next request.
    ///   - allocate: allocates a request, returning its handle and node bytes; `nil` when full.
    ///   - free: frees a handle `allocate` returned.
    public static func age<Handle>(
        capacity: Int, fill: Double, random: inout some RandomNumberGenerator, requestSize: () -> Int,
        allocate: (Int) -> (handle: Handle, nodeBytes: Int)?, free: (Handle) -> Void
    ) -> Int {
        var handles: [Handle] = []
        let target = Int(Double(capacity) * fill)
        var allocated = 0
        while allocated < target, let (handle, bytes) = allocate(requestSize()) {
            handles.append(handle)
            allocated += bytes
        }
        handles.shuffle(using: &random)
        for handle in handles[..<(handles.count / 2)] { free(handle) }
        return handles.count - handles.count / 2
    }
}
