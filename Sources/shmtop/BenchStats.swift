#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import ArgumentParser
import Foundation
import ShmAlloc
import ShmFormat
import ShmInspect

extension Shmtop {
    /// `shmtop bench-stats`: the statistics pass against `memcpy` of the same words (hidden).
    struct BenchStats: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time the statistics pass of a large cache against memcpy of its words (build with -c release).",
            shouldDisplay: false)

        @Option(help: "The cache's capacity.")
        var capacity = ByteSizeArgument(bytes: 1 << 30)
        @Option(help: "Fill to reach with path-sized allocations before freeing half of them at random.")
        var fill = 0.8
        @Option(help: "Timed runs per measurement; the median is reported.")
        var runs = 9
        @Option(help: ArgumentHelp("The cache file (default: a temporary file, removed at the end).", valueName: "path"))
        var file: String?

        func run() throws {
            let path = file ?? NSTemporaryDirectory() + "shmtop-bench-\(getpid()).shm"
            defer { if file == nil { unlink(path) } }
            let geometry: Geometry
            do { geometry = try Geometry(minSize: 32, maxSize: 1024, capacity: capacity.bytes) } catch {
                throw ValidationError("\(error)")
            }
            let cache = try failingWithOneLine { () throws(CacheError) in try SharedCache(path: path, policy: .require(geometry)) }
            print("aging \(ByteCount(capacity.bytes)) (\(geometry.blockCount) blocks): fill to \(Int(fill * 100)) %, free half at random …")
            let held = Self.age(cache, fill: fill)
            let benchmark = try failingWithOneLine { () throws(InspectError) in
                try StatisticsBenchmark(path: path, runs: runs, headerScan: true)
            }
            var rows = benchmark.rows
            // A live view's refresh: 1 % of the blocks changed since the previous snapshot.
            let inspector = try failingWithOneLine { () throws(InspectError) in try CacheInspector(path: path) }
            let earlier = try failingWithOneLine { () throws(InspectError) in try inspector.snapshot(readingAllocations: false) }
            let earlierStatistics = CacheStatistics(earlier)
            for step in 0..<(geometry.blockCount / 100) { _ = try? cache.allocate(16 + step % 900) }
            let later = try failingWithOneLine { () throws(InspectError) in try inspector.snapshot(readingAllocations: false) }
            let changed = SnapshotRates(from: earlier, to: later).blocksChanged
            let incremental = StatisticsBenchmark.median(runs: runs) { _ = CacheStatistics(later, updating: earlierStatistics, of: earlier) }
            rows.insert(("incremental update, \(changed) blocks changed", incremental), at: 4)

            for (name, seconds) in rows {
                let padded = name.padding(toLength: 42, withPad: " ", startingAt: 0)
                print(padded + String(format: "%9.3f ms  %6.2f ns/block  %6.2fx memcpy", seconds * 1e3,
                                      seconds * 1e9 / Double(benchmark.blockCount), seconds / benchmark.copySeconds))
            }
            print("allocations held: \(held), live allocations counted: \(benchmark.liveAllocations), invalid words: \(benchmark.invalidWords)")
        }

        /// Ages `cache` with path-sized allocations (see ``StatisticsBenchmark/age(capacity:fill:random:requestSize:allocate:free:)``).
        static func age(_ cache: SharedCache, fill: Double) -> Int {
            var random = SplitMix64(seed: 42)
            var sizes = SplitMix64(seed: 43)
            return StatisticsBenchmark.age(
                capacity: cache.geometry.capacity, fill: fill, random: &random,
                requestSize: { PathNames.path(seed: sizes.next()).count },
                allocate: { size in
                    (try? cache.allocate(size)).map { ($0, cache.geometry.nodeSize(ofOrder: cache.geometry.order(forRequest: size)!)) }
                },
                free: { try? cache.free($0) })
        }
    }
}
