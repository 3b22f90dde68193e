// `shmbench`: the allocator's benchmark suite. Build and run it in release:
//
//     swift run -c release shmbench            # the table
//     swift run -c release shmbench --json     # the same figures for machines
//
// Every figure is the median of several runs; glibc's malloc/free runs the same workload in the
// same process, so ratios compare like with like on whatever machine this runs on.

import ArgumentParser
import Foundation
import ShmAlloc
import ShmFormat

@main
struct ShmBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shmbench",
        abstract: "Benchmark the shared-memory allocator against glibc malloc, and its path cache.",
        subcommands: [Run.self, PairWorker.self, PathWorker.self, WatchWriter.self],
        defaultSubcommand: Run.self
    )
}

extension ShmBench {
    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run", abstract: "Run the suite and print the table.")

        @Flag(help: "Print JSON instead of a table.")
        var json = false
        @Option(help: "Runs per figure (the median is reported).")
        var runs = 5
        @Option(help: "Directory for the cache files (tmpfs is best).")
        var directory = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        @Flag(help: "Skip the 4 GiB aged-cache figures (they need about 4 GiB of memory and a few seconds).")
        var skipLarge = false
        @Option(
            help:
                "Run only these groups (pairs, threads, scaling, aged, placement, stats, watch, startup, paths); all by default."
        )
        var only: [Group] = Group.allCases
        @Option(help: "The C library the startup group preloads (default: libshm_alloc.so beside shmbench).")
        var library = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("libshm_alloc.so").path

        enum Group: String, CaseIterable, ExpressibleByArgument {
            case pairs, threads, scaling, aged, placement, stats, watch, startup, paths
        }

        func run() throws {
            var table = ResultTable()
            let scratch = Scratch(directory: directory)
            defer { scratch.removeAll() }

            if only.contains(.pairs) { try PairBenchmarks(runs: runs, scratch: scratch).run(into: &table) }
            if only.contains(.threads) { try ThreadsBenchmark(runs: runs, scratch: scratch).run(into: &table) }
            if only.contains(.scaling) { try ScalingBenchmark(runs: runs, scratch: scratch).run(into: &table) }
            if only.contains(.aged) {
                for capacity in skipLarge ? [64 << 20] : [64 << 20, 4 << 30] {
                    try AgedCacheBenchmark(capacity: capacity, runs: runs, scratch: scratch).run(into: &table)
                }
            }
            if only.contains(.placement) { try PlacementBenchmark(runs: runs, scratch: scratch).run(into: &table) }
            if only.contains(.stats) { try StatsBenchmark(runs: runs, scratch: scratch).run(into: &table) }
            if only.contains(.watch) { try WatchBenchmark(runs: runs, scratch: scratch).run(into: &table) }
            if only.contains(.startup) {
                try StartupBenchmark(runs: runs, scratch: scratch, library: library).run(into: &table)
            }
            if only.contains(.paths) { try PathBenchmarks(runs: runs, scratch: scratch).run(into: &table) }
            Self.addMetadataOverhead(to: &table)
            print(json ? table.json() : table.text(machine: MachineDescription.current))
        }
    }
}

extension ShmBench.Run {
    /// Header, buddy words and free-space index as a share of capacity, at the default block
    /// geometry, for a small and a large cache.
    static func addMetadataOverhead(to table: inout ResultTable) {
        for capacity in [64 << 20, 512 << 20, 64 << 30] {
            let geometry = try! Geometry(minSize: 32, maxSize: 1024, capacity: capacity)
            let layout = try! FileLayout(geometry: geometry, pageSize: 4096)
            let metadata = layout.dataOffset
            table.add(
                ResultRow(
                    section: "memory", workload: "metadata (header, words, index), \(ByteCount(capacity))",
                    value: Double(metadata) * 100 / Double(capacity), unit: "%", target: "≤ 1 %",
                    met: Double(metadata) <= Double(capacity) / 100))
        }
    }
}

/// Cache files made for one run, removed at the end.
final class Scratch {
    let directory: String
    private var paths: [String] = []
    init(directory: String) { self.directory = directory }

    /// A fresh cache of `capacity` bytes with the default block geometry.
    func cache(capacity: Int) throws -> SharedCache {
        let path = "\(directory)/shmbench-\(getpid())-\(paths.count).shm"
        paths.append(path)
        unlink(path)
        let geometry = try Geometry(minSize: 32, maxSize: 1024, capacity: capacity)
        return try SharedCache(path: path, policy: .require(geometry))
    }

    /// Removes one cache file now (its pages go back to the system once unmapped).
    func remove(_ cache: SharedCache) { unlink(cache.path) }

    func removeAll() { for path in paths { unlink(path) } }
}

/// What the table says about the machine it ran on.
enum MachineDescription {
    static var current: String {
        let cpu =
            (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
        let memory = ProcessInfo.processInfo.physicalMemory >> 30
        return "\(cpu), \(ProcessInfo.processInfo.activeProcessorCount) cores, \(memory) GiB"
    }
}
