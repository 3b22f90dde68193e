// malloc+free pairs in one process, against glibc in the same run; and 1 vs 2 processes.

import Foundation
import ShmAlloc
import ShmFormat

/// Pair cost: allocate, touch one byte, free — in a tight loop.
struct PairBenchmarks {
    let runs: Int
    let scratch: Scratch
    static let pairsPerRun = 2_000_000

    func run(into table: inout ResultTable) throws {
        let cache = try scratch.cache(capacity: 64 << 20)
        defer { scratch.remove(cache) }
        let workloads: [(String, [Int], String?, String)] = [
            ("pair, 24 B", [24], "50–62 ns", "≤ 3× glibc"),
            ("pair, random 1..1000 B", randomSizes(1...1000), "70–90 ns", "≤ 3× glibc"),
        ]
        for (name, sizes, original, target) in workloads {
            let shm = median((0..<runs).map { _ in Self.shmPairs(cache, sizes: sizes, count: Self.pairsPerRun) })
            let glibc = median((0..<runs).map { _ in Self.glibcPairs(sizes: sizes, count: Self.pairsPerRun) })
            table.add(ResultRow(
                section: "malloc+free pairs, one process", workload: name, value: shm, unit: "ns",
                baseline: glibc, baselineName: "glibc", ratio: shm / glibc, ratioName: "glibc",
                target: target, met: name.contains("random") ? shm / glibc <= 3 : nil, original: original))
        }
        // The same pairs with 1024 allocations live: each new one replaces the oldest, so blocks are
        // shared by many allocations and every claim runs the best-fit search.
        let sizes = randomSizes(1...1000)
        let shm = median((0..<runs).map { _ in Self.shmRing(cache, sizes: sizes, count: Self.pairsPerRun) })
        let glibc = median((0..<runs).map { _ in Self.glibcRing(sizes: sizes, count: Self.pairsPerRun) })
        table.add(ResultRow(
            section: "malloc+free pairs, one process", workload: "pair, random 1..1000 B, 1024 live", value: shm,
            unit: "ns", baseline: glibc, baselineName: "glibc", ratio: shm / glibc, ratioName: "glibc"))
    }

    static let ringSize = 1024

    /// Nanoseconds per free-oldest + allocate-new step, with `ringSize` allocations live.
    static func shmRing(_ cache: SharedCache, sizes: [Int], count: Int) -> Double {
        var ring = [ShmOffset](repeating: .null, count: ringSize)
        let start = nowNanoseconds()
        for iteration in 0..<count {
            let slot = iteration & (ringSize - 1)
            try? cache.free(ring[slot])
            ring[slot] = (try? cache.allocate(sizes[iteration & (sizes.count - 1)])) ?? .null
        }
        let elapsed = nowNanoseconds() - start
        for offset in ring { try? cache.free(offset) }
        return Double(elapsed) / Double(count)
    }

    /// The same ring with glibc.
    static func glibcRing(sizes: [Int], count: Int) -> Double {
        var ring = [UnsafeMutableRawPointer?](repeating: nil, count: ringSize)
        let start = nowNanoseconds()
        for iteration in 0..<count {
            let slot = iteration & (ringSize - 1)
            free(ring[slot])
            ring[slot] = malloc(sizes[iteration & (sizes.count - 1)]).map(escape)
        }
        let elapsed = nowNanoseconds() - start
        ring.forEach { free($0) }
        return Double(elapsed) / Double(count)
    }

    /// Nanoseconds per shm allocate+free pair.
    static func shmPairs(_ cache: SharedCache, sizes: [Int], count: Int) -> Double {
        let mask = sizes.count - 1
        precondition(sizes.count.isPowerOfTwo)
        var touched: UInt8 = 0
        let start = nowNanoseconds()
        sizes.withUnsafeBufferPointer { sizes in
            for iteration in 0..<count {
                guard let pointer = try? cache.allocatePointer(sizes[iteration & mask]) else { continue }
                pointer.storeBytes(of: UInt8(truncatingIfNeeded: iteration), as: UInt8.self)
                touched &+= escape(pointer).load(as: UInt8.self)
                try? cache.free(pointer: pointer)
            }
        }
        let elapsed = nowNanoseconds() - start
        blackHole(touched)
        return Double(elapsed) / Double(count)
    }

    /// Nanoseconds per glibc malloc+free pair of the same sizes.
    static func glibcPairs(sizes: [Int], count: Int) -> Double {
        let mask = sizes.count - 1
        var touched: UInt8 = 0
        let start = nowNanoseconds()
        sizes.withUnsafeBufferPointer { sizes in
            for iteration in 0..<count {
                guard let pointer = malloc(sizes[iteration & mask]) else { continue }
                pointer.storeBytes(of: UInt8(truncatingIfNeeded: iteration), as: UInt8.self)
                touched &+= escape(pointer).load(as: UInt8.self)
                free(pointer)
            }
        }
        let elapsed = nowNanoseconds() - start
        blackHole(touched)
        return Double(elapsed) / Double(count)
    }
}

/// Hands a pointer through a call the optimiser cannot see into, so it cannot pair up and delete
/// a malloc and its free. Both allocators' loops pay for the same call.
@inline(never)
func escape(_ pointer: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
    escapedPointer = pointer
    return pointer
}
/// Written by `escape`; read by nobody, so only the store is paid for. Benchmarks are single-threaded.
nonisolated(unsafe) var escapedPointer: UnsafeMutableRawPointer?

/// Keeps a value alive so the optimiser cannot delete the loop that made it.
@inline(never)
func blackHole<T>(_ value: T) { withExtendedLifetime(value) {} }

/// Total throughput of one and of two processes running random 1..1000 B pairs at once.
struct ScalingBenchmark {
    let runs: Int
    let scratch: Scratch
    static let milliseconds = 500

    func run(into table: inout ResultTable) throws {
        let cache = try scratch.cache(capacity: 64 << 20)
        defer { scratch.remove(cache) }
        for allocator in ["shm", "glibc"] {
            let one = median(try (0..<runs).map { _ in try throughput(processes: 1, allocator: allocator, path: cache.path) })
            let two = median(try (0..<runs).map { _ in try throughput(processes: 2, allocator: allocator, path: cache.path) })
            let section = "scaling, random 1..1000 B pairs, total throughput"
            table.add(ResultRow(section: section, workload: "\(allocator), 1 process", value: one, unit: "M/s",
                                original: allocator == "shm" ? "11 M/s" : nil))
            table.add(ResultRow(
                section: section, workload: "\(allocator), 2 processes", value: two, unit: "M/s",
                baseline: one, baselineName: "1 proc", ratio: two / one, ratioName: "1 proc",
                target: allocator == "shm" ? "≥ 1.7× 1 process" : nil, met: allocator == "shm" ? two / one >= 1.7 : nil,
                original: allocator == "shm" ? "5–10 M/s" : nil))
        }
    }

    /// Million pairs per second summed over `processes` worker processes started together.
    func throughput(processes: Int, allocator: String, path: String) throws -> Double {
        let startAt = nowNanoseconds() + 100_000_000
        let workers = try (0..<processes).map { _ in
            let worker = Process()
            worker.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            worker.arguments = ["pair-worker", "--file", path, "--allocator", allocator,
                                "--start-at", String(startAt), "--milliseconds", String(Self.milliseconds)]
            let output = Pipe()
            worker.standardOutput = output
            try worker.run()
            return (worker, output)
        }
        var pairs = 0
        for (worker, output) in workers {
            let data = output.fileHandleForReading.readDataToEndOfFile()
            worker.waitUntilExit()
            guard worker.terminationStatus == 0,
                  let count = Int(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
            else { throw ValidationFailure("pair worker failed (status \(worker.terminationStatus))") }
            pairs += count
        }
        return Double(pairs) / (Double(Self.milliseconds) / 1000) / 1e6
    }
}

struct ValidationFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

import ArgumentParser

extension ShmBench {
    /// One process of the scaling benchmark: waits for the common start, runs pairs for a fixed
    /// time, prints how many it did.
    struct PairWorker: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "pair-worker", shouldDisplay: false)
        @Option var file: String
        @Option var allocator: String
        @Option var startAt: UInt64
        @Option var milliseconds: Int

        func run() throws {
            let sizes = randomSizes(1...1000, seed: UInt64(getpid()))
            let cache = try SharedCache(path: file, policy: .attach)
            while nowNanoseconds() < startAt {}
            let end = startAt + UInt64(milliseconds) * 1_000_000
            var pairs = 0
            let batch = 4096
            while nowNanoseconds() < end {
                _ = allocator == "shm"
                    ? PairBenchmarks.shmPairs(cache, sizes: sizes, count: batch)
                    : PairBenchmarks.glibcPairs(sizes: sizes, count: batch)
                pairs += batch
            }
            print(pairs)
        }
    }
}
