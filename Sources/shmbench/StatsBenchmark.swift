// The inspector's statistics pass on an aged 1 GiB cache, against `memcpy` of its words (the
// inspector's target: at most 3× the copy), with the passes around it: the census alone, a words
// snapshot, the header scan and a live view's incremental update.

import Foundation
import ShmAlloc
import ShmFormat
import ShmInspect
import ShmSystem
import ShmWorkloads

/// The `stats` group: the pass per block against the copy, with the ratio and the target, and one
/// row per other pass.
struct StatsBenchmark {
    let runs: Int
    let scratch: Scratch

    func run(into table: inout ResultTable) throws {
        let cache = try scratch.cache(capacity: 1 << 30)
        defer { scratch.remove(cache) }
        _ = Self.age(cache, fill: 0.8)
        let measurement = try StatisticsMeasurement(path: cache.path, runs: max(runs, 9))

        let section = "inspector statistics pass, 1 GiB"
        func perBlock(_ seconds: Double) -> Double { seconds * 1e9 / Double(measurement.blockCount) }
        table.add(
            ResultRow(
                section: section, workload: "statistics pass per block (\(measurement.threads) threads, as snapshot)",
                value: perBlock(measurement.statisticsSeconds), unit: "ns", baseline: perBlock(measurement.copySeconds),
                baselineName: "memcpy", ratio: measurement.ratio, ratioName: "memcpy", target: "≤ 3× memcpy",
                met: measurement.ratio <= 3))
        for (name, seconds) in measurement.otherPasses + [try Self.incrementalUpdate(cache, runs: max(runs, 9))] {
            table.add(
                ResultRow(
                    section: section, workload: name + " per block", value: perBlock(seconds), unit: "ns",
                    baseline: perBlock(measurement.copySeconds), baselineName: "memcpy",
                    ratio: seconds / measurement.copySeconds, ratioName: "memcpy"))
        }
    }

    /// A live view's refresh: statistics updated from the 1 % of blocks that changed since the
    /// previous snapshot, instead of recomputed.
    static func incrementalUpdate(_ cache: SharedCache, runs: Int) throws -> (name: String, seconds: Double) {
        let inspector = try CacheInspector(path: cache.path)
        let earlier = try inspector.snapshot(readingAllocations: false)
        let earlierStatistics = CacheStatistics(earlier)
        for step in 0..<(cache.geometry.blockCount / 100) { _ = try? cache.allocate(16 + step % 900) }
        let later = try inspector.snapshot(readingAllocations: false)
        let changed = SnapshotRates(from: earlier, to: later).blocksChanged
        let seconds = StatisticsMeasurement.median(runs: runs) {
            _ = CacheStatistics(later, updating: earlierStatistics, of: earlier)
        }
        return ("incremental update, \(changed) blocks changed", seconds)
    }

    /// Ages `cache` the way the measurement wants it: allocations of 8…1016 bytes until `fill` of
    /// the capacity is allocated (or the cache is full), then half of them, chosen at random,
    /// freed again, which leaves most blocks partly used. Returns the allocations held.
    static func age(_ cache: SharedCache, fill: Double) -> Int {
        var random = SplitMix64(seed: 42)
        var sizes = SplitMix64(seed: 43)
        var held: [ShmOffset] = []
        let target = Int(Double(cache.geometry.capacity) * fill)
        var allocated = 0
        while allocated < target {
            let size = sizes.uniform(8...1016)
            guard let offset = try? cache.allocate(size) else { break }
            held.append(offset)
            allocated += cache.geometry.nodeSize(forRequest: size)!
        }
        held.shuffle(using: &random)
        for offset in held[..<(held.count / 2)] { try? cache.free(offset) }
        return held.count - held.count / 2
    }
}

/// Times the inspector's statistics pass on a cache file against `memcpy` of its word region,
/// measured in the same run (the performance target of the inspector: at most 3× the copy).
///
/// Build in release. Every figure is the median of the runs, after one warm-up run.
struct StatisticsMeasurement {
    /// The cache's blocks (words).
    let blockCount: Int
    /// Threads of ``statisticsSeconds``: ``CacheStatistics/defaultThreads``, what `shmtop snapshot` uses.
    let threads: Int
    /// `memcpy` of the words (8 bytes per block) between two buffers already faulted in.
    let copySeconds: Double
    /// The census pass over the usable blocks' words, on one thread.
    let censusSeconds: Double
    /// ``CacheStatistics`` of a words-only snapshot on one thread.
    let singleThreadSeconds: Double
    /// ``CacheStatistics`` of a words-only snapshot on ``threads`` threads: the statistics pass.
    let statisticsSeconds: Double
    /// A words-only snapshot (a copy of the mapped words).
    let snapshotSeconds: Double
    /// A snapshot with the allocation header scan.
    let headerScanSeconds: Double

    /// The statistics pass over the copy: the figure the target bounds.
    var ratio: Double { statisticsSeconds / copySeconds }

    /// Measures the cache file at `path` (medians of `runs`; 3 runs of the slow snapshot that
    /// reads every allocation's header).
    init(path: String, runs: Int) throws(InspectError) {
        let inspector = try CacheInspector(path: path)
        let snapshot = try inspector.snapshot(readingAllocations: false)
        let words = snapshot.words
        blockCount = words.count
        threads = CacheStatistics.defaultThreads

        let bytes = words.count * 8
        let destination = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        defer { destination.deallocate() }
        memset(destination, 0, bytes)  // fault the pages in: time the copy, not the kernel
        copySeconds = words.withUnsafeBytes { source in
            Self.median(runs: runs) { memcpy(destination, source.baseAddress!, bytes) }
        }

        let tree = snapshot.tree
        censusSeconds = words[snapshot.usableBlocks].withUnsafeBufferPointer { usable in
            Self.median(runs: runs) { _ = BuddyCensus(tree: tree, words: usable) }
        }
        singleThreadSeconds = Self.median(runs: runs) { _ = CacheStatistics(snapshot, threads: 1) }
        statisticsSeconds = Self.median(runs: runs) { [threads] in _ = CacheStatistics(snapshot, threads: threads) }
        snapshotSeconds = Self.median(runs: runs) { _ = try? inspector.snapshot(readingAllocations: false) }
        headerScanSeconds = Self.median(runs: 3) { _ = try? inspector.snapshot(readingAllocations: true) }
    }

    /// The passes besides the copy and the statistics pass, as named rows.
    var otherPasses: [(name: String, seconds: Double)] {
        [
            ("census pass (BuddyCensus)", censusSeconds),
            ("CacheStatistics, 1 thread", singleThreadSeconds),
            ("snapshot, words only", snapshotSeconds),
            ("snapshot with allocation header scan", headerScanSeconds),
        ]
    }

    /// The median time of `runs` calls of `body`, in seconds, after one warm-up call.
    static func median(runs: Int, _ body: () -> Void) -> Double {
        body()
        let times = (0..<max(1, runs)).map { _ in
            let start = ContinuousClock.now
            body()
            return (ContinuousClock.now - start).inSeconds
        }.sorted()
        return times[times.count / 2]
    }
}
