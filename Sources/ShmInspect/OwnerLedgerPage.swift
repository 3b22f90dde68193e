// The ledger's records of 1024 consecutive blocks, laid out so that updating a changed block
// touches one small index word and the block's records, allocates nothing and checks nothing but
// what it must.
//
// A busy refresh's changed blocks lie scattered over the ledger, and each cache line a block's
// update touches is a miss, waited for or at best overlapped with others: the cost of an update is
// its misses. So a block keeps no entry of its own: the nodes it held are its earlier word's
// allocations, which the refresh hands over with the plan (``OwnerLedger/BlockPlan``), and what is
// left, where its records lie and how many they are, is packed in 32 bits of a page-wide index
// (4 KiB a page, 2 MiB for a 512 MiB cache: mostly cached). A block's records are one run of slots
// of a buffer shared by the page's blocks, a run never straddling more cache lines than it must.
// Records are in no order (each names its node): a changed block gains or loses one or two
// allocations of ten, and a record is appended, replaced or moved into a hole, where records kept
// in node order were all moved to make room. The buffers are the ledger's own memory, copied on
// write once per update (``OwnerLedger/Storage``), not checked unique at every access.

import CShmSystem
import Glibc
import ShmFormat

extension OwnerLedger {
    /// Where one block's records lie in its page, in 32 bits: its run's first slot (bits 9–31),
    /// its run's length class plus one (bits 6–8; 0: no run) and its records (bits 0–5).
    struct RunPlace: Equatable {
        var rawValue: UInt32 = 0

        /// A run of 2^`runClass` slots from slot `start`, holding `count` records.
        init(start: Int, runClass: Int, count: Int) {
            rawValue = UInt32(truncatingIfNeeded: start &<< 9 | (runClass &+ 1) &<< 6 | count)
        }

        /// No run: a block that holds no allocations.
        init() {}

        var start: Int { Int(truncatingIfNeeded: rawValue &>> 9) }
        /// Whether the block has a run (it may hold no records while a batch updates it).
        var hasRun: Bool { rawValue & 0x1C0 != 0 }
        var runClass: Int { Int(truncatingIfNeeded: (rawValue &>> 6) & 7) &- 1 }
        /// Slots in the run; 0 without one.
        var capacity: Int { hasRun ? 1 &<< runClass : 0 }
        var count: Int {
            get { Int(truncatingIfNeeded: rawValue & 0x3F) }
            set { rawValue = rawValue & ~0x3F | UInt32(truncatingIfNeeded: newValue) }
        }
    }

    /// The contributions of ``pageBlocks`` consecutive blocks: for each, one record per
    /// allocation node of its word, in no order (each names its node), and where they lie.
    ///
    /// A block's records lie in a run of slots of `records` whose length is a power of two; a
    /// block that outgrows its run moves to one twice as long, and one emptied gives its run up,
    /// for the next block that needs a run of that length. Plain memory, owned by the
    /// ``Storage`` that holds the page.
    struct Page {
        /// Each block's ``RunPlace``; `nil` until one of the page's blocks first holds
        /// allocations, so an unused page costs a few words.
        private(set) var places: UnsafeMutablePointer<RunPlace>?
        /// The runs; made with the places, from a cache line's start in `buffer`. Slots not in a
        /// run are never read (records are plain words), so runs are not initialized.
        private var records: UnsafeMutablePointer<NodeRecord>?
        /// `malloc`'s memory that holds `records`, grown by `realloc`: a large buffer is then
        /// remapped, where a copy to a new one was a tenth of a busy cache's updates.
        private var buffer: UnsafeMutableRawPointer?
        /// Slots allocated in `records`, and slots handed out as runs or skipped to align one.
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
        var isEmpty: Bool { places == nil }

        /// Makes the page's places, no block holding anything, and room for a block's records.
        mutating func open() {
            // A block has at most `blockRecordsLimit` records: runs of 2⁰ … 2⁵ slots.
            assert(Self.runClass(for: Self.blockRecordsLimit) < freeRuns.count)
            let made = UnsafeMutablePointer<RunPlace>.allocate(capacity: pageBlocks)
            made.initialize(repeating: RunPlace(), count: pageBlocks)
            places = made
            resize(toHold: Self.blockRecordsLimit)
        }

        /// Frees the page's memory.
        func deallocate() {
            places?.deallocate()
            free(buffer)
        }

        /// A copy of the page in memory of its own.
        func copy() -> Page {
            var copy = self
            if let places {
                copy.places = .allocate(capacity: pageBlocks)
                copy.places!.initialize(from: places, count: pageBlocks)
            }
            if let records {
                (copy.buffer, copy.records, copy.recordCapacity, copy.recordsUsed) = (nil, nil, 0, 0)
                copy.resize(toHold: recordCapacity)
                copy.records!.initialize(from: records, count: recordsUsed)
                copy.recordsUsed = recordsUsed
            }
            return copy
        }

        /// Calls `body` with block `index`'s records (one per allocation node it holds, in no
        /// order). The page must be open.
        func withRecords<Result>(of index: Int, _ body: (UnsafeBufferPointer<NodeRecord>) -> Result) -> Result {
            let place = places![index]
            return body(UnsafeBufferPointer(start: run(at: place), count: place.count))
        }

        /// The first slot of the run at `place` (of no run: the buffer's first slot, where none
        /// of its `count`, 0, is read). The page must be open.
        @inline(__always)
        func run(at place: RunPlace) -> UnsafeMutablePointer<NodeRecord> {
            records.unsafelyUnwrapped + place.start
        }

        /// Asks for the cache line of block `index`'s place ahead of its use (a hint).
        @inline(__always)
        func prefetchPlace(_ index: Int) {
            if let places { shm_prefetch(places + index) }
        }

        /// Asks for the cache lines of block `index`'s records ahead of their use (a hint; the
        /// place, which says where they lie, is loaded for it).
        @inline(__always)
        func prefetchRecords(_ index: Int) {
            guard let places else { return }
            let place = places[index]
            let run = run(at: place)
            for slot in stride(from: 0, to: place.count, by: Self.recordsPerLine) { shm_prefetch(run + slot) }
        }

        /// Records in a 64-byte cache line.
        private static let recordsPerLine = 64 / MemoryLayout<NodeRecord>.stride

        /// The most records a block has: one allocation per leaf at most, and a block has at
        /// most 2^``Geometry/largestDepth`` leaves.
        static let blockRecordsLimit = 1 << Geometry.largestDepth

        /// Moves the records at `place` (its `count`) to a run of at least `count` slots, gives
        /// its run up, and returns the new run's first slot. The page must be open.
        mutating func grow(_ place: inout RunPlace, toHold count: Int) -> UnsafeMutablePointer<NodeRecord> {
            let runClass = Self.runClass(for: count)
            // Taken first: it may move `records`, and the old run is read at its new place.
            let start = takeRun(runClass)
            let run = records.unsafelyUnwrapped + start
            if place.hasRun {
                let old = self.run(at: place)
                // A few records: a loop, where `memmove` cost more in its call than in its copy.
                for slot in 0..<place.count { run[slot] = old[slot] }
                giveUp(run: place.start, runClass: place.runClass)
            }
            place = RunPlace(start: start, runClass: runClass, count: place.count)
            return run
        }

        /// Gives the run at `place` up: its block holds no allocations now, and a cache that
        /// empties and fills again would otherwise keep every block's longest run.
        mutating func release(_ place: inout RunPlace) {
            precondition(place.count == 0, "a run given up with records in it")
            giveUp(run: place.start, runClass: place.runClass)
            place = RunPlace()
        }

        /// Puts the run of 2^`runClass` slots at `start` on its class's list.
        private mutating func giveUp(run start: Int, runClass: Int) {
            records![start] = NodeRecord(rawValue: UInt64(freeRuns[runClass]))
            freeRuns[runClass] = UInt32(truncatingIfNeeded: start)
        }

        /// The start of a free run of 2^`runClass` slots: one given up before, or a new one,
        /// aligned to its length up to a cache line's records (so that a run of a line or less
        /// lies in one line, and a longer one in as few as its length needs).
        private mutating func takeRun(_ runClass: Int) -> Int {
            let first = freeRuns[runClass]
            if first != Self.noRun {
                freeRuns[runClass] = UInt32(truncatingIfNeeded: records![Int(first)].rawValue)
                return Int(first)
            }
            let length = 1 << runClass
            let alignment = min(length, Self.recordsPerLine)
            let start = (recordsUsed + alignment - 1) & -alignment
            if start + length > recordCapacity {
                // Doubled, so that a page filling up moves its records a few times only.
                resize(toHold: max(2 * recordCapacity, start + length))
            }
            recordsUsed = start + length
            return start
        }

        /// Grows `records` (or makes it) to `capacity` slots from a cache line's start, its used
        /// slots kept; stops the process when there is no memory, as Swift's own allocations do.
        private mutating func resize(toHold capacity: Int) {
            let lineBytes = Self.recordsPerLine * MemoryLayout<NodeRecord>.stride
            let skew = buffer.map { UnsafeMutableRawPointer(records!) - $0 } ?? 0
            guard let grown = realloc(buffer, capacity * MemoryLayout<NodeRecord>.stride + lineBytes) else {
                fatalError("out of memory for \(capacity) owner records")
            }
            let aligned = grown.alignedUp(toMultipleOf: lineBytes)
            // `realloc` kept the bytes from the buffer's start: the records move when the new
            // buffer's line boundary lies elsewhere (rarely: a remapped one keeps its offset).
            if aligned != grown + skew, recordsUsed > 0 {
                memmove(aligned, grown + skew, recordsUsed * MemoryLayout<NodeRecord>.stride)
            }
            buffer = grown
            records = aligned.bindMemory(to: NodeRecord.self, capacity: capacity)
            recordCapacity = capacity
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

        /// Asks for the cache line of block `block`'s place ahead of its use (a hint).
        @inline(__always)
        func prefetchPlace(of block: Int) {
            let (page, index) = page(of: block)
            page.pointee.prefetchPlace(index)
        }

        /// Asks for block `block`'s records ahead of their use (a hint, which loads the block's
        /// place: best asked once that is cached, after ``prefetchPlace(of:)``).
        @inline(__always)
        func prefetchRecords(of block: Int) {
            let (page, index) = page(of: block)
            page.pointee.prefetchRecords(index)
        }
    }
}
