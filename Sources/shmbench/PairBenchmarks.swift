// malloc+free pairs in one process, against glibc in the same run; and 1 vs 2 processes.

import ArgumentParser
import Foundation
import ShmAlloc
import ShmFormat
import ShmSystem

/// The two allocators the pair workloads compare, behind one face so each loop is written once.
/// Generic code is specialised in a release build, so the indirection costs nothing.
protocol PairAllocator {
    func allocate(_ byteCount: Int) -> UnsafeMutableRawPointer?
    func free(_ pointer: UnsafeMutableRawPointer?)
}

/// The shared-memory allocator, through its pointer wrappers.
struct ShmPairAllocator: PairAllocator {
    let cache: SharedCache
    @inline(__always) func allocate(_ byteCount: Int) -> UnsafeMutableRawPointer? {
        try? cache.allocatePointer(byteCount)
    }
    @inline(__always) func free(_ pointer: UnsafeMutableRawPointer?) { try? cache.free(pointer: pointer) }
}

/// glibc's malloc and free.
struct GlibcPairAllocator: PairAllocator {
    @inline(__always) func allocate(_ byteCount: Int) -> UnsafeMutableRawPointer? { malloc(byteCount) }
    @inline(__always) func free(_ pointer: UnsafeMutableRawPointer?) { Foundation.free(pointer) }
}

/// Pair cost: allocate, touch one byte, free — in a tight loop.
struct PairBenchmarks {
    let runs: Int
    let scratch: Scratch
    static let pairsPerRun = 2_000_000
    static let section = "malloc+free pairs, one process"

    func run(into table: inout ResultTable) throws {
        let cache = try scratch.cache(capacity: 64 << 20)
        defer { scratch.remove(cache) }
        let shm = ShmPairAllocator(cache: cache)
        let glibc = GlibcPairAllocator()
        let workloads: [(String, [Int], String?, String)] = [
            ("pair, 24 B", [24], "50–62 ns", "≤ 3× glibc"),
            ("pair, random 1..1000 B", randomSizes(1...1000), "70–90 ns", "≤ 3× glibc"),
        ]
        for (name, sizes, original, target) in workloads {
            let (shmCosts, glibcCosts) = interleaved(
                { Self.pairs(shm, sizes: sizes, count: Self.pairsPerRun) },
                { Self.pairs(glibc, sizes: sizes, count: Self.pairsPerRun) })
            let ratio = medianRatio(shmCosts, glibcCosts)
            table.add(
                ResultRow(
                    section: Self.section, workload: name, value: median(shmCosts), unit: "ns",
                    baseline: median(glibcCosts), baselineName: "glibc", ratio: ratio, ratioName: "glibc",
                    target: target, met: ratio <= 3, original: original))
        }
        // The same pairs with 1024 allocations live: each new one replaces the oldest, so blocks are
        // shared by many allocations and claims go through the best-fit search.
        let sizes = randomSizes(1...1000)
        let (shmCosts, glibcCosts) = interleaved(
            { Self.ring(shm, sizes: sizes, count: Self.pairsPerRun) },
            { Self.ring(glibc, sizes: sizes, count: Self.pairsPerRun) })
        table.add(
            ResultRow(
                section: Self.section, workload: "pair, random 1..1000 B, 1024 live", value: median(shmCosts),
                unit: "ns", baseline: median(glibcCosts), baselineName: "glibc",
                ratio: medianRatio(shmCosts, glibcCosts),
                ratioName: "glibc"))

        /// `runs` measurements of each allocator, shm then glibc within each run (each closure
        /// calls the generic loop with its concrete allocator, so both loops stay specialised).
        func interleaved(_ measureShm: () -> Double, _ measureGlibc: () -> Double) -> (shm: [Double], glibc: [Double]) {
            var shmCosts: [Double] = []
            var glibcCosts: [Double] = []
            for _ in 0..<runs {
                shmCosts.append(measureShm())
                glibcCosts.append(measureGlibc())
            }
            return (shmCosts, glibcCosts)
        }
    }

    static let ringSize = 1024
    /// The ring's replacement order as a victim table for `replace`: oldest first.
    static let ringOrder = (0..<4096).map { $0 & (ringSize - 1) }

    /// Nanoseconds per allocate + touch + free pair.
    static func pairs<Allocator: PairAllocator>(_ allocator: Allocator, sizes: [Int], count: Int) -> Double {
        precondition(sizes.count.isPowerOfTwo)
        let mask = sizes.count - 1
        var touched: UInt8 = 0
        let start = SystemClock.monotonicNanoseconds()
        sizes.withUnsafeBufferPointer { sizes in
            for iteration in 0..<count {
                guard let pointer = allocator.allocate(sizes[iteration & mask]) else { continue }
                pointer.storeBytes(of: UInt8(truncatingIfNeeded: iteration), as: UInt8.self)
                touched &+= escape(pointer).load(as: UInt8.self)
                allocator.free(pointer)
            }
        }
        let elapsed = SystemClock.monotonicNanoseconds() - start
        blackHole(touched)
        return Double(elapsed) / Double(count)
    }

    /// Nanoseconds per free-oldest + allocate-new step, with `ringSize` allocations live.
    static func ring<Allocator: PairAllocator>(_ allocator: Allocator, sizes: [Int], count: Int) -> Double {
        var ring = [UnsafeMutableRawPointer?](repeating: nil, count: ringSize)
        let start = SystemClock.monotonicNanoseconds()
        replace(allocator, live: &ring, sizes: sizes, victims: ringOrder, steps: 0..<count)
        let elapsed = SystemClock.monotonicNanoseconds() - start
        ring.forEach(allocator.free)
        return Double(elapsed) / Double(count)
    }

    /// The loop of every workload with allocations kept live: step `i` frees `live[victims[i]]`
    /// and allocates `sizes[i]` in its place (`nil` slots free nothing, so an empty `live` fills
    /// itself). Every victim must be an index of `live` (unchecked in the loop). Both tables are
    /// indexed modulo their power-of-two length, so the loop only reads arrays; `steps` continues
    /// a sequence across calls.
    ///
    /// The new pointers are stored in `live`, which the caller frees later, so the optimiser cannot
    /// pair a malloc with its free; no `escape` is needed, which keeps the loop free of shared
    /// writes when threads run it side by side.
    @inline(__always)
    static func replace<Allocator: PairAllocator>(
        _ allocator: Allocator, live: inout [UnsafeMutableRawPointer?], sizes: [Int], victims: [Int], steps: Range<Int>
    ) {
        precondition(sizes.count.isPowerOfTwo && victims.count.isPowerOfTwo)
        let sizeMask = sizes.count - 1
        let victimMask = victims.count - 1
        live.withUnsafeMutableBufferPointer { live in
            sizes.withUnsafeBufferPointer { sizes in
                victims.withUnsafeBufferPointer { victims in
                    for step in steps {
                        let slot = victims[step & victimMask]
                        allocator.free(live[slot])
                        live[slot] = allocator.allocate(sizes[step & sizeMask])
                    }
                }
            }
        }
    }
}

/// Hands a pointer through a call the optimiser cannot see into, so it cannot pair up and delete
/// a malloc and its free. Both allocators' loops pay for the same call.
@inline(never)
func escape(_ pointer: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
    escapedPointer = pointer
    return pointer
}
/// Written by `escape`; read by nobody, so only the store is paid for. Only the single-threaded
/// loops call `escape`: threads writing one variable would fight over its cache line.
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
            // One and two processes alternate run by run, and the scaling is taken within each run.
            var ones: [Double] = []
            var twos: [Double] = []
            for _ in 0..<runs {
                ones.append(try throughput(processes: 1, allocator: allocator, path: cache.path))
                twos.append(try throughput(processes: 2, allocator: allocator, path: cache.path))
            }
            let one = median(ones)
            let two = median(twos)
            let scaling = medianRatio(twos, ones)
            let section = "scaling, random 1..1000 B pairs, total throughput"
            table.add(
                ResultRow(
                    section: section, workload: "\(allocator), 1 process", value: one, unit: "M/s",
                    original: allocator == "shm" ? "11 M/s" : nil))
            table.add(
                ResultRow(
                    section: section, workload: "\(allocator), 2 processes", value: two, unit: "M/s",
                    baseline: one, baselineName: "1 proc", ratio: scaling, ratioName: "1 proc",
                    target: allocator == "shm" ? "≥ 1.7× 1 process" : nil,
                    met: allocator == "shm" ? scaling >= 1.7 : nil,
                    original: allocator == "shm" ? "5–10 M/s" : nil))
        }
    }

    /// Million pairs per second summed over `processes` worker processes started together.
    func throughput(processes: Int, allocator: String, path: String) throws -> Double {
        let pairs = try workerCounts(processes: processes) { startAt in
            [
                "pair-worker", "--file", path, "--allocator", allocator,
                "--start-at", String(startAt), "--milliseconds", String(Self.milliseconds),
            ]
        }
        return Double(pairs) / (Double(Self.milliseconds) / 1000) / 1e6
    }
}

/// Starts `processes` copies of this program with the arguments `arguments(startAt)` gives, which
/// all begin their work at the monotonic instant `startAt` (`leadMilliseconds` from now: time to
/// start and prepare), each printing one count; returns the counts' sum.
func workerCounts(processes: Int, leadMilliseconds: UInt64 = 100, arguments: (_ startAt: UInt64) -> [String]) throws
    -> Int
{
    let startAt = SystemClock.monotonicNanoseconds() + leadMilliseconds * 1_000_000
    let workers = try (0..<processes).map { _ in
        let worker = Process()
        worker.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        worker.arguments = arguments(startAt)
        let output = Pipe()
        worker.standardOutput = output
        try worker.run()
        return (worker, output)
    }
    var total = 0
    for (worker, output) in workers {
        let data = output.fileHandleForReading.readDataToEndOfFile()
        worker.waitUntilExit()
        guard worker.terminationStatus == 0,
            let count = Int(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        else {
            throw ValidationFailure(
                "\(arguments(startAt).first ?? "worker") failed (status \(worker.terminationStatus))")
        }
        total += count
    }
    return total
}

struct ValidationFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

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
            while SystemClock.monotonicNanoseconds() < startAt {}
            let end = startAt + UInt64(milliseconds) * 1_000_000
            var pairs = 0
            let batch = 4096
            while SystemClock.monotonicNanoseconds() < end {
                _ =
                    allocator == "shm"
                    ? PairBenchmarks.pairs(ShmPairAllocator(cache: cache), sizes: sizes, count: batch)
                    : PairBenchmarks.pairs(GlibcPairAllocator(), sizes: sizes, count: batch)
                pairs += batch
            }
            print(pairs)
        }
    }
}
