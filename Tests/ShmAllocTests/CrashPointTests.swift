// A process killed at every window between two writes to shared memory (CrashPoint), and a free
// refused in the middle of a race: after each, the cache must be whole, nothing it holds may be
// lost to the index, and a refused free must have written nothing.

import Foundation
import ShmFormat
import ShmTestSupport
import Testing

@_spi(CrashTesting) @testable import ShmAlloc

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Crash points")
struct CrashPointTests {
    /// 2048 blocks: enough for two index levels, so summary bits are exercised too.
    static let geometry = try! Geometry(minSize: 32, maxSize: 1024, capacity: 2 << 20)

    /// Every crash point with the reaches to kill at: the first (a young cache, the first
    /// allocation's index work) and later ones.
    /// (`ownerEntryClaimed` is reached once, when a process registers: PathCacheProcessTests kills
    /// there. Race hooks precede any write: race tests interleave there.)
    static let cases: [(CrashPoint, Int)] = CrashPoint.allCases.filter {
        !$0.isRaceHook && $0 != .ownerEntryClaimed && !$0.isPathCachePoint
    }
    .flatMap { point in
        (point == .repairMidway ? [1, 2] : [1, 2, 31]).map { (point, $0) }
    }

    @Test(
        "killed at a crash point: words valid, survivors freeable, fills to 0 B free, index complete",
        .timeLimit(.minutes(3)), arguments: cases)
    func killedAt(point: CrashPoint, hit: Int) throws {
        let scratch = try ScratchDirectory()
        let path = scratch.file("crash.shm")
        _ = try makeCache(at: path, geometry: Self.geometry)
        let victim = try runToEnd(
            BuiltProducts.helper, ["crash", path, point.name, "\(hit)", "\(hit * 7919)"], in: scratch)
        try #require(
            victim.termination == .signalled(SIGKILL), "the helper must die at \(point) #\(hit): \(victim.outputTail)")

        let cache = try SharedCache(path: path, policy: .attach)
        #expect(cache.invalidBlocks == [])
        let census = cache.allocationCensus(owner: victim.pid)
        // A process killed inside allocate (claimed, no header yet: also inside the index work of
        // the search that claimed) or inside free (header released, word not yet cleared) leaves
        // one node whose header names nobody: its intent in the owner table must name it.
        #expect(census.ownerless.count <= 1, "nodes left without an owner: \(census.ownerless)")
        let intents = cache.intents(of: victim.pid)
        for node in census.ownerless {
            #expect(intents.contains(node), "node \(node) is named by no intent of the dead process: \(intents)")
        }
        for offset in census.owned {
            #expect(throws: Never.self, "a survivor of the dead process must be freeable") { try cache.free(offset) }
        }

        // Fill with the smallest requests: the first failure must come with no byte free.
        var filled: [ShmOffset] = []
        while let offset = try? cache.allocate(1) { filled.append(offset) }
        #expect(cache.freeBytes == 0, "free space hidden from the index (repairs: \(cache.repairPasses))")
        for offset in filled { try cache.free(offset) }
        #expect(cache.freeBytes == cache.allocatableBytes - census.ownerlessBytes)
        #expect(cache.unlistedBlocks == [], "every block must be reachable under its class")
        #expect(cache.invalidBlocks == [])
    }

    @Test("a free refused in a race writes nothing: the next owner of the node keeps its header")
    func refusedFreeLeavesTheNextOwnersHeader() throws {
        let scratch = try ScratchDirectory()
        let cache = try makeCache(at: scratch.file("race.shm"), geometry: Self.geometry)
        let first = try cache.allocate(100)  // a 128-byte node
        nonisolated(unsafe) var second = ShmOffset.null
        // Between this free's validation and its first write, the owner frees the node and a
        // smaller allocation takes its start (same block: the cursor).
        CrashPoints.arm(.freeValidated, in: cache) {
            try! cache.free(first)
            second = try! cache.allocate(40)
        }
        #expect(throws: FreeError.notAllocated(first)) { try cache.free(first) }
        try #require(second == first, "the smaller node must start where the freed one did")
        let header = try #require(cache.header(of: second), "the new owner's header must be intact")
        #expect(header.ownerPID == getpid() && header.requestedSize == 40)
        try cache.free(second)
        #expect(cache.usedBlocks == [])
        #expect(cache.invalidFrees == 1)
    }

    @Test("a cache created by another opener between this one's fstat and its header read opens (no size mismatch)")
    func creationBetweenSizeAndHeader() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.file("late.shm")
        try #require(FileManager.default.createFile(atPath: path, contents: nil), "an empty file: being created")
        // The first opener's fstat sees the empty file; before it reads the header, a second opener
        // creates the whole cache (the point is disarmed before the action, which passes it too).
        CrashPoints.arm(.openSizeRead) {
            _ = try! SharedCache(path: path, policy: .createIfNeeded(Self.geometry))
        }
        defer { CrashPoints.disarm() }
        let cache = try SharedCache(path: path, policy: .createIfNeeded(Self.geometry))
        #expect(cache.geometry == Self.geometry)
        #expect(cache.invalidBlocks == [])
    }

    @Test("an owner-less header (a claimer killed before writing its own) is refused as a double free")
    func ownerlessHeadersAreRefused() throws {
        let scratch = try ScratchDirectory()
        let cache = try makeCache(at: scratch.file("double.shm"), geometry: Self.geometry)
        let offset = try cache.allocate(200)
        let header = try #require(cache.header(of: offset))
        (cache.base + Int(offset.rawValue) - AllocationHeader.size).storeBytes(
            of: header.released.rawValue.littleEndian, as: UInt64.self)
        let block = Int(offset.rawValue) >> Self.geometry.maxShift
        let word = cache.word(ofBlock: block)
        #expect(throws: FreeError.notAllocated(offset)) { try cache.free(offset) }
        #expect(cache.header(of: offset) == header.released)
        #expect(cache.word(ofBlock: block) == word)
        #expect(cache.invalidFrees == 1)
    }
}

// MARK: - Whole-cache figures for the crash tests

extension SharedCache {
    /// The allocations found in the words: offsets whose header names `owner`, and nodes whose
    /// header names nobody (released, or never written).
    func allocationCensus(owner: pid_t) -> (owned: [ShmOffset], ownerless: [Int], ownerlessBytes: Int) {
        let tree = geometry.tree
        var owned: [ShmOffset] = []
        var ownerless: [Int] = []
        var ownerlessBytes = 0
        for block in layout.nullBlockCount..<geometry.blockCount {
            var nodes = tree.allocations(word(ofBlock: block))
            while nodes != 0 {
                let node = nodes.trailingZeroBitCount
                nodes &= nodes - 1
                let nodeOffset = block << geometry.maxShift + tree.byteOffset(ofNode: node, minSize: geometry.minSize)
                let offset = ShmOffset(rawValue: UInt64(nodeOffset + AllocationHeader.size))
                if let header = header(of: offset), header.ownerPID == owner {
                    owned.append(offset)
                } else {
                    ownerless.append(nodeOffset)
                    ownerlessBytes += geometry.nodeSize(ofOrder: tree.order(ofNode: node))
                }
            }
        }
        return (owned, ownerless, ownerlessBytes)
    }

    /// The node offsets the intents of `pid`'s owner-table entry name.
    func intents(of pid: pid_t) -> [Int] {
        let table = fileBase + layout.ownersOffset
        guard
            let entry = (0..<OwnerTable.entryCount).first(where: {
                OwnerTable.pid(ofIdentity: table.load(fromByteOffset: $0 * OwnerTable.entrySize, as: UInt64.self))
                    == pid
            })
        else { return [] }
        let copy = UnsafeRawBufferPointer(start: table, count: OwnerTable.byteCount)
        return (0..<OwnerTable.intentSlots).compactMap { slot in
            OwnerTable.target(ofIntent: OwnerTable.intent(in: copy, entry: entry, slot: slot)).map {
                $0.block << geometry.maxShift + geometry.tree.byteOffset(ofNode: $0.node, minSize: geometry.minSize)
            }
        }
    }

    /// The header in front of `offset`, or `nil` when its check byte fails.
    func header(of offset: ShmOffset) -> AllocationHeader? {
        AllocationHeader(
            rawValue: UInt64(littleEndian: (base + Int(offset.rawValue) - AllocationHeader.size).load(as: UInt64.self)))
    }

    /// Free bytes in every block past the null region.
    var freeBytes: Int {
        let tree = geometry.tree
        return (layout.nullBlockCount..<geometry.blockCount).reduce(0) { sum, block in
            sum + (tree.leafCount - tree.takenLeafCount(word(ofBlock: block))) * geometry.minSize
        }
    }

    /// Bytes an empty cache can hand out: every block past the null region.
    var allocatableBytes: Int { (geometry.blockCount - layout.nullBlockCount) * geometry.blockSize }

    /// Blocks with free space that a search cannot reach: not listed under their class, or listed
    /// under a summary bit that is clear at some level above.
    var unlistedBlocks: [Int] {
        let shape = layout.freeIndex
        let indexWords = (fileBase + layout.indexOffset).assumingMemoryBound(to: UInt64.self)
        let tree = geometry.tree
        return (layout.nullBlockCount..<geometry.blockCount).filter { block in
            guard let blockClass = tree.largestFreeOrder(word(ofBlock: block)) else { return false }
            var bit = block
            for level in 0..<shape.levelCount {
                if indexWords[shape.wordIndex(class: blockClass, level: level, bit: bit)] & (1 << UInt64(bit & 63)) == 0
                {
                    return true
                }
                bit >>= 6
            }
            return false
        }
    }
}

// MARK: - The owner table

@Suite("Owner table registration")
struct OwnerRegistrationTests {
    /// The identity words of the table, entry by entry.
    static func identities(_ cache: SharedCache) -> [UInt64] {
        (0..<OwnerTable.entryCount).map {
            (cache.fileBase + cache.layout.ownersOffset + $0 * OwnerTable.entrySize).load(as: UInt64.self)
        }
    }

    /// This process's start time, as the allocator reads it.
    static var ownStartTime: UInt64 { ProcessIdentity.status(ofProcess: getpid())!.startTime }

    @Test("a process that attaches is named by pid and start time, once however often it attaches")
    func registersOnce() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.file("owners.shm")
        let cache = try makeCache(at: path, geometry: CrashPointTests.geometry)
        let again = try SharedCache(path: path, policy: .attach)
        let own = OwnerTable.identity(pid: getpid(), startTime: Self.ownStartTime)
        #expect(Self.identities(cache).filter { $0 == own }.count == 1)
        #expect(Self.identities(again).filter { $0 != 0 }.count == 1)
    }

    @Test("another process registers beside this one; the claim it died in is its only intent")
    func otherProcessRegisters() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.file("fork.shm")
        let cache = try makeCache(at: path, geometry: CrashPointTests.geometry)
        let victim = try runToEnd(
            BuiltProducts.helper, ["crash", path, CrashPoint.claimedBeforeHeader.name, "1", "1"], in: scratch)
        try #require(victim.termination == .signalled(SIGKILL))
        let pids = Self.identities(cache).map(OwnerTable.pid(ofIdentity:))
        #expect(pids.contains(getpid()) && pids.contains(victim.pid))
        #expect(cache.intents(of: victim.pid).count == 1, "the claim it died in")
        #expect(cache.intents(of: getpid()).isEmpty, "this process finished every operation")
    }

    @Test("a child of fork registers itself on its first allocation; each process's allocation is its own")
    func forkedChildRegisters() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.file("fork.shm")
        let cache = try makeCache(at: path, geometry: CrashPointTests.geometry)
        let run = try runToEnd(BuiltProducts.helper, ["fork", path], in: scratch)
        try #require(run.termination == .exited(0), "\(run.outputTail)")
        let parent = pid_t(run.result("parent"))
        let child = pid_t(run.result("child"))
        let pids = Self.identities(cache).map(OwnerTable.pid(ofIdentity:))
        #expect(pids.contains(parent) && pids.contains(child), "both processes have an entry: \(pids)")
        let parentHeld = cache.allocationCensus(owner: parent)
        let childHeld = cache.allocationCensus(owner: child)
        // Two allocations in all, each with its own process's header.
        #expect(parentHeld.owned.count == 1 && childHeld.owned.count == 1)
        #expect(parentHeld.ownerless.count == 1 && childHeld.ownerless.count == 1)
    }

    @Test("a full table: entries of exited processes are taken over; with none, allocation still works")
    func fullTable() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.file("full.shm")
        let cache = try makeCache(at: path, geometry: CrashPointTests.geometry)
        let table = cache.fileBase + cache.layout.ownersOffset
        func fill(_ identity: (Int) -> UInt64) {
            for entry in 0..<OwnerTable.entryCount {
                table.storeBytes(of: identity(entry), toByteOffset: entry * OwnerTable.entrySize, as: UInt64.self)
            }
        }
        // This pid with other start times: processes that had this pid before (all gone).
        fill { OwnerTable.identity(pid: getpid(), startTime: Self.ownStartTime + 1 + UInt64($0)) }
        _ = try SharedCache(path: path, policy: .attach)
        #expect(Self.identities(cache).contains(OwnerTable.identity(pid: getpid(), startTime: Self.ownStartTime)))

        // Every entry a live process (the parent, with its real start time): no room.
        let parent = getppid()
        let parentIdentity = OwnerTable.identity(
            pid: parent, startTime: ProcessIdentity.status(ofProcess: parent)!.startTime)
        fill { _ in parentIdentity }
        let crowded = try SharedCache(path: path, policy: .attach)
        #expect(Self.identities(cache).allSatisfy { $0 == parentIdentity })
        let offset = try crowded.allocate(100)
        try crowded.free(offset)
        #expect(crowded.word(ofBlock: Int(offset.rawValue) >> CrashPointTests.geometry.maxShift) == 0)
    }
}
