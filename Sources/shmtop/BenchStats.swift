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
            let held = age(cache)
            let inspector = try failingWithOneLine { () throws(InspectError) in try CacheInspector(path: path) }

            let words = geometry.blockCount
            let source = UnsafeRawPointer(cache.fileBase + cache.layout.wordsOffset)
            let destination = UnsafeMutableRawPointer.allocate(byteCount: words * 8, alignment: 64)
            defer { destination.deallocate() }
            memset(destination, 0, words * 8)           // fault the pages in: time the copy, not the kernel
            let copy = median { memcpy(destination, source, words * 8) }
            let usable = cache.layout.nullBlockCount..<words
            let buffer = UnsafeBufferPointer(
                start: destination.assumingMemoryBound(to: UInt64.self) + usable.lowerBound, count: usable.count)
            let tree = geometry.tree
            var census = BuddyCensus(tree: tree)
            let censusTime = median { census = BuddyCensus(tree: tree, words: buffer) }
            var snapshot: CacheSnapshot?
            let wordsSnapshot = median { snapshot = try? inspector.snapshot(readingAllocations: false) }
            let statisticsTime = median { _ = CacheStatistics(snapshot!, threads: 1) }
            let threads = CacheStatistics.defaultThreads
            let parallelTime = median { _ = CacheStatistics(snapshot!, threads: threads) }
            // A live view's refresh: 1 % of the blocks changed since the previous snapshot.
            let earlier = snapshot!
            let earlierStatistics = CacheStatistics(earlier)
            for step in 0..<(words / 100) { _ = try? cache.allocate(16 + step % 900) }
            let later = try failingWithOneLine { () throws(InspectError) in try inspector.snapshot(readingAllocations: false) }
            let changed = SnapshotRates(from: earlier, to: later).blocksChanged
            let incrementalTime = median { _ = CacheStatistics(later, updating: earlierStatistics, of: earlier) }
            let scanTime = median(runs: 3) { _ = try? inspector.snapshot(readingAllocations: true) }

            var table = [("memcpy of the words (\(ByteCount(words * 8)))", copy)]
            table.append(("census pass (BuddyCensus)", censusTime))
            table.append(("CacheStatistics, 1 thread", statisticsTime))
            table.append(("CacheStatistics, \(threads) threads", parallelTime))
            table.append(("incremental update, \(changed) blocks changed", incrementalTime))
            table.append(("snapshot, words only (pread)", wordsSnapshot))
            table.append(("snapshot with allocation header scan", scanTime))
            for (name, seconds) in table {
                let padded = name.padding(toLength: 42, withPad: " ", startingAt: 0)
                print(padded + String(format: "%9.3f ms  %6.2f ns/block  %6.2fx memcpy", seconds * 1e3,
                                      seconds * 1e9 / Double(words), seconds / copy))
            }
            print("allocations held: \(held), live allocations counted: \(census.allocationsByOrder.reduce(0, +)), invalid words: \(census.invalidWords)")
        }

        /// Fills the cache with path-sized allocations to `fill`, then frees every other one at random.
        private func age(_ cache: SharedCache) -> Int {
            var random = SplitMix64(seed: 42)
            var offsets: [ShmOffset] = []
            let target = Int(Double(cache.geometry.capacity) * fill)
            var allocated = 0
            while allocated < target {
                let size = PathNames.path(seed: random.next()).count
                guard let offset = try? cache.allocate(size) else { break }
                offsets.append(offset)
                allocated += cache.geometry.nodeSize(ofOrder: cache.geometry.order(forRequest: size)!)
            }
            offsets.shuffle(using: &random)
            for offset in offsets[..<(offsets.count / 2)] { try? cache.free(offset) }
            return offsets.count - offsets.count / 2
        }

        private func median(runs: Int? = nil, _ body: () -> Void) -> Double {
            body()   // warm-up
            let times = (0..<(runs ?? self.runs)).map { _ in
                let start = ContinuousClock.now
                body()
                return Double((ContinuousClock.now - start) / .nanoseconds(1)) / 1e9
            }.sorted()
            return times[times.count / 2]
        }
    }
}
