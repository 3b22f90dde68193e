// The ledger's records of 1024 consecutive blocks, laid out so that updating a changed block
// touches two or three cache lines, allocates nothing and checks nothing but what it must.
//
// One Swift array per block cost a cache miss to the array's header, another to its elements and
// a third and fourth to the block's word and settled nodes, kept in arrays of their own: most of
// a busy refresh. Here a block's nodes, settled nodes and the place of its records sit together in
// one entry, and its records in a run of slots of one buffer shared by the page's blocks. Pages of
// Swift arrays then checked an array unique at every write, a dozen times per changed block (a
// twentieth of a busy refresh, more with the calls around them): the buffers are the ledger's own
// memory now, copied on write once per update (``OwnerLedger/Storage``), not once per access.
// A block's records are in no order (each names its node): a changed block gains or loses one or
// two allocations of ten, and a record is appended, replaced or moved into a hole, where records
// kept in node order were all moved to make room.

import CShmSystem
import Glibc
import ShmFormat

extension OwnerLedger {
    /// Where one block stands, in 24 bytes: one cache line (two for a quarter of the blocks).
    struct Entry {
        /// The allocation nodes of the word the block was last read at, one record each: kept as
        /// nodes, not as the word, so that an update need not find them in the word again.
        var nodes: UInt64 = 0
        /// The nodes whose records are settled (not in flight): kept, unread, while they hold.
        var settled: UInt64 = 0
        /// The block's run of slots in ``Page/records``: where it starts, the records in it (one
        /// per node of `nodes`, first) and its slots (0, or a power of two).
        var start: UInt32 = 0
        var count: UInt16 = 0
        var capacity: UInt16 = 0
    }

    /// The contributions of ``pageBlocks`` consecutive blocks: for each, its ``Entry``, and one
    /// record per allocation node of its word, in no order (each names its node).
    ///
    /// A block's records lie in a run of slots of `records` whose length is a power of two; a
    /// block that outgrows its run moves to one twice as long, and one emptied gives its run up,
    /// for the next block that needs a run of that length. Plain memory, owned by the
    /// ``Storage`` that holds the page.
    struct Page {
        /// One entry per block; `nil` until one of the page's blocks first holds allocations, so
        /// an unused page costs a few words.
        private(set) var entries: UnsafeMutablePointer<Entry>?
        /// The runs; made with the entries. `malloc`'s memory, grown by `realloc`: a large buffer
        /// is then remapped, where a copy to a new one was a tenth of a busy cache's updates. Slots
        /// not in a run are never read (records are plain words), so runs are not initialized.
        private var records: UnsafeMutablePointer<NodeRecord>?
        /// Slots allocated in `records`, and slots handed out as runs (from the start).
        private var recordCapacity = 0
        private var recordsUsed = 0
        /// The start of the first run given up of each length class (index n: runs of 2ⁿ slots;
        /// `noRun`: none). A run given up holds the start of the next one of its class in its
        /// first slot. Runs given up are taken again before `records` grows: once a page has held
        /// its busiest mix of blocks, an update neither allocates nor moves records.
        private var freeRuns = InlineArray<6, UInt32>(repeating: Self.noRun)

        /// No run in a list of ``freeRuns``.
        private static let noRun = UInt32.max

        /// Whether no block of the page ever held allocations.
        var isEmpty: Bool { entries == nil }

        /// Makes the page's entries, none holding anything, and room for a block's records.
        mutating func open() {
            // A block has at most `blockRecordsLimit` records: runs of 2⁰ … 2⁵ slots.
            assert(Self.runClass(for: Self.blockRecordsLimit) < freeRuns.count)
            let made = UnsafeMutablePointer<Entry>.allocate(capacity: pageBlocks)
            made.initialize(repeating: Entry(), count: pageBlocks)
            entries = made
            records = Self.reallocate(nil, capacity: Self.blockRecordsLimit)
            recordCapacity = Self.blockRecordsLimit
        }

        /// Frees the page's memory.
        func deallocate() {
            entries?.deallocate()
            free(records)
        }

        /// A copy of the page in memory of its own.
        func copy() -> Page {
            var copy = self
            if let entries {
                copy.entries = .allocate(capacity: pageBlocks)
                copy.entries!.initialize(from: entries, count: pageBlocks)
            }
            if let records {
                copy.records = Self.reallocate(nil, capacity: recordCapacity)
                copy.records!.initialize(from: records, count: recordsUsed)
            }
            return copy
        }

        /// Calls `body` with block `index`'s records (one per node of its entry's `nodes`, in no
        /// order). The page must be open.
        func withRecords<Result>(of index: Int, _ body: (UnsafeBufferPointer<NodeRecord>) -> Result) -> Result {
            let entry = entries![index]
            return body(UnsafeBufferPointer(start: run(of: entry), count: Int(entry.count)))
        }

        /// The first slot of `entry`'s run. The page must be open.
        @inline(__always)
        func run(of entry: Entry) -> UnsafeMutablePointer<NodeRecord> {
            records.unsafelyUnwrapped + Int(entry.start)
        }

        /// Asks for the cache line of block `index`'s entry ahead of its use (a hint).
        @inline(__always)
        func prefetchEntry(_ index: Int) {
            if let entries { shm_prefetch(entries + index) }
        }

        /// Asks for the cache lines of block `index`'s records ahead of their use (a hint; the
        /// entry, which says where they lie, is loaded for it).
        @inline(__always)
        func prefetchRecords(_ index: Int) {
            guard let entries else { return }
            let entry = entries[index]
            let run = run(of: entry)
            for slot in stride(from: 0, to: Int(entry.count), by: Self.recordsPerLine) { shm_prefetch(run + slot) }
        }

        /// Records in a 64-byte cache line.
        private static let recordsPerLine = 64 / MemoryLayout<NodeRecord>.stride

        /// The most records a block has: one allocation per leaf at most, and a block has at
        /// most 2^``Geometry/largestDepth`` leaves.
        static let blockRecordsLimit = 1 << Geometry.largestDepth

        /// Moves `entry`'s records (its `count`) to a run of at least `count` slots, gives its run
        /// up, and returns the new run's first slot. The page must be open.
        mutating func grow(_ entry: inout Entry, toHold count: Int) -> UnsafeMutablePointer<NodeRecord> {
            let runClass = Self.runClass(for: count)
            // Taken first: it may move `records`, and the old run is read at its new place.
            let start = takeRun(runClass)
            let run = records.unsafelyUnwrapped + Int(start)
            if entry.capacity > 0 {
                let old = self.run(of: entry)
                // A few records: a loop, where `memmove` cost more in its call than in its copy.
                for slot in 0..<Int(entry.count) { run[slot] = old[slot] }
                giveUp(run: entry.start, runClass: Self.runClass(for: Int(entry.capacity)))
            }
            entry.start = start
            entry.capacity = UInt16(1 << runClass)
            return run
        }

        /// Gives `entry`'s run up: its block holds no allocations now, and a cache that empties and
        /// fills again would otherwise keep every block's longest run.
        mutating func release(_ entry: inout Entry) {
            precondition(entry.count == 0, "a run given up with records in it")
            giveUp(run: entry.start, runClass: Self.runClass(for: Int(entry.capacity)))
            entry.start = 0
            entry.capacity = 0
        }

        /// Puts the run of 2^`runClass` slots at `start` on its class's list.
        private mutating func giveUp(run start: UInt32, runClass: Int) {
            records![Int(start)] = NodeRecord(rawValue: UInt64(freeRuns[runClass]))
            freeRuns[runClass] = start
        }

        /// The start of a free run of 2^`runClass` slots: one given up before, or a new one.
        private mutating func takeRun(_ runClass: Int) -> UInt32 {
            let first = freeRuns[runClass]
            if first != Self.noRun {
                freeRuns[runClass] = UInt32(truncatingIfNeeded: records![Int(first)].rawValue)
                return first
            }
            let length = 1 << runClass
            if recordsUsed + length > recordCapacity {
                // Doubled, so that a page filling up moves its records a few times only.
                let grown = max(2 * recordCapacity, recordsUsed + length)
                records = Self.reallocate(records, capacity: grown)
                recordCapacity = grown
            }
            recordsUsed += length
            return UInt32(recordsUsed - length)
        }

        /// `records` (or none) moved to room for `capacity` records; stops the process when there
        /// is no memory, as Swift's own allocations do.
        private static func reallocate(
            _ records: UnsafeMutablePointer<NodeRecord>?, capacity: Int
        ) -> UnsafeMutablePointer<NodeRecord> {
            guard let moved = realloc(records, capacity * MemoryLayout<NodeRecord>.stride) else {
                fatalError("out of memory for \(capacity) owner records")
            }
            return moved.bindMemory(to: NodeRecord.self, capacity: capacity)
        }

        /// The length class of a run for `count` records: runs are 2ⁿ slots, so that a block
        /// growing one allocation at a time moves a few times only.
        private static func runClass(for count: Int) -> Int {
            count <= 1 ? 0 : Int.bitWidth - (count - 1).leadingZeroBitCount
        }
    }

    /// The pages of a ledger, one per ``pageBlocks`` blocks of the cache, shared by copies of the
    /// ledger until one of them changes: a ledger makes its storage its own (copies it when
    /// shared) once per update, then changes the pages in place.
    ///
    /// `@unchecked Sendable`: the pages are written only through a ledger that holds the only
    /// reference (``OwnerLedger/uniquePages()``), so a storage two ledgers share is only read.
    final class Storage: @unchecked Sendable {
        let pages: UnsafeMutablePointer<Page>
        let pageCount: Int

        /// Pages for `blockCount` blocks, none open.
        init(blockCount: Int) {
            pageCount = (blockCount + pageBlocks - 1) / pageBlocks
            pages = .allocate(capacity: pageCount)
            pages.initialize(repeating: Page(), count: pageCount)
        }

        private init(copying other: Storage) {
            pageCount = other.pageCount
            pages = .allocate(capacity: pageCount)
            for number in 0..<pageCount { (pages + number).initialize(to: other.pages[number].copy()) }
        }

        deinit {
            for number in 0..<pageCount { pages[number].deallocate() }
            pages.deinitialize(count: pageCount)
            pages.deallocate()
        }

        /// A copy in memory of its own.
        func copy() -> Storage { Storage(copying: self) }

        /// The page of block `block`, and the block's index in it.
        @inline(__always)
        func page(of block: Int) -> (page: UnsafeMutablePointer<Page>, index: Int) {
            // One unsigned comparison: a negative block is a huge unsigned one.
            precondition(UInt(bitPattern: block) < UInt(pageCount &* pageBlocks), "block \(block) outside the ledger")
            return (pages + (block &>> pageShift), block & (pageBlocks &- 1))
        }

        /// Asks for the cache line of block `block`'s entry ahead of its use (a hint).
        @inline(__always)
        func prefetchEntry(of block: Int) {
            let (page, index) = page(of: block)
            page.pointee.prefetchEntry(index)
        }

        /// Asks for block `block`'s records ahead of their use (a hint, which loads the block's
        /// entry: best asked once that is cached, after ``prefetchEntry(of:)``).
        @inline(__always)
        func prefetchRecords(of block: Int) {
            let (page, index) = page(of: block)
            page.pointee.prefetchRecords(index)
        }
    }
}
