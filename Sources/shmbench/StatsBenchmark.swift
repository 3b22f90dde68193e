// The inspector's statistics pass on an aged 1 GiB cache, against `memcpy` of its words (the
// inspector's target: at most 3× the copy). The measuring is `ShmInspect.StatisticsBenchmark`,
// the same code as `shmtop bench-stats`.

import ShmAlloc
import ShmFormat
import ShmInspect

/// The `stats` group: one row with the pass per block, the copy, the ratio and the target, and
/// one row for the pass on a single thread.
struct StatsBenchmark {
    let runs: Int
    let scratch: Scratch

    func run(into table: inout ResultTable) throws {
        let cache = try scratch.cache(capacity: 1 << 30)
        defer { scratch.remove(cache) }
        var random = SplitMix64(seed: 42)
        var sizes = SplitMix64(seed: 43)
        _ = StatisticsBenchmark.age(
            capacity: cache.geometry.capacity, fill: 0.8, random: &random, requestSize: { sizes.uniform(8...1016) },
            allocate: { size in
                (try? cache.allocate(size)).map { ($0, cache.geometry.nodeSize(ofOrder: cache.geometry.order(forRequest: size)!)) }
            },
            free: { try? cache.free($0) })
        let benchmark = try StatisticsBenchmark(path: cache.path, runs: max(runs, 9))

        let section = "inspector statistics pass, 1 GiB"
        func perBlock(_ seconds: Double) -> Double { seconds * 1e9 / Double(benchmark.blockCount) }
        table.add(ResultRow(
            section: section, workload: "statistics pass per block (\(benchmark.threads) threads, as snapshot)",
            value: perBlock(benchmark.statisticsSeconds), unit: "ns", baseline: perBlock(benchmark.copySeconds),
            baselineName: "memcpy", ratio: benchmark.ratio, ratioName: "memcpy", target: "≤ 3× memcpy",
            met: benchmark.ratio <= 3))
        table.add(ResultRow(
            section: section, workload: "statistics pass per block (1 thread)", value: perBlock(benchmark.singleThreadSeconds),
            unit: "ns", baseline: perBlock(benchmark.copySeconds), baselineName: "memcpy",
            ratio: benchmark.singleThreadSeconds / benchmark.copySeconds, ratioName: "memcpy"))
    }
}
