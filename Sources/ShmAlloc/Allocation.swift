// The hot paths: allocate and free. Neither allocates memory, takes a lock or makes a system call;
// each changes one block's buddy word with one successful compare-and-swap.
//
// Memory ordering: a claim is a CAS with *acquire* ordering, so the new owner sees every write the
// previous owner made before its free, whose CAS is sequentially consistent (a release, and the
// pairing with the index that BlockSearch.swift's `advertiseFree` describes). The allocation
// header is written by the owner after the claim, with an atomic store: a refused free may race
// it with a CAS (see `release`). Another process that learns the offset (through its own
// synchronisation) sees the header.
//
// Crash windows, in order (each a `CrashPoint`, each with a test that kills a process there):
// allocate: intent │ claimIntentWritten │ claim CAS │ claimedBeforeHeader │ header store │
// headerWritten │ intent cleared.
// free: validation │ freeValidated │ intent │ freeIntentWritten │ header CAS to owner-less │
// freeHeaderReleased │ index insert │ freePreListed │ word CAS │ freeWordCleared │ intent cleared
// │ freeCleared │ index insert.
// (The index work of a search that claims, between its claim and the header store, has its own
// points in FreeSpaceIndex.swift, BlockSearch.swift and IndexRepair.swift.)

import CShmSystem
import Synchronization

#if !hasFeature(Embedded)  // the C library compiles the core's files as one module
    import ShmFormat
#endif

extension SharedCache {
    /// Allocates `byteCount` bytes and returns their offset.
    ///
    /// The request plus the 8-byte header is rounded up to a power of two (at least `minSize`);
    /// the node is claimed with one CAS. Async-signal-safe.
    ///
    /// - Throws: ``AllocationError/tooLarge(requested:largest:)`` when `byteCount` is negative or
    ///   exceeds ``Geometry/largestRequest``; ``AllocationError/outOfSpace(requested:)`` when no
    ///   block has room (also counted in the header's `failedAllocations`).
    @inline(__always)
    public func allocate(_ byteCount: Int) throws(AllocationError) -> ShmOffset {
        guard let order = geometry.order(forRequest: byteCount) else {
            throw .tooLarge(requested: byteCount, largest: geometry.largestRequest)
        }
        guard let (block, node, intent) = claimNode(order: order) else {
            failedAllocationCount.pointee.add(1, ordering: .relaxed)
            throw .outOfSpace(requested: byteCount)
        }
        // The node's offset in its block from its order, known here: `tree.byteOffset(ofNode:)`
        // would find the order again from the node number.
        let position = node &- tree.node(order: order, position: 0)
        let nodeOffset = block &<< blockShift &+ position &<< (order &+ minShift)
        crashPoint(.claimedBeforeHeader, at: base + nodeOffset)
        assert(
            nodeOffset >= firstNodeOffset && nodeOffset & (geometry.nodeSize(ofOrder: order) &- 1) == 0,
            "claimed node at \(nodeOffset) is outside the data region or misaligned")
        let header = AllocationHeader(ownerPID: ProcessIdentity.pid, requestedSize: byteCount, order: order)
        // Relaxed: the header is published by whatever hands the offset to another process.
        headerWord(atNode: nodeOffset).pointee.store(header.rawValue.littleEndian, ordering: .relaxed)
        crashPoint(.headerWritten, at: base + nodeOffset)
        // The header names the owner now; relaxed, as the intent was written (see OwnerTable).
        intent.pointee.store(0, ordering: .relaxed)
        return ShmOffset(rawValue: UInt64(nodeOffset &+ AllocationHeader.size))
    }

    /// Allocates `count × size` bytes, zero-filled. Async-signal-safe.
    ///
    /// - Throws: ``AllocationError/tooLarge(requested:largest:)`` also when `count × size` overflows.
    public func allocateZeroed(count: Int, size: Int) throws(AllocationError) -> ShmOffset {
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: size)
        guard !overflow, count >= 0, size >= 0 else {
            throw .tooLarge(requested: overflow ? Int.max : min(count, size), largest: geometry.largestRequest)
        }
        let offset = try allocate(byteCount)
        memset(base + Int(offset.rawValue), 0, byteCount)
        return offset
    }

    /// Frees the allocation whose usable bytes start at `offset`. ``ShmOffset/null`` is a no-op.
    ///
    /// The offset is validated before anything changes: it must lie in the data region past the
    /// null page, be aligned to a node of the order its header records, that node must be an
    /// allocation (set, with a clear parent), and its header must name an owner (an owner-less
    /// header is what a free leaves). A refused free changes nothing in the cache, bumps the
    /// header's `invalidFrees` counter, and throws. Async-signal-safe.
    ///
    /// Racing frees of one offset: exactly one succeeds. The header is taken by a CAS from the
    /// value that was validated, so a caller that loses the race is refused without writing
    /// anything, even when the node was freed and handed to a new owner in the meantime.
    ///
    /// Not detectable: freeing an offset a second time *after* another caller was handed the same
    /// node again; that frees the new owner's allocation, as with any offset-based allocator.
    @inline(__always)
    public func free(_ offset: ShmOffset) throws(FreeError) {
        if offset.isNull { return }
        try release(offset)
    }

    /// The header word of the node at `nodeOffset` from the user base.
    @inline(__always)
    private func headerWord(atNode nodeOffset: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
        (base + nodeOffset).assumingMemoryBound(to: Atomic<UInt64>.self)
    }

    /// Counts a refused free in the header and returns its error: out of line, so that the hot
    /// path of `release` keeps its registers for the free.
    @inline(never)
    private func refused(_ error: FreeError) -> FreeError {
        invalidFreeCount.pointee.add(1, ordering: .relaxed)
        return error
    }

    /// The validation and the writes of `free`.
    @inline(__always)
    private func release(_ offset: ShmOffset) throws(FreeError) {
        let nodeStart = Int(truncatingIfNeeded: offset.rawValue) &- AllocationHeader.size
        guard offset.rawValue <= UInt64(truncatingIfNeeded: capacity), nodeStart >= firstNodeOffset else {
            throw refused(.outOfRange(offset))
        }
        guard nodeStart & (geometry.minSize &- 1) == 0 else { throw refused(.misaligned(offset)) }
        let headerWord = headerWord(atNode: nodeStart)
        let stored = headerWord.pointee.load(ordering: .relaxed)
        guard let header = AllocationHeader(rawValue: UInt64(littleEndian: stored)), header.order < orderCount,
            header.requestedSize <= geometry.nodeSize(ofOrder: header.order) &- AllocationHeader.size
        else { throw refused(.corruptedHeader(offset)) }
        let block = nodeStart &>> blockShift
        let offsetInBlock = nodeStart & (geometry.blockSize &- 1)
        guard offsetInBlock & (geometry.nodeSize(ofOrder: header.order) &- 1) == 0 else {
            throw refused(.misaligned(offset))
        }
        let node = tree.node(order: header.order, position: offsetInBlock &>> (minShift &+ header.order))

        var word = words[block].load(ordering: .relaxed)
        guard tree.isAllocation(word, node: node) else {
            throw refused(word & (UInt64(1) &<< UInt64(node)) == 0 ? .notAllocated(offset) : .insideAllocation(offset))
        }
        // What a free leaves behind: the node was freed already, or is being claimed again.
        guard !header.isReleased else { throw refused(.notAllocated(offset)) }
        crashPoint(.freeValidated, at: headerWord)
        // From the owner-less header to the word's CAS, only the intent names who frees the node.
        let slot = cursorSlot()
        let intent = owners.intent(slot: slot)
        intent.pointee.store(OwnerTable.intent(block: block, node: node), ordering: .relaxed)
        crashPoint(.freeIntentWritten, at: headerWord)

        // Take the header from the validated value to owner-less, or refuse without a write: if it
        // changed, another caller freed this node since, and it may be a new owner's node now
        // whose header must survive. From here on this call is the node's only freer. The
        // owner-less header goes before the word's CAS, so a claimer killed before it writes its
        // own header leaves a node that names no owner rather than this one.
        let released = header.released.rawValue.littleEndian
        guard headerWord.pointee.compareExchange(expected: stored, desired: released, ordering: .relaxed).exchanged
        else {
            intent.pointee.store(0, ordering: .relaxed)
            throw refused(.notAllocated(offset))
        }
        crashPoint(.freeHeaderReleased, at: headerWord)

        let mask = setMasks[node]
        var (exchanged, afterClass) = clearNode(mask, inBlock: block, word: &word, headerWord: headerWord)
        if !exchanged {
            afterClass = try retryClear(
                node, mask: mask, inBlock: block, word: word, headerWord: headerWord, stored: stored, intent: intent,
                offset: offset)
        }
        crashPoint(.freeWordCleared, at: headerWord)
        intent.pointee.store(0, ordering: .relaxed)
        crashPoint(.freeCleared, at: headerWord)
        // Listed again unless the pre-CAS listing is still there (see `advertiseFree`).
        list(block, class: afterClass)
        rememberFreedNode(block: block, node: node, order: header.order, slot: slot)
    }

    /// One attempt at a free's word CAS: lists the block under the class the free leaves it in,
    /// then clears `mask` in the block's word with one CAS from `word`, the word as last read.
    ///
    /// - Returns: whether the CAS succeeded (`word` is then what the block holds now), and the
    ///   class the block was listed under.
    @inline(__always)
    private func clearNode(
        _ mask: UInt64, inBlock block: Int, word: inout UInt64, headerWord: UnsafeMutablePointer<Atomic<UInt64>>
    ) -> (exchanged: Bool, afterClass: Int) {
        let after = word & ~mask
        // Listed before the CAS: a process killed right after it leaves the block findable.
        let afterClass = advertiseFree(block: block, after: after)
        crashPoint(.freePreListed, at: headerWord)
        // Sequentially consistent: a release for the next owner, and ordered before the index
        // reads of `advertiseFree` that follow it (see its comment).
        let (exchanged, current) = words[block].compareExchange(
            expected: word, desired: after, successOrdering: .sequentiallyConsistent, failureOrdering: .relaxed)
        // Invariants of a release: the word it cleared held the node as an allocation (validated
        // before), and what is left is a buddy tree whose class is the one listed.
        // (A set mask's lowest bit is its node.)
        assert(
            !exchanged || (tree.isAllocation(current, node: mask.trailingZeroBitCount) && tree.isValid(after)),
            "free in block \(block) left an invalid word")
        assert(afterClass == tree.largestFreeOrder(after) ?? 0, "block \(block) listed under the wrong class")
        word = current
        return (exchanged, afterClass)
    }

    /// The attempts after a free's first CAS failed (another claim or free changed the block's
    /// word): out of line, so that the free's usual path is straight.
    ///
    /// - Returns: the class the block was listed under.
    @inline(never)
    private func retryClear(
        _ node: Int, mask: UInt64, inBlock block: Int, word: UInt64, headerWord: UnsafeMutablePointer<Atomic<UInt64>>,
        stored: UInt64, intent: UnsafeMutablePointer<Atomic<UInt64>>, offset: ShmOffset
    ) throws(FreeError) -> Int {
        var word = word
        while true {
            // Only this call frees the node now, and a claim cannot take an allocated node, so the
            // node is still an allocation (as validated, in the word the first CAS tried), unless
            // it was freed between the word check and the header CAS and its bytes now lie inside a
            // larger allocation that happens to hold the validated header value: then give those
            // bytes back and refuse.
            guard tree.isAllocation(word, node: node) else {
                // The owner-less header the CAS stored, from the validated value: recomputed here
                // rather than passed, which would keep it in a register on the usual path. (`!`,
                // not `unsafelyUnwrapped`: a debug build makes `Optional`'s metadata for the
                // latter at run time, under a lock.)
                let released = AllocationHeader(rawValue: UInt64(littleEndian: stored))!.released.rawValue.littleEndian
                _ = headerWord.pointee.compareExchange(expected: released, desired: stored, ordering: .relaxed)
                intent.pointee.store(0, ordering: .relaxed)
                throw refused(.insideAllocation(offset))
            }
            let (exchanged, afterClass) = clearNode(mask, inBlock: block, word: &word, headerWord: headerWord)
            if exchanged { return afterClass }
        }
    }

    // MARK: - Pointer wrappers

    /// ``allocate(_:)`` returning a pointer into this process's mapping.
    @inline(__always)
    public func allocatePointer(_ byteCount: Int) throws(AllocationError) -> UnsafeMutableRawPointer {
        base + Int(try allocate(byteCount).rawValue)
    }

    /// ``allocateZeroed(count:size:)`` returning a pointer into this process's mapping.
    public func allocateZeroedPointer(count: Int, size: Int) throws(AllocationError) -> UnsafeMutableRawPointer {
        base + Int(try allocateZeroed(count: count, size: size).rawValue)
    }

    /// ``free(_:)`` of a pointer into this process's mapping; `nil` is a no-op.
    public func free(pointer: UnsafeRawPointer?) throws(FreeError) {
        guard let pointer else { return }
        guard let offset = offset(of: pointer) else {
            throw refused(.outOfRange(ShmOffset(rawValue: UInt64(UInt(bitPattern: pointer)))))
        }
        try free(offset)
    }
}
