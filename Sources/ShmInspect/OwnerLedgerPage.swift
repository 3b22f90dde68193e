// The ledger's records of 1024 consecutive blocks, laid out so that updating a changed block
// touches two or three cache lines and allocates nothing.
//
// One Swift array per block cost a cache miss to the array's header, another to its elements and
// a third and fourth to the block's word and settled nodes, kept in arrays of their own: most of
// a busy refresh. Here a block's word, settled nodes and the place of its records sit together in
// one entry, and its records in a run of slots of one buffer shared by the page's blocks.

import CShmSystem
import ShmFormat

extension OwnerLedger {
    /// The contributions of ``pageBlocks`` consecutive blocks: for each, the word its nodes were
    /// read at (0 for none), the nodes whose records are settled (not in flight: kept, unread,
    /// while they hold), and one record per allocation node of that word (ascending node numbers).
    ///
    /// A block's records lie in a run of slots of `records` whose length is a power of two; a
    /// block that outgrows its run moves to a longer one, and one emptied gives its run up, for
    /// the next block that needs a run of that length.
    struct Page {
        /// Where one block stands, in 24 bytes: one cache line (two for a quarter of the blocks).
        struct Entry {
            var word: UInt64 = 0
            var settled: UInt64 = 0
            /// The block's run of slots in ``Page/records``.
            var start: UInt32 = 0
            var capacity: UInt32 = 0
        }

        /// One entry per block; empty until one of the page's blocks first holds allocations
        /// (an empty array allocates nothing, so an unused page costs a few words).
        private(set) var entries: [Entry] = []
        private var records: [NodeRecord] = []
        /// The starts of the runs blocks gave up, by length (index n: runs of 2ⁿ slots), taken
        /// again before `records` grows: once a page has held its busiest mix of blocks, an
        /// update neither allocates nor moves records (packing the page again made and faulted
        /// in a new buffer, most of the kernel's share of a busy refresh).
        private var freeRuns: [[UInt32]] = []

        var isEmpty: Bool { entries.isEmpty }

        /// Makes the page's entries, none holding anything, for blocks of at most `leafCount`
        /// allocations.
        mutating func open(leafCount: Int) {
            entries = Array(repeating: Entry(), count: pageBlocks)
            freeRuns = Array(repeating: [], count: Self.runClass(for: leafCount) + 1)
        }

        /// The records of block `index` (of the page), which holds `count` allocation nodes.
        func records(of index: Int, count: Int) -> ArraySlice<NodeRecord> {
            let start = Int(entries[index].start)
            return records[start..<(start + count)]
        }

        /// Copies the `count` records of block `index` to the start of `copy`.
        func copyRecords(of index: Int, count: Int, into copy: UnsafeMutableBufferPointer<NodeRecord>) {
            let start = Int(entries[index].start)
            records.withUnsafeBufferPointer { slots in
                for slot in 0..<count { copy[slot] = slots[start &+ slot] }
            }
        }

        /// Asks for the cache line of block `index`'s entry ahead of its use (a hint). Mutating,
        /// as the ledger's, so that neither the page nor its arrays are copied for it.
        mutating func prefetchEntry(_ index: Int) {
            entries.withUnsafeMutableBufferPointer { entries in
                if index < entries.count { shm_prefetch(entries.baseAddress! + index) }
            }
        }

        /// Asks for the cache lines of block `index`'s run of records ahead of their use (a hint;
        /// the entry, which says where the run lies, is loaded for it). Mutating, as above.
        mutating func prefetchRecords(_ index: Int) {
            guard index < entries.count else { return }
            let run = Int(entries[index].start)..<Int(entries[index].start + entries[index].capacity)
            records.withUnsafeMutableBufferPointer { records in
                let end = min(run.upperBound, records.count)
                for slot in stride(from: run.lowerBound, to: end, by: Self.recordsPerLine) {
                    shm_prefetch(records.baseAddress! + slot)
                }
            }
        }

        /// Records in a 64-byte cache line.
        private static let recordsPerLine = 64 / MemoryLayout<NodeRecord>.stride

        /// The most records a block has: one allocation per leaf at most, and a block has at
        /// most 2^``Geometry/largestDepth`` leaves.
        static let blockRecordsLimit = 1 << Geometry.largestDepth

        /// Makes `new` the records of block `index`, read at `word` with `settled` nodes settled.
        mutating func store(_ new: UnsafeBufferPointer<NodeRecord>, at index: Int, word: UInt64, settled: UInt64) {
            let count = new.count
            // Changed in a copy and written back once: each write to the array checks it is unique.
            var entry = entries[index]
            entry.word = word
            entry.settled = settled
            let capacity = Int(entry.capacity)
            // A block emptied gives its run back too: a cache that empties and fills again would
            // otherwise keep every block's longest run.
            if count > capacity || (count == 0 && capacity > 0) {
                if capacity > 0 { freeRuns[Self.runClass(for: capacity)].append(entry.start) }
                let runClass = Self.runClass(for: count)
                entry.start = count == 0 ? 0 : takeRun(runClass)
                entry.capacity = count == 0 ? 0 : 1 << UInt32(runClass)
            }
            entries[index] = entry
            let start = Int(entry.start)
            records.withUnsafeMutableBufferPointer { slots in
                for slot in 0..<count { slots[start &+ slot] = new[slot] }
            }
        }

        /// The start of a free run of 2^`runClass` slots: one given up before, or a new one.
        private mutating func takeRun(_ runClass: Int) -> UInt32 {
            if let start = freeRuns[runClass].popLast() { return start }
            records.append(contentsOf: repeatElement(NodeRecord(rawValue: 0), count: 1 << runClass))
            return UInt32(records.count - (1 << runClass))
        }

        /// The length class of a run for `count` records: runs are 2ⁿ slots, so that a block
        /// growing one allocation at a time moves a few times only.
        private static func runClass(for count: Int) -> Int {
            count <= 1 ? 0 : Int.bitWidth - (count - 1).leadingZeroBitCount
        }
    }
}
