// Insert and search: the hot paths of the path cache.
//
// A path's place is fixed by its hash and by the entries already on its way: root slot, bucket
// slot, then from each entry that is not the path the child its next hash digits name. Slots are
// write-once, so every insert of a path follows the same way to the same first empty slot, and a
// path is in the cache at most once: two inserts of a new path race for one slot's CAS, and the
// loser finds the winner's entry there.
//
// Crash windows of an insert, in order (each a `CrashPoint`, each with a test that kills a
// process there): prefix count raised │ pathPrefixCounted │ table written │ pathTableWritten │
// table published │ entry written │ pathEntryWritten │ entry published (done); or, for a path
// already cached: own entry freed │ pathDuplicateFreed │ flags exchanged │ pathFlagsExchanged │
// prefix count settled; then, either way, published │ pathInsertPublished │ counted in the owner
// entry. A search counts itself │ pathSearchCounted │ then its hit. A process killed in any window
// leaves at most an unpublished allocation (leaked, as the allocator leaks whatever a dead process
// held), a prefix count one too high, and its own statistics one operation short.

import CShmSystem
import Synchronization

#if !hasFeature(Embedded)  // the C library will compile these files as one module with the allocator
    @_spi(CrashTesting) @_spi(PathCounters) import ShmAlloc
    import ShmFormat
#endif

extension PathCache {
    /// Caches `flags` for `path`, or replaces the flags cached for it (the last writer wins).
    ///
    /// `path` is taken as bytes: absolute, not normalised, without a terminating NUL. Async-signal-safe.
    /// A completed insert is counted in this process's owner entry (`PathCounters`).
    ///
    /// - Throws: ``PathCacheError/invalidPath`` for an empty or relative path;
    ///   ``PathCacheError/nameTooLong(length:longest:)`` beyond ``longestPath``;
    ///   ``PathCacheError/outOfSpace`` when a new table or entry does not fit (nothing changed).
    public func insert(_ path: UnsafeRawBufferPointer, flags: PathFlags) throws(PathCacheError) {
        try checkAbsolute(path)
        guard path.count <= longestPath else { throw .nameTooLong(length: path.count, longest: longestPath) }
        let root = try root()
        // The prefix count stays at or above the number of entries with the prefix flag: raised
        // before an entry can gain the flag, lowered only after an entry lost it (or when this
        // insert turns out to add none). Relaxed: the count publishes nothing; a search that
        // happens after this insert completes reads this increment or a later value, and a later
        // decrement is one of an insert that saw this one's flags (see `replaceFlags`).
        let addsPrefix = flags.contains(.prefix)
        if addsPrefix {
            prefixCount(root).pointee.add(1, ordering: .relaxed)
            crashPoint(.pathPrefixCounted, at: root)
        }
        let previousFlags: UInt8
        do {
            previousFlags = try place(path, flags: flags.rawValue, root: root)
        } catch {
            if addsPrefix { prefixCount(root).pointee.subtract(1, ordering: .relaxed) }
            throw error
        }
        if previousFlags & PathCacheLayout.prefixFlag != 0 { prefixCount(root).pointee.subtract(1, ordering: .relaxed) }
        crashPoint(.pathInsertPublished, at: root)
        count(PathCounters.insertsIndex, in: cache.pathCounters())
    }

    /// The flags cached for `path`: those of its own entry, else those of its longest ancestor at
    /// a `/` boundary whose entry carries the prefix flag (`/usr/local` answers for
    /// `/usr/local/bin/cc`, not for `/usr/localx`; `/` for every path); `nil` when neither exists.
    /// A path too long to be cached itself may still be answered by an ancestor. Async-signal-safe.
    /// Counted, with whether it was answered, in this process's owner entry (`PathCounters`).
    ///
    /// - Throws: ``PathCacheError/invalidPath`` for an empty or relative path.
    public func search(_ path: UnsafeRawBufferPointer) throws(PathCacheError) -> PathFlags? {
        try checkAbsolute(path)
        let flags = answer(path)
        let counters = cache.pathCounters()
        count(PathCounters.searchesIndex, in: counters)
        crashPoint(.pathSearchCounted, at: counters)
        if flags != nil { count(PathCounters.hitsIndex, in: counters) }
        return flags
    }

    /// Adds one to this process's path counter `index` (see `SharedCache.pathCounters()`).
    ///
    /// A relaxed load and store, not an atomic add: only this process writes the counters, so no
    /// count is lost between processes, while two threads of one process incrementing at once may
    /// keep one increment of the two. Measured (AMD EPYC, 2 cores): a `lock add` costs 1.8 ns, a
    /// load and store 0.5 ns (chained in a tight loop), and a search hit makes two, which with the
    /// call to `pathCounters()` would take an atomic add past the 2 ns budget for statistics; two
    /// threads doing nothing but searches (shmbench's paths group) kept 93 % of their counts on an
    /// idle machine (99.5-100 % on a busy one), two doing nothing but increments 50-83 %. A hit
    /// rate, a ratio of two counters losing alike, stays true. Statistics: speed wins over exactness.
    @inline(__always)
    func count(_ index: Int, in counters: UnsafeMutablePointer<Atomic<UInt64>>) {
        let counter = counters + index
        counter.pointee.store(counter.pointee.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
    }

    /// ``search(_:)`` of an absolute path, not counted.
    @inline(__always)
    func answer(_ path: UnsafeRawBufferPointer) -> PathFlags? {
        guard let root = existingRoot() else { return nil }
        if path.count <= longestPath, let flags = find(path, root: root) { return PathFlags(rawValue: flags) }
        // Relaxed: see `insert`; no prefix entries is the common case, and costs this one load.
        guard prefixCount(root).pointee.load(ordering: .relaxed) != 0 else { return nil }
        // Ancestors, longest first: the bytes before each '/' after the first, then "/" itself.
        // (Buffers made from a start and a count, not slices: generic code stays off this path.)
        var end = path.count &- 1 < longestPath ? path.count &- 1 : longestPath
        while end > 0 {
            if path[end] == PathCache.slash,
                let flags = find(UnsafeRawBufferPointer(start: path.baseAddress, count: end), root: root),
                flags & PathCacheLayout.prefixFlag != 0
            {
                return PathFlags(rawValue: flags)
            }
            end &-= 1
        }
        if path.count > 1, let flags = find(UnsafeRawBufferPointer(start: path.baseAddress, count: 1), root: root),
            flags & PathCacheLayout.prefixFlag != 0
        {
            return PathFlags(rawValue: flags)
        }
        return nil
    }

    @inline(__always) static var slash: UInt8 { UInt8(ascii: "/") }

    @inline(__always)
    func checkAbsolute(_ path: UnsafeRawBufferPointer) throws(PathCacheError) {
        guard path.count > 0, path[0] == PathCache.slash else { throw .invalidPath }
    }

    // MARK: - The way down

    /// The bucket slot where the way of `hash` starts, or `nil` when its bucket table does not exist.
    @inline(__always)
    func bucketSlot(_ root: UnsafeMutableRawPointer, hash: UInt64) -> UnsafeMutablePointer<Atomic<UInt32>>? {
        // Acquire: the bucket's bytes, written before its slot was set.
        let bucket = slotWord(
            root + PathCacheLayout.tableHeaderSize, PathCacheLayout.rootIndex(hash: hash, slotCount: tableSlotCount)
        )
        .pointee.load(ordering: .acquiring)
        guard bucket != 0 else { return nil }
        return slotWord(
            node(bucket) + PathCacheLayout.tableHeaderSize,
            PathCacheLayout.bucketIndex(hash: hash, slotCount: tableSlotCount))
    }

    /// True when `entry` (with meta word `meta`) holds `path`, whose match key is `key`.
    @inline(__always)
    func holds(
        _ entry: UnsafeMutableRawPointer, _ meta: PathCacheLayout.Meta, _ path: UnsafeRawBufferPointer, key: UInt64
    ) -> Bool {
        meta.matchKey == key && memcmp(entry + bytesOffset(meta), path.baseAddress!, path.count) == 0
    }

    /// Where an entry's path bytes start.
    @inline(__always)
    func bytesOffset(_ meta: PathCacheLayout.Meta) -> Int { PathCacheLayout.childrenOffset &+ 4 &<< meta.fanOutShift }

    /// The child slot of `entry` that the way continues in.
    @inline(__always)
    func childSlot(
        _ entry: UnsafeMutableRawPointer, _ meta: PathCacheLayout.Meta, _ digits: inout PathCacheLayout.HashDigits
    ) -> UnsafeMutablePointer<Atomic<UInt32>> {
        slotWord(entry + PathCacheLayout.childrenOffset, digits.next(fanOutShift: meta.fanOutShift))
    }

    /// The flags of `path`'s own entry, or `nil`.
    @inline(__always)
    func find(_ path: UnsafeRawBufferPointer, root: UnsafeMutableRawPointer) -> UInt8? {
        let hash = PathCacheLayout.hash(path)
        guard var slot = bucketSlot(root, hash: hash) else { return nil }
        let key = PathCacheLayout.Meta.matchKey(length: path.count, hash: hash)
        var digits = PathCacheLayout.HashDigits(hash: hash)
        // Acquire: an entry's bytes were written before the slot naming it was set.
        var current = slot.pointee.load(ordering: .acquiring)
        var depth = 0
        while current != 0 {
            // The entries form a tree (see PathCacheLayout.swift): a deeper way is a corrupt file.
            depth &+= 1
            assert(depth <= PathCacheLayout.maxDepth, "a search went \(depth) entries deep")
            let entry = node(current)
            // Relaxed: the immutable bits are covered by the slot's acquire; the flags are one word.
            let meta = PathCacheLayout.Meta(rawValue: word(entry, at: 0).pointee.load(ordering: .relaxed))
            if holds(entry, meta, path, key: key) { return meta.flags }
            slot = childSlot(entry, meta, &digits)
            current = slot.pointee.load(ordering: .acquiring)
        }
        return nil
    }

    /// Puts `path` with `flags` in its place: a new entry in the first empty slot of its way, or
    /// new flags in its entry. Returns the flags it had (0 when new).
    private func place(_ path: UnsafeRawBufferPointer, flags: UInt8, root: UnsafeMutableRawPointer)
        throws(PathCacheError) -> UInt8
    {
        let hash = PathCacheLayout.hash(path)
        let bucket = try bucket(root, PathCacheLayout.rootIndex(hash: hash, slotCount: tableSlotCount))
        var slot = slotWord(
            bucket + PathCacheLayout.tableHeaderSize, PathCacheLayout.bucketIndex(hash: hash, slotCount: tableSlotCount)
        )
        let shape = PathCacheLayout.entryShape(length: path.count, geometry: cache.geometry)
        let meta = PathCacheLayout.Meta(flags: flags, fanOutShift: shape.fanOutShift, length: path.count, hash: hash)
        var digits = PathCacheLayout.HashDigits(hash: hash)
        // This insert's entry once written: carried down past slots other inserts filled first.
        var pending = ShmOffset.null
        while true {
            // Acquire: an entry's bytes were written before the slot naming it was set.
            var current = slot.pointee.load(ordering: .acquiring)
            if current == 0 {
                if pending.isNull { pending = try newEntry(path, meta: meta, request: shape.request) }
                // Release: the entry's bytes before the slot. Acquire on failure: the winner's.
                let exchanged: Bool
                (exchanged, current) = slot.pointee.compareExchange(
                    expected: 0, desired: self.slot(of: pending), successOrdering: .releasing,
                    failureOrdering: .acquiring)
                if exchanged { return 0 }
            }
            let entry = node(current)
            // Relaxed: as in `find`.
            let entryMeta = PathCacheLayout.Meta(rawValue: word(entry, at: 0).pointee.load(ordering: .relaxed))
            assert(entryMeta.length > 0 && entryMeta.fanOutShift >= 1, "an entry's meta word is not one")
            if holds(entry, entryMeta, path, key: meta.matchKey) {
                if !pending.isNull {
                    freeUnpublished(pending)
                    crashPoint(.pathDuplicateFreed, at: entry)
                }
                return replaceFlags(of: entry, seen: entryMeta, with: flags)
            }
            slot = childSlot(entry, entryMeta, &digits)
        }
    }

    /// Stores `flags` in a cached entry and returns the flags it replaced. One word's writes are
    /// seen in one order by all, so the last exchange wins. Acquire-release, though the flags
    /// publish nothing: an insert that takes the prefix flag away then lowers the prefix count
    /// after the raise of the insert that set it (which preceded that insert's exchange), so the
    /// count never dips, not even for a moment. Flags already equal (the common re-insert of a
    /// verdict) are not written, sparing every reader's copy of the line.
    private func replaceFlags(of entry: UnsafeMutableRawPointer, seen: PathCacheLayout.Meta, with flags: UInt8) -> UInt8
    {
        if seen.flags == flags { return flags }
        let previous = word(entry, at: 0).pointee.exchange(
            seen.with(flags: flags).rawValue, ordering: .acquiringAndReleasing)
        crashPoint(.pathFlagsExchanged, at: entry)
        return PathCacheLayout.Meta(rawValue: previous).flags
    }

    /// A new, unpublished entry for `path`: meta word, empty child slots, bytes.
    private func newEntry(_ path: UnsafeRawBufferPointer, meta: PathCacheLayout.Meta, request: Int)
        throws(PathCacheError) -> ShmOffset
    {
        let offset: ShmOffset
        do { offset = try cache.allocate(request) } catch { throw .outOfSpace }
        let entry = cache.base + Int(truncatingIfNeeded: offset.rawValue)
        // Relaxed (and plain bytes below): published by the release CAS of the slot that names it.
        word(entry, at: 0).pointee.store(meta.rawValue, ordering: .relaxed)
        memset(entry + PathCacheLayout.childrenOffset, 0, 4 &<< meta.fanOutShift)
        (entry + bytesOffset(meta)).copyMemory(from: path.baseAddress!, byteCount: path.count)
        crashPoint(.pathEntryWritten, at: entry)
        return offset
    }
}
