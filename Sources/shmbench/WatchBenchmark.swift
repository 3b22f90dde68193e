// A live view's refresh on the demo's load, driven in lockstep so that every run sees the same
// changes: 4 writer processes (the demo's workload, each its own owner) do a tenth of a second's
// operations at 50 000 a second each, one after the other, then the watcher refreshes once as
// `shmtop watch` does (ShmInspect's LiveRefresh: words compared, owner ledger and census brought
// up to date, path cache slice walked, owner census and statistics made), and so on. Under
// callgrind or cachegrind, which follow only this process, `--toggle-collect='*WatchBenchmark*refresh*'`
// counts the refreshes alone.

import ArgumentParser
import Foundation
import ShmAlloc
import ShmInspect
import ShmSystem
import ShmWorkloads

/// The `watch` group: the CPU time of one refresh of a 512 MiB cache under the demo's load, with
/// the blocks it found changed.
struct WatchBenchmark {
    let runs: Int
    let scratch: Scratch

    /// Refreshes a second, as `shmtop watch` makes them by default.
    static let refreshRate = 10
    /// The time between two refreshes, which a pass over the words is sized to.
    static let interval = Duration.seconds(1) / refreshRate
    /// Each writer's operations per second, as `scripts/watch-cost.sh` runs the load.
    static let writerRate = 50_000
    /// Writer processes, as the demo starts them.
    static let writers = 4
    /// Refreshes before the measured ones: the writers' first cycle, which fills the cache to
    /// about a million live allocations and empties it again.
    static let warmUpRefreshes = 80
    /// Refreshes measured at least: half a cycle, the cache filling, then emptying.
    static let measuredRefreshes = 40

    func run(into table: inout ResultTable) throws {
        let cache = try scratch.cache(capacity: 512 << 20)
        defer { scratch.remove(cache) }
        let writers = try (0..<Self.writers).map { try Writer(path: cache.path, index: $0) }
        var watcher = try Watcher(path: cache.path)
        let evictor = CacheEvictor(bytes: 64 << 20)
        var seconds: [Double] = []
        var changedBlocks: [Double] = []
        var allChanged = 0
        let refreshes = Self.warmUpRefreshes + max(runs, Self.measuredRefreshes)
        for step in 0..<refreshes {
            for writer in writers { try writer.step(elapsed: Double(step) / Double(Self.refreshRate)) }
            // The writers ran on other cores meanwhile: the watcher finds its own data out of cache.
            evictor.evict()
            // CPU time, as scripts/watch-cost.sh counts it: the time waited for a core on a shared
            // machine is not the refresh's.
            let start = SystemClock.threadCPUNanoseconds()
            let changed = try watcher.refresh()
            allChanged += changed
            guard step >= Self.warmUpRefreshes else { continue }
            seconds.append(Double(SystemClock.threadCPUNanoseconds() - start) / 1e9)
            changedBlocks.append(Double(changed))
        }
        for writer in writers { try writer.finish() }
        let perRefresh = median(seconds)
        let changed = median(changedBlocks)
        let section = "watcher refresh, 512 MiB cache, demo load (4 writers × 50 000/s, 10 Hz)"
        // Every refresh's changes, warm-up included: what a profile of all refreshes divides by.
        table.add(
            ResultRow(
                section: section,
                workload: "refresh (median \(Int(changed)) blocks changed; \(allChanged) in all \(refreshes))",
                value: perRefresh * 1e3, unit: "ms"))
        // Caches flushed before each refresh and no view drawn: not the README's figure, which
        // scripts/watch-cost.sh measures on the running watcher.
        table.add(
            ResultRow(
                section: section, workload: "share of a core at 10 Hz, refreshes alone",
                value: perRefresh * Double(Self.refreshRate) * 100,
                unit: "%"))
        table.add(
            ResultRow(
                section: section, workload: "per changed block", value: perRefresh * 1e9 / max(changed, 1), unit: "ns"))
    }

    /// `shmtop watch`'s refresh without the view: ShmInspect's ``LiveRefresh``, the one the
    /// view's sampler makes, with each owner's rates over this refresh alone (the view's rate
    /// window and histories are the view's).
    struct Watcher {
        var live: LiveRefresh

        init(path: String) throws(InspectError) {
            live = try LiveRefresh(inspector: try CacheInspector(path: path))
            _ = try live.refresh(interval: WatchBenchmark.interval)
        }

        /// One refresh; returns the blocks that changed.
        @inline(never)
        mutating func refresh() throws(InspectError) -> Int {
            let step = try live.refresh(interval: WatchBenchmark.interval)
            let changes = step.changes!
            let statistics = try live.statistics(
                ownerRates: OwnerRates(activity: step.activity, seconds: changes.rates.seconds))
            withExtendedLifetime(statistics) {}
            return changes.blocks.count
        }
    }

    /// A buffer larger than the last-level cache, read through to push out what is cached.
    final class CacheEvictor {
        private let buffer: UnsafeMutableRawBufferPointer

        init(bytes: Int) {
            buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes, alignment: 64)
            buffer.initializeMemory(as: UInt8.self, repeating: 1)
        }

        deinit { buffer.deallocate() }

        /// Touches one word per cache line of the buffer.
        @inline(never)
        func evict() {
            var sum: UInt64 = 0
            for offset in stride(from: 0, to: buffer.count, by: 64) {
                sum &+= buffer.load(fromByteOffset: offset, as: UInt64.self)
            }
            buffer.storeBytes(of: sum, toByteOffset: 0, as: UInt64.self)
        }
    }

    /// One writer process of the load, run a step at a time (see ``ShmBench/WatchWriter``),
    /// through pipes of its own (a tool such as valgrind keeps descriptors of its own, which a
    /// spawn that closes every other descriptor trips over).
    final class Writer {
        private let child: ChildProcess
        /// The writer's input: one line per step.
        private let steps: Int32
        /// The writer's output: one byte per step done.
        private let done: Int32

        init(path: String, index: Int) throws {
            let input = try ChildProcess.makePipe()
            let output = try ChildProcess.makePipe()
            child = try ChildProcess.spawn(
                ChildProcess.currentExecutable,
                ["watch-writer", "--file", path, "--index", String(index), "--writers", String(writers)],
                standardOutput: output.write, standardInput: input.read)
            close(input.read)
            close(output.write)
            steps = input.write
            done = output.read
        }

        /// Has the writer do its operations of one refresh interval, `elapsed` seconds into the load.
        func step(elapsed: Double) throws {
            let line = Array("\(elapsed)\n".utf8)
            var byte: UInt8 = 0
            guard write(steps, line, line.count) == line.count, read(done, &byte, 1) == 1 else {
                throw ValidationFailure("watch-writer ended early")
            }
        }

        /// Ends the writer (it exits at the end of its input) and waits for it.
        func finish() throws {
            close(steps)
            close(done)
            let termination = child.wait()
            guard termination.isSuccess else { throw ValidationFailure("watch-writer: \(termination)") }
        }
    }
}

extension ShmBench {
    /// One writer of the `watch` group: for each line of its input (seconds into the load), does
    /// one refresh interval's operations of the demo's workload, then writes one byte.
    struct WatchWriter: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "watch-writer", shouldDisplay: false)
        @Option var file: String
        @Option var index: Int
        @Option var writers: Int

        func run() throws {
            let cache = try SharedCache(path: file, policy: .attach)
            var workload = Workload(
                cache: cache, index: index, parameters: Workload.Parameters(writers: writers, fill: 0.7, period: 8))
            while let line = readLine(), let elapsed = Double(line) {
                workload.step(operations: WatchBenchmark.writerRate / WatchBenchmark.refreshRate, elapsed: elapsed)
                try FileHandle.standardOutput.write(contentsOf: Data(".".utf8))
            }
        }
    }
}
