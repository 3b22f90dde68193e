// The shared path cache: paths and their verdicts, cached in a cache file for every process.
//
// Layout and invariants: ShmFormat/PathCacheLayout.swift. In short, a root table and bucket
// tables index by hash into a digital search tree of entries; every node is an allocation of the
// cache; a slot changes once, from empty to naming a complete node, and never again.
//
// Reclamation. Nothing that was ever published is replaced, moved or freed: an insert adds an
// entry in an empty slot and an update changes the flags bits of an entry in place. So no reader
// can hold a node that goes away, there is nothing to reclaim and no ABA (a slot's CAS expects 0,
// which a slot never becomes again): the cross-process epochs the issue describes for replaced
// nodes are not needed, and a reader killed anywhere blocks nothing. The only frees are of an
// insert's own allocations that never became visible (a publishing CAS lost to an insert of the
// same path or table). What stays is what a cache must keep: one entry per distinct path.
//
// Hot path: `insert` and `search` take no lock, make no system call and use no heap; they run
// concrete code only (no generics, no existentials), so they are safe in signal handlers even in
// an unoptimised build, whose generic code would consult runtime metadata under a lock.

import Synchronization

#if !hasFeature(Embedded)  // the C library will compile these files as one module with the allocator
    @_spi(CrashTesting) import ShmAlloc
    import ShmFormat
#endif

/// The path cache of a mapped cache file. Any thread of any process may insert and search at once.
public final class PathCache: @unchecked Sendable {
    // @unchecked: every stored property is immutable; the shared memory behind them is touched
    // through atomics, or written only before it is published.

    /// The cache file the path cache lives in.
    public let cache: SharedCache
    /// The header's root word: the root table's offset, 0 until the first insert.
    let rootWord: UnsafeMutablePointer<Atomic<UInt64>>
    let minShift: Int
    let tableSlotCount: Int
    let tableRequest: Int
    /// The longest path an entry holds.
    public let longestPath: Int

    /// The path cache of `cache` (nothing is written until the first insert).
    ///
    /// - Throws: ``PathCacheError/unsupportedGeometry`` when the geometry cannot hold one.
    public init(cache: SharedCache) throws(PathCacheError) {
        guard PathCacheLayout.unsupportedReason(geometry: cache.geometry) == nil else { throw .unsupportedGeometry }
        self.cache = cache
        rootWord = (cache.fileBase + FileHeader.Field.pathCacheRoot).assumingMemoryBound(to: Atomic<UInt64>.self)
        minShift = cache.geometry.minShift
        tableSlotCount = PathCacheLayout.tableSlotCount(geometry: cache.geometry)
        tableRequest = PathCacheLayout.tableRequest(geometry: cache.geometry)
        longestPath = PathCacheLayout.longestPath(geometry: cache.geometry)
        // Run the search path once, so any one-time work of an unoptimised build (metadata of the
        // atomic types) is done here and not first inside a signal handler.
        // Not counted: the process searched nothing.
        _ = StaticString("/").withUTF8Buffer { answer(UnsafeRawBufferPointer($0)) }
    }

    // MARK: - Nodes

    /// The usable bytes of the node a (non-zero) slot names.
    @inline(__always)
    func node(_ slot: UInt32) -> UnsafeMutableRawPointer {
        assert(
            slot != 0 && Int(slot) &<< minShift < cache.geometry.capacity,
            "slot \(slot) names no node of the data region")
        return cache.base + PathCacheLayout.offset(ofSlot: slot, minShift: minShift)
    }

    /// The slot naming the allocation at `offset`.
    @inline(__always)
    func slot(of offset: ShmOffset) -> UInt32 {
        PathCacheLayout.slot(
            nodeOffset: Int(truncatingIfNeeded: offset.rawValue) &- AllocationHeader.size, minShift: minShift)
    }

    /// The `index`-th 4-byte slot after `start`.
    @inline(__always)
    func slotWord(_ start: UnsafeMutableRawPointer, _ index: Int) -> UnsafeMutablePointer<Atomic<UInt32>> {
        (start + index &* 4).assumingMemoryBound(to: Atomic<UInt32>.self)
    }

    /// A 64-bit word of a node.
    @inline(__always)
    func word(_ node: UnsafeMutableRawPointer, at offset: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
        (node + offset).assumingMemoryBound(to: Atomic<UInt64>.self)
    }

    /// The root table's prefix count: an upper bound of the entries carrying the prefix flag (see
    /// `insert`), 0 only when there are none, so a search may skip the ancestor probes.
    @inline(__always)
    func prefixCount(_ root: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Atomic<UInt64>> {
        word(root, at: PathCacheLayout.prefixCountOffset)
    }

    // MARK: - Tables

    /// The root table, or `nil` when nothing was ever inserted. Acquire: the table's descriptor and
    /// zeroed slots, written before the root word was set, are visible.
    @inline(__always)
    func existingRoot() -> UnsafeMutableRawPointer? {
        let offset = rootWord.pointee.load(ordering: .acquiring)
        return offset == 0 ? nil : cache.base + Int(truncatingIfNeeded: offset)
    }

    /// The root table, created when missing.
    func root() throws(PathCacheError) -> UnsafeMutableRawPointer {
        if let root = existingRoot() { return root }
        let table = try newTable(level: 1)
        // Release: the table's bytes before its publication. Acquire on failure: the winner's.
        let (exchanged, current) = rootWord.pointee.compareExchange(
            expected: 0, desired: table.rawValue, successOrdering: .releasing, failureOrdering: .acquiring)
        if !exchanged { freeUnpublished(table) }
        return cache.base + Int(truncatingIfNeeded: exchanged ? table.rawValue : current)
    }

    /// The bucket table that root slot `index` names, created when missing.
    func bucket(_ root: UnsafeMutableRawPointer, _ index: Int) throws(PathCacheError) -> UnsafeMutableRawPointer {
        let slot = slotWord(root + PathCacheLayout.tableHeaderSize, index)
        // Acquire: the bucket's bytes, written before its slot was set.
        var current = slot.pointee.load(ordering: .acquiring)
        if current == 0 {
            let table = try newTable(level: 2)
            let exchanged: Bool
            (exchanged, current) = slot.pointee.compareExchange(
                expected: 0, desired: self.slot(of: table), successOrdering: .releasing, failureOrdering: .acquiring)
            if exchanged { current = self.slot(of: table) } else { freeUnpublished(table) }
        }
        return node(current)
    }

    /// A zeroed table with its descriptor, not yet published.
    private func newTable(level: Int) throws(PathCacheError) -> ShmOffset {
        let table: ShmOffset
        do { table = try cache.allocateZeroed(count: 1, size: tableRequest) } catch { throw .outOfSpace }
        let bytes = cache.base + Int(truncatingIfNeeded: table.rawValue)
        // Relaxed: published by the release CAS that makes the table reachable.
        word(bytes, at: 0).pointee.store(
            PathCacheLayout.tableDescriptor(level: level, slotCount: tableSlotCount), ordering: .relaxed)
        crashPoint(.pathTableWritten, at: bytes)
        return table
    }

    /// Frees an allocation of this process that no slot names: nobody else can have seen it.
    func freeUnpublished(_ offset: ShmOffset) {
        do { try cache.free(offset) } catch { assertionFailure("an unpublished path cache node was refused by free") }
    }
}
