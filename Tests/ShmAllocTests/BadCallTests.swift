// Every bad call gets its own error and leaves the cache exactly as it was.

import Foundation
import ShmAlloc
import ShmFormat
import ShmTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A cache with a few live allocations whose bytes are known, and a snapshot to compare against.
struct PopulatedCache {
    let scratch: ScratchDirectory
    let cache: SharedCache
    /// Live allocations: offset and the bytes written into them.
    var live: [(offset: ShmOffset, bytes: [UInt8])] = []

    static let geometry = try! Geometry(minSize: 32, maxSize: 1024, capacity: 256 << 10)

    init() throws {
        scratch = try ScratchDirectory()
        cache = try makeCache(at: scratch.file("cache.shm"), geometry: Self.geometry)
        for (index, size) in [1, 24, 25, 100, 500, 1016].enumerated() {
            let offset = try cache.allocate(size)
            let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) }
            bytes.withUnsafeBytes { cache.pointer(to: offset)!.copyMemory(from: $0.baseAddress!, byteCount: size) }
            live.append((offset, bytes))
        }
    }

    /// Every buddy word, the allocation counters, and every live allocation's header and bytes.
    struct Snapshot: Equatable {
        let words: [UInt64]
        let failedAllocations: UInt64
        let data: [[UInt8]]
    }

    func snapshot() -> Snapshot {
        Snapshot(
            words: cache.allWords, failedAllocations: cache.failedAllocations,
            data: live.map { allocation in
                let start = cache.pointer(to: allocation.offset)! - AllocationHeader.size
                return Array(
                    UnsafeRawBufferPointer(start: start, count: AllocationHeader.size + allocation.bytes.count))
            })
    }

    /// Expects `body` to throw exactly `expected`, with `message`, and to change nothing but the
    /// refused-free counter (which a refused free bumps by one).
    func expectRefused<Failure: Error & Equatable & CustomStringConvertible>(
        _ expected: Failure, message: String, countsAsInvalidFree: Bool,
        sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws(Failure) -> Void
    ) {
        let before = snapshot()
        let invalidFreesBefore = cache.invalidFrees
        do {
            try body()
            Issue.record("expected \(expected), but the call succeeded", sourceLocation: sourceLocation)
        } catch {
            #expect(error == expected, sourceLocation: sourceLocation)
            #expect(error.description == message, sourceLocation: sourceLocation)
        }
        #expect(snapshot() == before, "the cache changed", sourceLocation: sourceLocation)
        #expect(
            cache.invalidFrees == invalidFreesBefore + (countsAsInvalidFree ? 1 : 0), sourceLocation: sourceLocation)
    }

    /// Writes a plausible allocation header at `offset - 8` inside user data: a forgery.
    func forgeHeader(before offset: ShmOffset, order: Int) {
        let header = AllocationHeader(ownerPID: getpid(), requestedSize: 8, order: order)
        (cache.base + Int(offset.rawValue) - AllocationHeader.size).storeBytes(
            of: header.rawValue.littleEndian, as: UInt64.self)
    }
}

@Suite("Bad calls are refused and change nothing")
struct BadCallTests {
    @Test("double free")
    func doubleFree() throws {
        var populated = try PopulatedCache()
        let (offset, _) = populated.live.removeFirst()
        try populated.cache.free(offset)
        populated.expectRefused(
            FreeError.notAllocated(offset), message: "free of \(offset): not allocated (double free?)",
            countsAsInvalidFree: true
        ) { () throws(FreeError) in try populated.cache.free(offset) }
    }

    @Test("an offset inside an allocation: plain data, and a forged header")
    func insideAllocation() throws {
        let populated = try PopulatedCache()
        let large = populated.live[5].offset  // 1016 B: a whole block
        let inside = ShmOffset(rawValue: large.rawValue + 64)
        populated.expectRefused(
            FreeError.corruptedHeader(inside), message: "free of \(inside): the allocation header is corrupted",
            countsAsInvalidFree: true
        ) { () throws(FreeError) in try populated.cache.free(inside) }

        // With a well-formed header under it, only the buddy word can tell: the node's parent is set.
        // (Its own offsets: placement may differ between two caches, e.g. under AddressSanitizer,
        // whose fake stacks change the stack address that picks a thread's search cursor.)
        var forged = try PopulatedCache()
        // Its bytes change on purpose.
        let forgedInside = ShmOffset(rawValue: forged.live.removeLast().offset.rawValue + 64)
        forged.forgeHeader(before: forgedInside, order: 0)
        forged.expectRefused(
            FreeError.insideAllocation(forgedInside),
            message: "free of \(forgedInside): points inside another allocation",
            countsAsInvalidFree: true
        ) { () throws(FreeError) in try forged.cache.free(forgedInside) }
    }

    @Test("a misaligned offset: off the minimum size, and off the node size its header claims")
    func misaligned() throws {
        var populated = try PopulatedCache()
        let offset = populated.live[3].offset  // 100 B: a 128 B node
        let byOne = ShmOffset(rawValue: offset.rawValue + 1)
        populated.expectRefused(
            FreeError.misaligned(byOne), message: "free of \(byOne): not the start of an allocation",
            countsAsInvalidFree: true
        ) { () throws(FreeError) in try populated.cache.free(byOne) }
        let byMinSize = ShmOffset(rawValue: offset.rawValue + 32)
        populated.live.remove(at: 3)
        populated.forgeHeader(before: byMinSize, order: 1)  // a 64 B node cannot start 32 B into a 128 B node
        populated.expectRefused(
            FreeError.misaligned(byMinSize), message: "free of \(byMinSize): not the start of an allocation",
            countsAsInvalidFree: true
        ) { () throws(FreeError) in try populated.cache.free(byMinSize) }
    }

    @Test("offsets in the null page and past the end")
    func outOfRange() throws {
        let populated = try PopulatedCache()
        let capacity = UInt64(PopulatedCache.geometry.capacity)
        for raw in [8, 64, UInt64(populated.cache.layout.nullRegionLength), capacity + 8, capacity + 4096, .max] {
            let offset = ShmOffset(rawValue: raw)
            populated.expectRefused(
                FreeError.outOfRange(offset), message: "free of \(offset): outside the allocatable region",
                countsAsInvalidFree: true
            ) { () throws(FreeError) in try populated.cache.free(offset) }
        }
        var outside: UInt8 = 0
        let pointer = withUnsafeMutablePointer(to: &outside) { UnsafeRawPointer($0) }
        let asOffset = ShmOffset(rawValue: UInt64(UInt(bitPattern: pointer)))
        populated.expectRefused(
            FreeError.outOfRange(asOffset), message: "free of \(asOffset): outside the allocatable region",
            countsAsInvalidFree: true
        ) { () throws(FreeError) in try populated.cache.free(pointer: pointer) }
    }

    @Test("freeing SHM_NULL or a nil pointer is a no-op, not an error")
    func nullIsNoOp() throws {
        let populated = try PopulatedCache()
        let before = populated.snapshot()
        try populated.cache.free(.null)
        try populated.cache.free(pointer: nil)
        #expect(populated.snapshot() == before)
        #expect(populated.cache.invalidFrees == 0)
    }

    @Test("an allocation whose header was overwritten is refused, and frees once the header is back")
    func corruptedHeader() throws {
        var populated = try PopulatedCache()
        let (offset, _) = populated.live.remove(at: 2)
        let headerAddress = populated.cache.pointer(to: offset)! - AllocationHeader.size
        let original = headerAddress.load(as: UInt64.self)
        for corruption: UInt64 in [0, ~original, original ^ 1 << 40, original ^ 1 << 60] {
            headerAddress.storeBytes(of: corruption, as: UInt64.self)
            populated.expectRefused(
                FreeError.corruptedHeader(offset), message: "free of \(offset): the allocation header is corrupted",
                countsAsInvalidFree: true
            ) { () throws(FreeError) in try populated.cache.free(offset) }
        }
        headerAddress.storeBytes(of: original, as: UInt64.self)
        try populated.cache.free(offset)
    }

    @Test("requests that are negative, too large, or overflow")
    func badRequests() throws {
        let populated = try PopulatedCache()
        let largest = PopulatedCache.geometry.largestRequest
        for size in [-1, largest + 1, .max, .min] {
            populated.expectRefused(
                AllocationError.tooLarge(requested: size, largest: largest),
                message: "request of \(size) bytes exceeds the largest allocation (\(largest) bytes)",
                countsAsInvalidFree: false
            ) { () throws(AllocationError) in _ = try populated.cache.allocate(size) }
        }
        populated.expectRefused(
            AllocationError.tooLarge(requested: .max, largest: largest),
            message: "request of \(Int.max) bytes exceeds the largest allocation (\(largest) bytes)",
            countsAsInvalidFree: false
        ) { () throws(AllocationError) in
            _ = try populated.cache.allocateZeroed(count: .max / 2, size: 3)
        }
        populated.expectRefused(
            AllocationError.tooLarge(requested: -1, largest: largest),
            message: "request of -1 bytes exceeds the largest allocation (\(largest) bytes)",
            countsAsInvalidFree: false
        ) { () throws(AllocationError) in
            _ = try populated.cache.allocateZeroed(count: -1, size: 1)
        }
    }

    @Test("a full cache refuses with outOfSpace and counts it; a freed block is reused, zero-filled on request")
    func outOfSpace() throws {
        let populated = try PopulatedCache()
        let cache = populated.cache
        let emptyBlocks = cache.allWords.filter { $0 == 0 }.count
        var taken: [ShmOffset] = []
        while let offset = try? cache.allocate(1016) {
            memset(cache.pointer(to: offset)!, 0xAB, 1016)
            taken.append(offset)
        }
        #expect(taken.count == emptyBlocks, "a whole-block request fits exactly the blocks that were empty")
        let failedBefore = cache.failedAllocations
        #expect(throws: AllocationError.outOfSpace(requested: 1016)) { try cache.allocate(1016) }
        #expect(cache.failedAllocations == failedBefore + 1)
        #expect(
            AllocationError.outOfSpace(requested: 1016).description == "no free node for 1016 bytes: the cache is full")

        let freed = taken[taken.count / 2]
        try cache.free(freed)
        let zeroed = try cache.allocateZeroed(count: 10, size: 100)
        #expect(zeroed == freed, "the freed block is the only room left")
        #expect(UnsafeRawBufferPointer(start: cache.pointer(to: zeroed)!, count: 1000).allSatisfy { $0 == 0 })
    }
}
