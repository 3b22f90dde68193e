// Threads of one process: random churn with a small live set per thread, against glibc in the
// same run, and how the total throughput grows from one thread to two.

import Foundation
import ShmAlloc
import ShmSystem
import ShmWorkloads

/// The `threads` group: each POSIX thread keeps `liveCount` allocations of random 1..1000 B live
/// and churns them (free one at random, allocate a new random size), in one 512 MiB cache.
///
/// Unlike the pairs, about half of these requests need a whole block (the 8-byte header pushes
/// 505..1000 B to 1 KiB), which the thread's cursor block cannot serve: they go through the
/// index, and their frees list whole blocks again. That is the path this group measures.
struct ThreadsBenchmark {
    let runs: Int
    let scratch: Scratch
    static let liveCount = 64
    static let threadCounts = [1, 2]
    /// Churn before the timed window: fills the live sets and brings the cache, index and
    /// cursors to their steady state.
    static let warmupMilliseconds = 100
    static let milliseconds = 300
    /// Steps between clock reads.
    static let batch = 1024
    static let section =
        "threads of one process, random 1..1000 B churn, 64 live per thread, "
        + "total throughput (op = one free + one malloc)"

    func run(into table: inout ResultTable) throws {
        let cache = try scratch.cache(capacity: 512 << 20)
        defer { scratch.remove(cache) }
        let shm = ShmPairAllocator(cache: cache)
        let glibc = GlibcPairAllocator()
        // Each run measures every configuration once, so load from elsewhere on the machine
        // spreads over all of them instead of skewing one.
        var shmRates: [Int: [Double]] = [:]
        var glibcRates: [Int: [Double]] = [:]
        for _ in 0..<runs {
            for threads in Self.threadCounts {
                shmRates[threads, default: []].append(Self.throughput(shm, threads: threads))
                glibcRates[threads, default: []].append(Self.throughput(glibc, threads: threads))
            }
        }
        let shmRate = shmRates.mapValues(median)
        let glibcRate = glibcRates.mapValues(median)

        for threads in Self.threadCounts {
            // Time per op against glibc: the inverse of the throughputs.
            let perOp = medianRatio(glibcRates[threads]!, shmRates[threads]!)
            let hasTarget = threads == 1
            table.add(
                ResultRow(
                    section: Self.section, workload: "shm, \(Self.threads(threads))", value: shmRate[threads]!,
                    unit: "M/s",
                    baseline: glibcRate[threads]!, baselineName: "glibc", ratio: perOp, ratioName: "glibc time/op",
                    target: hasTarget ? "≤ 3× glibc time/op" : nil, met: hasTarget ? perOp <= 3 : nil))
        }
        for threads in Self.threadCounts {
            table.add(
                ResultRow(
                    section: Self.section, workload: "glibc, \(Self.threads(threads))", value: glibcRate[threads]!,
                    unit: "M/s"))
        }
        let shmScaling = medianRatio(shmRates[2]!, shmRates[1]!)
        table.add(
            ResultRow(
                section: Self.section, workload: "shm, 2 threads / 1 thread", value: shmScaling, unit: "×",
                target: "≥ 1.8×", met: shmScaling >= 1.8))
        // glibc's threads share nothing, so its scaling is the machine's: well below 2× means
        // other work held a core, and the shm scaling of the same run is not to be trusted.
        // The repair pass a failing search may run (at most once a second per cache): every
        // word read, every listing checked, on this cache as the churn left it.
        let repairs = (0..<runs).map { _ in
            let start = SystemClock.monotonicNanoseconds()
            cache.repairIndex()
            return Double(SystemClock.monotonicNanoseconds() - start) / 1e6
        }
        table.add(
            ResultRow(
                section: Self.section, workload: "repair pass of the free-space index, 512 MiB", value: median(repairs),
                unit: "ms"))
        table.add(
            ResultRow(
                section: Self.section, workload: "glibc, 2 threads / 1 thread (the machine's own scaling)",
                value: medianRatio(glibcRates[2]!, glibcRates[1]!), unit: "×"))
    }

    static func threads(_ count: Int) -> String { count == 1 ? "1 thread" : "\(count) threads" }

    /// Million ops per second, summed over `threads` threads that churn at once, each with its own
    /// live set and draws. Each thread times its own window, so a late start does not count
    /// against the others.
    static func throughput<Allocator: PairAllocator>(_ allocator: Allocator, threads: Int) -> Double {
        let startAt = SystemClock.monotonicNanoseconds() + UInt64(warmupMilliseconds) * 1_000_000
        let endAt = startAt + UInt64(milliseconds) * 1_000_000
        let rates = onThreads(threads) { thread in
            var live = [UnsafeMutableRawPointer?](repeating: nil, count: liveCount)
            let seed = 42 + 2 * UInt64(thread)
            let sizes = randomSizes(1...1000, seed: seed)
            let victims = randomSizes(0...(liveCount - 1), seed: seed + 1)
            var step = 0
            func churn(until deadline: UInt64) {
                while SystemClock.monotonicNanoseconds() < deadline {
                    PairBenchmarks.replace(
                        allocator, live: &live, sizes: sizes, victims: victims, steps: step..<step + batch)
                    step += batch
                }
            }
            churn(until: startAt)
            let start = SystemClock.monotonicNanoseconds()
            let firstStep = step
            churn(until: endAt)
            let rate = Double(step - firstStep) * 1e3 / Double(SystemClock.monotonicNanoseconds() - start)
            live.forEach(allocator.free)
            return rate
        }
        return rates.reduce(0, +)
    }
}
