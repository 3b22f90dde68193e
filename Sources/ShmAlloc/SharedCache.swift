// A mapped cache file: the object every allocation goes through.

import CShmSystem
import Synchronization

#if !hasFeature(Embedded)  // the C library compiles the core's files as one module
    import ShmFormat
    import ShmSystem
#endif

/// An offset from a cache's user base. `0` is ``ShmOffset/null``: it lies in the read-only null
/// page and is never returned by an allocation. Offsets mean the same in every process that maps
/// the file, so they (unlike pointers) can be stored inside the cache.
public struct ShmOffset: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// The offset that is never allocated, `SHM_NULL` in C.
    public static let null = ShmOffset(rawValue: 0)
    /// True for ``null``.
    @inlinable public var isNull: Bool { rawValue == 0 }

    @inlinable public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "0x" + String(rawValue, radix: 16) }
}

/// A cache file mapped read-write into this process: allocate, free and translate offsets.
///
/// Open one with ``init(path:policy:address:creationTimeout:)``. Every method may be called from any
/// thread, from any process mapping the same file, and from signal handlers: `allocate` and `free`
/// take no locks, allocate no memory and make no system calls; each changes a block with one
/// compare-and-swap on its 64-bit buddy word.
///
/// The mapping lives as long as the object. Offsets stay valid across processes and restarts.
public final class SharedCache: @unchecked Sendable {
    // @unchecked: every stored property is immutable; the pointees are shared memory, touched only
    // through atomics (words, counters) or by the owner of an allocation (data).

    /// The path the cache was opened with.
    public let path: String
    /// The header as it was when the file was opened (its counters move on since).
    public let header: FileHeader
    /// The file's layout (regions, null page).
    public let layout: FileLayout
    /// The file's geometry.
    public let geometry: Geometry

    /// The first byte of the mapped file (the header page).
    public let fileBase: UnsafeMutableRawPointer
    /// The user base: the first byte of the data region, where offset 0 points (read-only).
    public let base: UnsafeMutableRawPointer

    let tree: BuddyTree
    let words: UnsafeMutablePointer<Atomic<UInt64>>
    let index: FreeSpaceIndex
    /// This process's entry in the owner table, and the intent slots the hot paths write.
    let owners: OwnerRegistration
    /// Per-process memory (not in the file): each thread slot's cursor, freed-node hints and
    /// failed-search count, on cache lines of its own (see `claimNode` and `slotStride`).
    let cursors: UnsafeMutablePointer<Atomic<UInt64>>
    /// `tree.setMask(ofNode:)` for every node (index 0: none), computed once: one load instead of
    /// a loop per call. At most 64 words, allocated with the object (in the C library, from its
    /// arena), so that opening a cache touches no page of `processMemory`.
    let setMasks: UnsafeMutablePointer<UInt64>
    /// The zeroed private mapping that holds `cursors`: zero is every slot's starting value, so
    /// opening a cache writes none of it and a thread faults in only its own slot (a preloaded
    /// process that never allocates pays for none of it).
    let processMemory: UnsafeMutableRawPointer
    let invalidFreeCount: UnsafeMutablePointer<Atomic<UInt64>>
    let failedAllocationCount: UnsafeMutablePointer<Atomic<UInt64>>
    /// The header's repair deadline and counters (see `repairIndexIfDue`).
    let nextRepair: UnsafeMutablePointer<Atomic<UInt64>>
    let repairPassCount: UnsafeMutablePointer<Atomic<UInt64>>
    let repairedListingCount: UnsafeMutablePointer<Atomic<UInt64>>
    /// The first block after the null region.
    let firstBlock: Int
    /// Where the first block after the null region starts, from the user base: the lowest node
    /// offset `free` accepts. This and the next two are geometry computed once, as `free` checks
    /// every offset and header against them.
    let firstNodeOffset: Int
    /// `geometry.capacity`: the end of the data region, from the user base.
    @usableFromInline let capacity: Int
    /// `geometry.orderCount`: a header's order must be below it.
    let orderCount: Int
    let blockCount: Int
    let blockShift: Int
    let minShift: Int

    /// The bytes of `processMemory`: the cursor slots.
    static var processMemoryLength: Int { cursorSlots * slotStride * 8 }

    /// Wraps a mapped, ready file. `processMemory` is a zeroed mapping of `processMemoryLength`
    /// bytes, which the cache unmaps when it goes.
    init(path: String, header: FileHeader, mapping: UnsafeMutableRawPointer, processMemory: UnsafeMutableRawPointer) {
        self.path = path
        self.header = header
        self.layout = header.layout
        self.geometry = header.geometry
        self.fileBase = mapping
        self.base = mapping + layout.dataOffset
        self.tree = geometry.tree
        self.words = (mapping + layout.wordsOffset).assumingMemoryBound(to: Atomic<UInt64>.self)
        func counter(_ field: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
            (mapping + field).assumingMemoryBound(to: Atomic<UInt64>.self)
        }
        self.index = FreeSpaceIndex(
            layout: layout.freeIndex, words: (mapping + layout.indexOffset).assumingMemoryBound(to: Atomic<UInt64>.self)
        )
        self.processMemory = processMemory
        self.cursors = processMemory.bindMemory(to: Atomic<UInt64>.self, capacity: Self.cursorSlots * Self.slotStride)
        self.setMasks = .allocate(capacity: tree.nodeCount + 1)
        setMasks.initialize(to: 0)
        for node in 1...tree.nodeCount { (setMasks + node).initialize(to: tree.setMask(ofNode: node)) }
        self.owners = OwnerRegistration(table: mapping + layout.ownersOffset)
        self.invalidFreeCount = counter(FileHeader.Field.invalidFrees)
        self.failedAllocationCount = counter(FileHeader.Field.failedAllocations)
        self.nextRepair = counter(FileHeader.Field.nextRepair)
        self.repairPassCount = counter(FileHeader.Field.repairPasses)
        self.repairedListingCount = counter(FileHeader.Field.repairedListings)
        self.firstBlock = layout.nullBlockCount
        self.firstNodeOffset = layout.nullBlockCount &<< geometry.maxShift
        self.capacity = geometry.capacity
        self.orderCount = geometry.orderCount
        self.blockCount = geometry.blockCount
        self.blockShift = geometry.maxShift
        self.minShift = geometry.minShift
    }

    deinit {
        do {
            try Mapping.unmap(fileBase, length: layout.fileSize)
            try Mapping.unmap(processMemory, length: Self.processMemoryLength)
        } catch {
            assertionFailure("munmap of the cache failed: \(error)")  // only a bad address can fail
        }
        setMasks.deallocate()
    }

    // MARK: - Offsets and pointers

    /// The address of `offset` in this process, or `nil` for ``ShmOffset/null`` and offsets past the end.
    @inlinable
    public func pointer(to offset: ShmOffset) -> UnsafeMutableRawPointer? {
        guard !offset.isNull, offset.rawValue < UInt64(truncatingIfNeeded: capacity) else { return nil }
        return base + Int(offset.rawValue)
    }

    /// The offset of `pointer`, or `nil` when it does not point into the data region.
    @inlinable
    public func offset(of pointer: UnsafeRawPointer) -> ShmOffset? {
        let distance = pointer - UnsafeRawPointer(base)
        guard distance >= 0, distance < capacity else { return nil }
        return ShmOffset(rawValue: UInt64(distance))
    }

    // MARK: - Live counters

    /// Frees refused since the file was created (double, bogus or corrupted), by any process.
    public var invalidFrees: UInt64 { invalidFreeCount.pointee.load(ordering: .relaxed) }
    /// Allocations that found no room since the file was created, by any process.
    public var failedAllocations: UInt64 { failedAllocationCount.pointee.load(ordering: .relaxed) }
    /// Repair passes of the free-space index since the file was created, by any process.
    public var repairPasses: UInt64 { repairPassCount.pointee.load(ordering: .relaxed) }
    /// Listings the repair passes added: free space that crashed processes had hidden.
    public var repairedListings: UInt64 { repairedListingCount.pointee.load(ordering: .relaxed) }

    /// This process's path cache counters, for ShmPathCache to count its searches and inserts:
    /// ``PathCounters/wordCount`` words at `PathCounters`' indices, in this process's owner-table
    /// entry (registering the process first, as its first allocation would), or in process memory
    /// when it has none. Only this process writes them. Async-signal-safe, no heap.
    @_spi(PathCounters)
    public func pathCounters() -> UnsafeMutablePointer<Atomic<UInt64>> { owners.pathCounters() }

    /// Block `index`'s buddy word, read atomically.
    public func word(ofBlock index: Int) -> UInt64 {
        precondition((0..<blockCount).contains(index), "block \(index) out of 0..<\(blockCount)")
        return words[index].load(ordering: .acquiring)
    }
}
