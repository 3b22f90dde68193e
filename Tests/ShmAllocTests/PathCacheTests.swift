// The shared path cache in one process: prefix rules, updates, errors, a lost race, threads, and
// the layout walk that the inspector will use.

import Foundation
@_spi(CrashTesting) import ShmAlloc
import ShmFormat
import ShmPathCache
import ShmTestSupport
import ShmWorkloads
import Testing

@Suite("Path cache")
struct PathCacheTests {
    /// 4 MiB: room for the tables (about 250 KiB) and thousands of entries.
    static let geometry = try! Geometry(minSize: 32, maxSize: 1024, capacity: 4 << 20)

    /// A fresh cache file and its path cache.
    static func makePathCache(_ scratch: ScratchDirectory, geometry: Geometry = geometry) throws -> PathCache {
        try PathCache(cache: makeCache(at: scratch.file("paths.shm"), geometry: geometry))
    }

    static let denyPrefix = PathFlags.deny.union(.prefix)

    @Test("a prefix entry answers below it at '/' boundaries only; the longest prefix and then an exact entry win")
    func prefixRules() throws {
        let scratch = try ScratchDirectory()
        let paths = try Self.makePathCache(scratch)
        #expect(try paths.search("/usr/local/bin/cc") == nil, "an empty cache answers nothing")
        try paths.insert("/usr/local", flags: Self.denyPrefix)
        #expect(try paths.search("/usr/local/bin/cc") == Self.denyPrefix)
        #expect(try paths.search("/usr/local/") == Self.denyPrefix)
        #expect(try paths.search("/usr/local") == Self.denyPrefix)
        #expect(try paths.search("/usr/localx") == nil)
        #expect(try paths.search("/usr/localx/bin") == nil)
        #expect(try paths.search("/usr") == nil)

        // Without the prefix flag an ancestor answers only for itself.
        try paths.insert("/usr/local/bin", flags: .allow)
        #expect(try paths.search("/usr/local/bin") == .allow)
        #expect(try paths.search("/usr/local/bin/cc") == Self.denyPrefix, "an ancestor without the flag is skipped")
        // The longest prefix wins; an exact entry beats every prefix.
        let allowPrefix = PathFlags.allow.union(.prefix)
        try paths.insert("/usr/local/bin", flags: allowPrefix)
        #expect(try paths.search("/usr/local/bin/cc") == allowPrefix)
        try paths.insert("/usr/local/bin/cc", flags: .deny)
        #expect(try paths.search("/usr/local/bin/cc") == .deny)
        // The root answers for everything, the caller's bits included.
        let mine = PathFlags(rawValue: 0xE0).union(allowPrefix)
        try paths.insert("/", flags: mine)
        #expect(try paths.search("/etc/passwd") == mine)
        #expect(try paths.search("/usr/localx") == mine)
        #expect(paths.census().prefixEntries == 3)
    }

    @Test("inserting a cached path replaces its flags; the prefix count follows the flag")
    func updates() throws {
        let scratch = try ScratchDirectory()
        let paths = try Self.makePathCache(scratch)
        try paths.insert("/opt/tool", flags: .allow)
        try paths.insert("/opt/tool", flags: .deny)
        #expect(try paths.search("/opt/tool") == .deny)
        try paths.insert("/opt/tool", flags: Self.denyPrefix)
        try paths.insert("/opt/tool", flags: Self.denyPrefix)
        #expect(try paths.search("/opt/tool/x") == Self.denyPrefix)
        var census = paths.census()
        #expect(census.entries == 1)
        #expect(census.prefixEntries == 1 && census.storedPrefixCount == 1)
        try paths.insert("/opt/tool", flags: .allow)
        census = paths.census()
        #expect(census.prefixEntries == 0 && census.storedPrefixCount == 0)
        #expect(try paths.search("/opt/tool/x") == nil)
        #expect(try paths.search("/opt/tool") == .allow)
    }

    @Test("empty, relative and too long paths are refused; out of space leaves the cache as it was")
    func errors() throws {
        let scratch = try ScratchDirectory()
        // 512 KiB: the root and a few bucket tables, then little room.
        let paths = try Self.makePathCache(
            scratch, geometry: try Geometry(minSize: 32, maxSize: 1024, capacity: 512 << 10))
        #expect(throws: PathCacheError.invalidPath) { try paths.insert("", flags: .allow) }
        #expect(throws: PathCacheError.invalidPath) { try paths.insert("usr/bin", flags: .allow) }
        #expect(throws: PathCacheError.invalidPath) { try paths.search("") }
        #expect(throws: PathCacheError.invalidPath) { try paths.search("bin") }
        #expect(paths.longestPath == 1000)
        let longest = "/" + String(repeating: "a", count: paths.longestPath - 1)
        try paths.insert(longest, flags: .allow)
        #expect(try paths.search(longest) == .allow)
        #expect(throws: PathCacheError.nameTooLong(length: 1001, longest: 1000)) {
            try paths.insert(longest + "b", flags: .allow)
        }
        #expect(PathCacheError.nameTooLong(length: 1, longest: 0).errnoValue == .fileNameTooLong)
        #expect(PathCacheError.outOfSpace.errnoValue == .noMemory)
        // Geometries without room for tables, or with nodes 4-byte slots cannot name, have no path cache.
        #expect(
            PathCacheLayout.unsupportedReason(geometry: try Geometry(minSize: 16, maxSize: 32, capacity: 1 << 20))
                != nil)
        #expect(
            PathCacheLayout.unsupportedReason(geometry: try Geometry(minSize: 16, maxSize: 512, capacity: 1 << 40))
                != nil)
        #expect(PathCacheLayout.unsupportedReason(geometry: .default) == nil)
        // A path too long to cache is still answered by a prefix above it.
        try paths.insert("/deep", flags: Self.denyPrefix)
        #expect(try paths.search("/deep/" + String(repeating: "d", count: 2000)) == Self.denyPrefix)

        var inserted: [String: PathFlags] = [:]  // a path drawn again keeps its last flags
        var failure: PathCacheError?
        for seed in 0..<100_000 where failure == nil {
            let path = String(decoding: PathNames.path(seed: UInt64(seed)), as: UTF8.self)
            let flags = PathFlags(rawValue: UInt8(seed & 0xF3))  // no prefix flags
            do throws(PathCacheError) {
                try paths.insert(path, flags: flags)
                inserted[path] = flags
            } catch .nameTooLong {
                continue
            } catch {
                failure = error
            }
        }
        #expect(failure == .outOfSpace)
        #expect(paths.cache.invalidBlocks == [])
        let lost = try inserted.filter { try paths.search($0.key) != $0.value }
        #expect(lost.isEmpty, "\(lost.count) of \(inserted.count) paths lost their flags")
        #expect(paths.census().invalidSlots == 0)
    }

    @Test("an insert that loses its slot to the same path frees its entry and updates the winner's flags")
    func lostRace() throws {
        let scratch = try ScratchDirectory()
        let paths = try Self.makePathCache(scratch)
        try paths.insert("/warm", flags: .allow)  // tables exist: the race is for the entry's slot
        let before = paths.cache.allocationCensus(owner: getpid()).owned.count
        let tablesBefore = paths.census().tables
        // Between this insert's entry write and its CAS, another insert of the same path wins.
        CrashPoints.arm(.pathEntryWritten, in: paths.cache) { try! paths.insert("/race/path", flags: .allow) }
        try paths.insert("/race/path", flags: Self.denyPrefix)
        #expect(try paths.search("/race/path") == Self.denyPrefix, "the later insert's flags win")
        let census = paths.census()
        #expect(census.entries == 2 && census.storedPrefixCount == 1)
        // One entry more, and the bucket table of the new path if it needed one.
        #expect(
            paths.cache.allocationCensus(owner: getpid()).owned.count == before + 1 + census.tables - tablesBefore,
            "the loser's entry is freed")
    }

    @Test("4 threads insert overlapping paths and find their own and the others' inserts")
    func threads() throws {
        let scratch = try ScratchDirectory()
        let paths = try Self.makePathCache(scratch)
        let perThread = 2000
        let misses = onThreads(4) { thread in
            var missing = 0
            for index in 0..<perThread {
                // Overlap: thread t inserts seeds t*perThread/2 ..< t*perThread/2 + perThread.
                let seed = UInt64(thread * perThread / 2 + index)
                let path = PathCacheWorkload.path(seed: seed)
                let flags = PathFlags(rawValue: PathCacheWorkload.flags(path: path))
                try! paths.insert(path, flags: flags)
                if try! paths.search(path) != flags { missing += 1 }
            }
            return missing
        }
        #expect(misses == [0, 0, 0, 0])
        let distinct = Set((0..<(3 * perThread / 2 + perThread)).map { PathCacheWorkload.path(seed: UInt64($0)) })
        var seen = 0
        let census = paths.census { _, _, _ in seen += 1 }
        #expect(census.entries == distinct.count && seen == distinct.count, "each path is cached once")
        #expect(census.invalidSlots == 0)
        // The hash spreads the paths: nearly every bucket table exists, and the trees below are shallow.
        #expect(census.tables > 240, "\(census.tables) tables")
        #expect(census.depthCounts.count <= 12, "depths \(census.depthCounts)")
    }

    @Test("the walk of a damaged path cache counts what it cannot follow and ends, even on a cycle")
    func damagedWalk() throws {
        let scratch = try ScratchDirectory()
        let paths = try Self.makePathCache(scratch)
        for seed in 0..<200 { try paths.insert(PathCacheWorkload.path(seed: UInt64(seed)), flags: .allow) }
        // The entries whose first child slot is empty, from their path bytes' place.
        let geometry = paths.cache.geometry
        var leaves: [UnsafeMutableRawPointer] = []
        let whole = paths.census { path, _, _ in
            let shift = PathCacheLayout.entryShape(length: path.count, geometry: geometry).fanOutShift
            let entry =
                UnsafeMutableRawPointer(mutating: path.baseAddress!) - PathCacheLayout.childrenOffset - 4 << shift
            if entry.load(fromByteOffset: PathCacheLayout.childrenOffset, as: UInt32.self) == 0 { leaves.append(entry) }
        }
        let entry = try #require(leaves.first)
        let firstChild = entry + PathCacheLayout.childrenOffset

        // A slot naming no entry (here: inside the null page) is counted, not followed.
        firstChild.storeBytes(of: UInt32(3), as: UInt32.self)
        let damaged = paths.census()
        #expect(damaged.invalidSlots == 1 && damaged.entries == whole.entries)

        // An entry that is its own child: the walk gives up after as many visits as the file has nodes.
        let entryOffset = entry - paths.cache.base
        firstChild.storeBytes(
            of: PathCacheLayout.slot(nodeOffset: entryOffset - AllocationHeader.size, minShift: geometry.minShift),
            as: UInt32.self)
        #expect(paths.census().invalidSlots > 0, "the cycle is reported and the walk ends")
    }
}
