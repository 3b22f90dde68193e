// Fill-level benchmarks: allocation cost in an aged cache (issue: fill independence) and how full
// a cache gets before the first failure, and how often churn fails (issue: placement).

import Foundation
import ShmAlloc
import ShmFormat
import ShmInspect
import ShmSystem
import ShmWorkloads

/// The live allocations of a benchmark and the rounded bytes they hold.
struct LiveSet {
    let cache: SharedCache
    let sizes: ClosedRange<Int>
    var random: SplitMix64
    private(set) var offsets: [ShmOffset] = []
    private var nodeBytes: [Int] = []
    private(set) var roundedBytes = 0

    init(cache: SharedCache, sizes: ClosedRange<Int>, seed: UInt64) {
        self.cache = cache
        self.sizes = sizes
        self.random = SplitMix64(seed: seed)
        offsets.reserveCapacity(cache.geometry.blockCount * 2)
        nodeBytes.reserveCapacity(cache.geometry.blockCount * 2)
    }

    /// Allocated share of the allocatable bytes (the null region excluded), in percent.
    var fillPercent: Double {
        Double(roundedBytes) * 100 / Double(cache.geometry.capacity - cache.layout.nullRegionLength)
    }

    /// Allocates one random size; false when the cache had no room.
    @inline(__always)
    mutating func allocate() -> Bool {
        let size = random.uniform(sizes)
        guard let offset = try? cache.allocate(size) else { return false }
        offsets.append(offset)
        let bytes = cache.geometry.nodeSize(forRequest: size)!
        nodeBytes.append(bytes)
        roundedBytes += bytes
        return true
    }

    /// Frees one live allocation chosen at random.
    @inline(__always)
    mutating func freeRandom() {
        let index = random.uniform(0...(offsets.count - 1))
        try! cache.free(offsets[index])
        roundedBytes -= nodeBytes[index]
        offsets.swapAt(index, offsets.count - 1)
        nodeBytes.swapAt(index, nodeBytes.count - 1)
        offsets.removeLast()
        nodeBytes.removeLast()
    }

    /// Allocates until the first failure; returns the fill reached.
    mutating func fillUntilFirstFailure() -> Double {
        while allocate() {}
        return fillPercent
    }

    /// Frees at random until the fill is at most `percent`.
    mutating func drain(toPercent percent: Double) {
        while !offsets.isEmpty, fillPercent > percent { freeRandom() }
    }

    /// Frees `batch` random allocations (untimed), then allocates `batch` (timed).
    /// - Returns: nanoseconds spent in the allocations, and how many failed.
    mutating func churnBatch(_ batch: Int) -> (nanoseconds: UInt64, failures: Int) {
        for _ in 0..<min(batch, offsets.count) { freeRandom() }
        var failures = 0
        let start = SystemClock.monotonicNanoseconds()
        for _ in 0..<batch where !allocate() { failures += 1 }
        return (SystemClock.monotonicNanoseconds() - start, failures)
    }
}

/// Mean malloc cost in an aged cache at several fill levels, against the cost at 0 %.
struct AgedCacheBenchmark {
    let capacity: Int
    let runs: Int
    let scratch: Scratch
    static let batch = 2000
    /// The fill levels the target (mean malloc cost ≤ 3× the cost at 0 %) is stated for.
    static let targetLevels: Set<Double> = [90, 50, 0]

    func run(into table: inout ResultTable) throws {
        let cache = try scratch.cache(capacity: capacity)
        defer { scratch.remove(cache) }
        var live = LiveSet(cache: cache, sizes: 1...1000, seed: 7)
        let firstFailure = live.fillUntilFirstFailure()
        // Failing is fast too: with no block left that fits, a request costs a walk down the index.
        let failingRequests = 10_000
        let failStart = SystemClock.monotonicNanoseconds()
        for _ in 0..<failingRequests { _ = try? cache.allocate(cache.geometry.largestRequest) }
        let failCost = Double(SystemClock.monotonicNanoseconds() - failStart) / Double(failingRequests)
        let section =
            "aged cache, \(ByteCount(capacity)): mean malloc cost (filled to the first failure at "
            + String(format: "%.1f %%", firstFailure) + ", freed at random down to each level, churned)"
        var costs: [(Double, Double)] = []
        for level in [99.0, 90, 50, 0] where level <= firstFailure {
            live.drain(toPercent: level)
            var samples: [Double] = []
            for _ in 0..<max(runs, 5) {
                let (nanoseconds, _) = live.churnBatch(Self.batch)
                samples.append(Double(nanoseconds) / Double(Self.batch))
                live.drain(toPercent: level)
            }
            costs.append((level, median(samples)))
        }
        let empty = costs.last!.1
        table.add(
            ResultRow(
                section: section, workload: "failed malloc (no block fits)", value: failCost, unit: "ns",
                original: capacity == 64 << 20 ? "scans every block" : nil))
        let originals = [
            99.0: "50 µs", 90: "40 µs", 50: capacity == 64 << 20 ? "15–20 µs" : "70–100 µs (512 MiB)", 0: "99 ns",
        ]
        for (level, cost) in costs {
            // The fill-independence target names the levels 90, 50 and 0 %; 99 % is measured
            // beside them, as the original's reference table has it, without a target.
            let hasTarget = Self.targetLevels.contains(level)
            table.add(
                ResultRow(
                    section: section, workload: String(format: "malloc at %.0f %% fill", level), value: cost,
                    unit: "ns",
                    baseline: empty, baselineName: "at 0 %", ratio: cost / empty, ratioName: "0 %",
                    target: hasTarget ? "≤ 3× 0 %" : nil, met: hasTarget ? cost / empty <= 3 : nil,
                    original: capacity == 64 << 20 || level == 50 ? originals[level] : nil))
        }
    }
}

/// Fill before the first failure, and failure rates while churning near full.
struct PlacementBenchmark {
    let runs: Int
    let scratch: Scratch
    static let churnOperations = 200_000

    func run(into table: inout ResultTable) throws {
        for capacity in [64 << 20, 512 << 20] {
            let section = "placement, \(ByteCount(capacity)), uniform 1..1016 B"
            var fills: [Double] = []
            var failureRates: [Double: [Double]] = [:]
            for run in 0..<runs {
                let cache = try scratch.cache(capacity: capacity)
                defer { scratch.remove(cache) }
                var live = LiveSet(cache: cache, sizes: 1...1016, seed: UInt64(run + 1))
                fills.append(live.fillUntilFirstFailure())
                for level in [95.0, 90] where capacity == 64 << 20 {
                    live.drain(toPercent: level)
                    var failures = 0
                    for _ in 0..<Self.churnOperations {
                        if live.fillPercent >= level { live.freeRandom() }
                        if !live.allocate() { failures += 1 }
                    }
                    failureRates[level, default: []].append(Double(failures) * 100 / Double(Self.churnOperations))
                }
            }
            let fill = median(fills)
            table.add(
                ResultRow(
                    section: section, workload: "fill at the first failed malloc", value: fill, unit: "%",
                    target: "≥ 97 %", met: fill >= 97, original: "83.2 %"))
            for (level, rates) in failureRates.sorted(by: { $0.key < $1.key }) {
                let rate = median(rates)
                let target = level == 90 ? 0.5 : 3
                table.add(
                    ResultRow(
                        section: section, workload: String(format: "failed mallocs churning at %.0f %%", level),
                        value: rate,
                        unit: "%", target: String(format: "≤ %.1f %%", target), met: rate <= target,
                        original: level == 90 ? "~1 %" : nil))
            }
        }
    }
}
