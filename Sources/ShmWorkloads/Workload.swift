// The load writers' workload: what `shmtop load` and `demo` run in each writer process.

import ShmAlloc
import ShmSystem

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// What a writer did, as one line `load` parses: `allocations=… frees=… failures=… verificationErrors=…
/// invalidFrees=…`, then its path checks' `searches=… hits=… verdicts=… refusedVerdicts=… verified=…
/// pathErrors=…`.
public struct WorkloadSummary: Hashable, Sendable {
    public var allocations = 0
    public var frees = 0
    public var failures = 0
    public var verificationErrors = 0
    public var invalidFrees = 0
    /// The path checks' figures (all 0 for a writer that makes none).
    public var paths = PathCheckSummary()

    /// The `key=value` line.
    public var line: String {
        "allocations=\(allocations) frees=\(frees) failures=\(failures) verificationErrors=\(verificationErrors) invalidFrees=\(invalidFrees)"
            + " searches=\(paths.searches) hits=\(paths.hits) verdicts=\(paths.verdicts)"
            + " refusedVerdicts=\(paths.refused) verified=\(paths.verified) pathErrors=\(paths.errors)"
    }

    public init() {}

    /// Parses `line`'s `key=value` fields; `nil` when one is missing.
    public init?(line: String) {
        var fields: [String: Int] = [:]
        for field in line.split(separator: " ") {
            let parts = field.split(separator: "=")
            if parts.count == 2, let value = Int(parts[1]) { fields[String(parts[0])] = value }
        }
        guard let allocations = fields["allocations"], let frees = fields["frees"], let failures = fields["failures"],
            let verificationErrors = fields["verificationErrors"], let invalidFrees = fields["invalidFrees"],
            let searches = fields["searches"], let hits = fields["hits"], let verdicts = fields["verdicts"],
            let refused = fields["refusedVerdicts"], let verified = fields["verified"],
            let pathErrors = fields["pathErrors"]
        else { return nil }
        self.allocations = allocations
        self.frees = frees
        self.failures = failures
        self.verificationErrors = verificationErrors
        self.invalidFrees = invalidFrees
        paths = PathCheckSummary(
            searches: searches, hits: hits, verdicts: verdicts, refused: refused, verified: verified,
            errors: pathErrors)
    }

    /// The sum of two writers' figures.
    public static func + (lhs: Self, rhs: Self) -> Self {
        var sum = lhs
        sum.allocations += rhs.allocations
        sum.frees += rhs.frees
        sum.failures += rhs.failures
        sum.verificationErrors += rhs.verificationErrors
        sum.invalidFrees += rhs.invalidFrees
        sum.paths = lhs.paths + rhs.paths
        return sum
    }
}

/// One writer's workload: insert paths, keep them, verify them, free them, so that the bytes it
/// holds follow a triangle wave between 20 % and 100 % of its share of `fill`.
public struct Workload {
    /// An allocation this writer holds: where, and the seed that regenerates its bytes.
    private struct Held {
        let offset: ShmOffset
        let seed: UInt64
        let length: Int
        let nodeBytes: Int
    }

    /// How a writer behaves: its share of the fill, and how fast the fill cycles.
    public struct Parameters: Hashable, Sendable {
        /// Writers sharing the fill.
        public var writers: Int
        /// Peak share of the usable bytes the writers fill together (0...1).
        public var fill: Double
        /// Seconds of one grow-and-shrink cycle.
        public var period: Double

        public init(writers: Int, fill: Double, period: Double) {
            self.writers = writers
            self.fill = fill
            self.period = period
        }
    }

    let cache: SharedCache
    let index: Int
    let peakBytes: Double
    let period: Double
    /// What the writer has done so far.
    public private(set) var summary = WorkloadSummary()
    private var held: [Held] = []
    private var heldBytes = 0
    private var nextSeed: UInt64
    private var random: SplitMix64
    /// The path checks the writer makes, one per allocation, as a traced process checks a path
    /// before each file it opens; `nil` for none.
    private var pathChecks: PathChecks?

    /// Writer number `index` (0-based) of `parameters.writers` on `cache`, making `pathChecks`.
    public init(cache: SharedCache, index: Int, parameters: Parameters, pathChecks: PathChecks? = nil) {
        self.cache = cache
        self.index = index
        self.pathChecks = pathChecks
        let usable = cache.geometry.capacity - cache.layout.nullRegionLength
        peakBytes = Double(usable) * min(max(parameters.fill, 0), 1) / Double(max(parameters.writers, 1))
        self.period = max(parameters.period, 0.1)
        nextSeed = UInt64(index) << 48 | UInt64(UInt32(truncatingIfNeeded: cache.header.createdAtNanoseconds))
        random = SplitMix64(seed: UInt64(index) &+ 0x5EED)
    }

    /// The bytes to hold `elapsed` seconds in: a triangle wave from 20 % up to 100 % and back.
    func targetBytes(elapsed: Double) -> Double {
        let phase = (elapsed / period).truncatingRemainder(dividingBy: 1)
        let rise = phase < 0.5 ? phase * 2 : (1 - phase) * 2
        return peakBytes * (0.2 + 0.8 * rise)
    }

    /// Runs until `seconds` pass (0: forever) or a stop is requested (``StopSignals``), then
    /// frees everything held and verifies the path verdicts it inserted. `rate` paces it to that
    /// many operations a second (0: flat out).
    public mutating func run(seconds: Double, rate: Int) {
        let start = ContinuousClock.now
        let batch = rate > 0 ? max(1, rate / 100) : 1000
        var operations = 0
        while !StopSignals.requested {
            let elapsed = (ContinuousClock.now - start).inSeconds
            if seconds > 0, elapsed >= seconds { break }
            step(operations: batch, elapsed: elapsed)
            operations += batch
            if rate > 0 {
                // Pace to `rate` operations per second.
                let due = start + .microseconds(Int(Double(operations) / Double(rate) * 1e6))
                let now = ContinuousClock.now
                if due > now { StopSignals.sleep(seconds: (due - now).inSeconds) }
            }
        }
        while !held.isEmpty { removeRandom() }
        pathChecks?.verify()
        summary.paths = pathChecks?.summary ?? PathCheckSummary()
    }

    /// Does `operations` operations as the writer does them `elapsed` seconds into its run: inserts
    /// while it holds less than the target of that moment, frees at random otherwise, and now and
    /// then verifies a held allocation. Deterministic for a given writer and sequence of calls.
    public mutating func step(operations: Int, elapsed: Double) {
        let target = targetBytes(elapsed: elapsed)
        for _ in 0..<operations {
            if Double(heldBytes) < target || held.isEmpty {
                insert()
            } else {
                removeRandom()
            }
            if random.next() % 16 == 0, !held.isEmpty {
                _ = verify(held[Int(random.next() % UInt64(held.count))])
            }
        }
    }

    private mutating func insert() {
        pathChecks?.checkNext()
        let seed = nextSeed
        nextSeed &+= 1
        let bytes = PathNames.path(seed: seed)
        do {
            let offset = try cache.allocate(bytes.count)
            let pointer = cache.pointer(to: offset)!
            bytes.withUnsafeBytes { pointer.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
            let nodeBytes = cache.geometry.nodeSize(forRequest: bytes.count)!
            held.append(Held(offset: offset, seed: seed, length: bytes.count, nodeBytes: nodeBytes))
            heldBytes += nodeBytes
            summary.allocations += 1
        } catch {
            summary.failures += 1
        }
    }

    private mutating func removeRandom() {
        let position = Int(random.next() % UInt64(held.count))
        let item = held[position]
        held.swapAt(position, held.count - 1)
        held.removeLast()
        heldBytes -= item.nodeBytes
        _ = verify(item)
        do {
            try cache.free(item.offset)
            summary.frees += 1
        } catch {
            summary.invalidFrees += 1
        }
    }

    /// Compares the allocation's bytes with the path its seed regenerates.
    private mutating func verify(_ item: Held) -> Bool {
        let expected = PathNames.path(seed: item.seed)
        let pointer = UnsafeRawPointer(cache.pointer(to: item.offset)!)
        let matches =
            expected.count == item.length
            && expected.withUnsafeBytes { memcmp($0.baseAddress!, pointer, item.length) == 0 }
        if !matches { summary.verificationErrors += 1 }
        return matches
    }
}
