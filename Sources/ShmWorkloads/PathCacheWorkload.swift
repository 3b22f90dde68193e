// The path cache's workloads, shared by the test helper that runs them and the tests that check
// what they left: which path and flags each operation uses, and the journal of completed ones.

import ShmSystem
import Synchronization

/// The paths and flags of the path cache's writers, reproducible from numbers alone.
public enum PathCacheWorkload {
    /// The longest path the workloads insert: what an entry of the default geometry holds.
    public static let longestPath = 1000

    /// The path with this seed: a ``PathNames`` path cut to ``longestPath`` bytes.
    public static func path(seed: UInt64) -> [UInt8] { Array(PathNames.path(seed: seed).prefix(longestPath)) }

    /// The flags every writer inserts for `path`: a function of its bytes (FNV-1a), so writers that
    /// share a path (different seeds may draw the same one) agree on its flags and any of them may
    /// be checked against it.
    public static func flags(path: [UInt8]) -> UInt8 {
        UInt8(
            truncatingIfNeeded: path.reduce(0xCBF2_9CE4_8422_2325 as UInt64) { ($0 ^ UInt64($1)) &* 0x100_0000_01B3 }
                &>> 56)
    }

    /// The seed of operation `operation` of writer `writer`: writers' sequences overlap, each
    /// starting 1009 seeds after the previous one's start, within 20 000 seeds.
    public static func seed(writer: Int, operation: Int) -> UInt64 { UInt64((writer &* 1009 &+ operation) % 20_000) }

    /// The operations of the crash workload: mostly new paths, a third re-inserts of an earlier
    /// operation's path with new flags; flags drawn from all 8 bits (prefix entries included).
    public struct CrashOperations {
        private var random: SplitMix64
        private var seeds: [UInt64] = []

        public init(seed: UInt64) { random = SplitMix64(seed: seed) }

        /// The next operation's path seed and flags.
        public mutating func next() -> (pathSeed: UInt64, flags: UInt8) {
            let pathSeed =
                seeds.count >= 3 && random.below(3) == 0 ? seeds[random.below(seeds.count)] : random.next() % 1_000_000
            seeds.append(pathSeed)
            return (pathSeed, UInt8(truncatingIfNeeded: random.next()))
        }
    }
}

/// A page of atomic words in a file, for a process that may be killed at any point to record what
/// it completed: the kernel keeps the page when the process dies.
public struct ProgressJournal {
    /// Words in the journal.
    public static let wordCount = 512
    private let words: UnsafeMutablePointer<Atomic<UInt64>>

    /// Maps the journal at `path`, creating it (zeroed) when `creating`.
    public init(path: String, creating: Bool) throws(Errno) {
        let descriptor = try FileDescriptor.open(path, .readWrite, options: creating ? [.create, .truncate] : [])
        defer { try? descriptor.close() }
        if creating { try descriptor.resize(to: Self.wordCount * 8) }
        words = try Mapping.map(descriptor, length: Self.wordCount * 8, writable: true)
            .bindMemory(to: Atomic<UInt64>.self, capacity: Self.wordCount)
    }

    /// Word `index`. Stored with release ordering, after the work it records; loaded with acquire,
    /// so a reader that sees a count also sees the work (in the cache file) that it counts.
    public subscript(index: Int) -> UInt64 {
        get { words[index].load(ordering: .acquiring) }
        nonmutating set { words[index].store(newValue, ordering: .releasing) }
    }
}
