// The hot paths: allocate and free. Neither allocates memory, takes a lock or makes a system call;
// each changes one block's buddy word with one successful compare-and-swap.
//
// Memory ordering: a claim is a CAS with *acquire* ordering, so the new owner sees every write the
// previous owner made before its *release* free. The allocation header is written by the owner
// after the claim; another process that learns the offset (through its own synchronisation) sees it.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import ShmFormat
import Synchronization

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
        guard let (block, node) = claimNode(order: order) else {
            failedAllocationCount.pointee.add(1, ordering: .relaxed)
            throw .outOfSpace(requested: byteCount)
        }
        let nodeOffset = block &<< blockShift &+ tree.byteOffset(ofNode: node, minSize: geometry.minSize)
        let header = AllocationHeader(ownerPID: ProcessIdentity.pid, requestedSize: byteCount, order: order)
        (base + nodeOffset).storeBytes(of: header.rawValue.littleEndian, as: UInt64.self)
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
    /// null page, be aligned to a node of the order its header records, and that node must be an
    /// allocation (set, with a clear parent). A refused free changes nothing in the cache, bumps
    /// the header's `invalidFrees` counter, and throws. Async-signal-safe.
    ///
    /// Not detectable: freeing an offset a second time *after* another caller was handed the same
    /// node again; that frees the new owner's allocation, as with any offset-based allocator.
    public func free(_ offset: ShmOffset) throws(FreeError) {
        if offset.isNull { return }
        do throws(FreeError) {
            try release(offset)
        } catch {
            invalidFreeCount.pointee.add(1, ordering: .relaxed)
            throw error
        }
    }

    /// The validation and the CAS of `free`.
    @inline(__always)
    private func release(_ offset: ShmOffset) throws(FreeError) {
        let nodeStart = Int(truncatingIfNeeded: offset.rawValue) &- AllocationHeader.size
        guard offset.rawValue <= UInt64(geometry.capacity), nodeStart >= firstBlock &<< blockShift else {
            throw .outOfRange(offset)
        }
        guard nodeStart & (geometry.minSize &- 1) == 0 else { throw .misaligned(offset) }
        let raw = UInt64(littleEndian: (base + nodeStart).load(as: UInt64.self))
        guard let header = AllocationHeader(rawValue: raw), header.order < geometry.orderCount,
              header.requestedSize <= geometry.nodeSize(ofOrder: header.order) &- AllocationHeader.size
        else { throw .corruptedHeader(offset) }
        let block = nodeStart &>> blockShift
        let offsetInBlock = nodeStart & (geometry.blockSize &- 1)
        guard offsetInBlock & (geometry.nodeSize(ofOrder: header.order) &- 1) == 0 else { throw .misaligned(offset) }
        let node = tree.node(order: header.order, position: offsetInBlock &>> (minShift &+ header.order))
        let mask = setMasks[node]

        var word = words[block].load(ordering: .relaxed)
        while true {
            guard tree.isAllocation(word, node: node) else {
                throw word & (UInt64(1) &<< UInt64(node)) == 0 ? .notAllocated(offset) : .insideAllocation(offset)
            }
            // Before the node can be claimed again: a claimer killed before it writes its own
            // header must not leave ours there, or the inspector counts the node as ours.
            (base + nodeStart).storeBytes(of: header.released.rawValue.littleEndian, as: UInt64.self)
            let (exchanged, current) = words[block].compareExchange(
                expected: word, desired: word & ~mask, successOrdering: .releasing, failureOrdering: .relaxed)
            if exchanged { break }
            word = current
        }
        didFree(block: block, after: word & ~mask)
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
            invalidFreeCount.pointee.add(1, ordering: .relaxed)
            throw .outOfRange(ShmOffset(rawValue: UInt64(UInt(bitPattern: pointer))))
        }
        try free(offset)
    }
}
