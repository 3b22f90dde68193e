// Bad files give one clear line; files that change under an attached inspector are noticed, never
// fatal; inspecting never changes a byte of the file.

import Foundation
import ShmAlloc
import ShmFormat
import ShmTestSupport
import ShmWorkloads
import Synchronization
import Testing

@testable import ShmInspect

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Bad files and files that change while attached")
struct RobustnessTests {
    /// Runs `shmtop snapshot PATH` and expects exit status 1 with exactly one line
    /// `shmtop: PATH: …` on stderr that contains `reason`.
    func expectOneLineFailure(_ path: String, _ reason: String, sourceLocation: SourceLocation = #_sourceLocation)
        throws
    {
        for arguments in [["snapshot", path], ["snapshot", "--json", path]] {
            let result = try runToEnd(BuiltProducts.shmtop, arguments)
            #expect(result.termination == .exited(1), sourceLocation: sourceLocation)
            #expect(result.output.isEmpty, sourceLocation: sourceLocation)
            let lines = result.error.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(lines.count == 2 && lines[1].isEmpty, "\(result.error)", sourceLocation: sourceLocation)
            #expect(lines[0].hasPrefix("shmtop: \(path): "), "\(result.error)", sourceLocation: sourceLocation)
            #expect(lines[0].contains(reason), "\(result.error)", sourceLocation: sourceLocation)
        }
    }

    /// A valid cache's bytes, to damage.
    func validCacheBytes() throws -> Data {
        let file = TemporaryFile("valid")
        defer { file.remove() }
        _ = try file.createCache(smallGeometry)
        return try file.bytes()
    }

    @Test("missing file, directory, empty file")
    func missingDirectoryEmpty() throws {
        let missing = TemporaryFile("missing")
        try expectOneLineFailure(missing.path, "open: no such file or directory")

        let directory = NSTemporaryDirectory() + "shminspect-dir-\(getpid())"
        mkdir(directory, 0o755)
        defer { rmdir(directory) }
        try expectOneLineFailure(directory, "not a regular file")

        let empty = TemporaryFile("emptyfile")
        defer { empty.remove() }
        #expect(FileManager.default.createFile(atPath: empty.path, contents: Data()))
        try expectOneLineFailure(empty.path, "empty file: not a cache file")
    }

    @Test("random bytes, a truncated header, an unknown version, a file shorter than its header says")
    func damagedContents() throws {
        let file = TemporaryFile("damaged")
        defer { file.remove() }
        var random = SplitMix64(seed: 0x5EED_0002)
        try Data((0..<8192).map { _ in UInt8.random(in: 0...255, using: &random) }).write(
            to: URL(fileURLWithPath: file.path))
        try expectOneLineFailure(file.path, "not a cache file (bad magic")

        let valid = try validCacheBytes()
        try valid.prefix(100).write(to: URL(fileURLWithPath: file.path))
        try expectOneLineFailure(file.path, "file too small for a header (100 bytes")

        var future = valid
        future.replaceSubrange(
            FileHeader.Field.formatVersion..<(FileHeader.Field.formatVersion + 4), with: [99, 0, 0, 0])
        try future.write(to: URL(fileURLWithPath: file.path))
        try expectOneLineFailure(file.path, "format version 99 is not supported")

        try valid.prefix(valid.count / 2).write(to: URL(fileURLWithPath: file.path))
        try expectOneLineFailure(
            file.path, "file is \(valid.count / 2) bytes, but its header describes \(valid.count) bytes")

        try Data(count: 8192).write(to: URL(fileURLWithPath: file.path))
        try expectOneLineFailure(file.path, "header is all zeros")
    }

    @Test("no read permission")
    func noPermission() throws {
        let file = TemporaryFile("noperm")
        defer { file.remove() }
        try validCacheBytes().write(to: URL(fileURLWithPath: file.path))
        chmod(file.path, 0)
        // Root reads files whatever their mode: the case cannot fail there, so it is checked only
        // where it can (CI and developers usually run as a normal user; this machine runs as root).
        let readable = open(file.path, O_RDONLY)
        if readable >= 0 {
            close(readable)
            try #require(getuid() == 0, "mode 000 is readable although not root")
            let result = try runToEnd(BuiltProducts.shmtop, ["snapshot", "--json", file.path])
            #expect(result.termination == .exited(0), "root reads a mode-000 file; the inspector must too")
            return
        }
        try expectOneLineFailure(file.path, "open: permission denied")
    }

    @Test("truncation, deletion and replacement while a snapshot loop is attached")
    func fileChangesWhileAttached() throws {
        let (file, inspector) = try Self.attachedSmallCache("changing")
        defer { file.remove() }
        let layout = inspector.layout
        _ = try inspector.snapshot()

        // A loop that snapshots as fast as it can on another thread, until it sees an error.
        let firstError = Mutex<InspectError?>(nil)
        let snapshots = Atomic<Int>(0)
        let loopDone = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            while firstError.withLock({ $0 == nil }) {
                do throws(InspectError) {
                    _ = try inspector.snapshot()
                    snapshots.add(1, ordering: .relaxed)
                } catch {
                    firstError.withLock { $0 = error }
                }
            }
            loopDone.signal()
        }
        while snapshots.load(ordering: .relaxed) < 3 { usleep(1000) }
        // Cut the file inside the words region, as a careless `truncate` would.
        #expect(truncate(file.path, off_t(layout.wordsOffset + 100)) == 0)
        loopDone.wait()
        #expect(
            firstError.withLock { $0 }
                == .truncated(path: file.path, size: layout.wordsOffset + 100, expected: layout.fileSize))
        #expect(
            throws: InspectError.truncated(path: file.path, size: layout.wordsOffset + 100, expected: layout.fileSize)
        ) {
            try inspector.blockDetail(5)
        }
        #expect(throws: InspectError.self) { try CacheInspector(path: file.path) }

        // Grown back to its size, the same file is readable again (words now zero).
        #expect(truncate(file.path, off_t(layout.fileSize)) == 0)
        #expect((try? inspector.snapshot()) != nil)

        // Replaced: another file renamed over the path.
        let other = TemporaryFile("replacement")
        _ = try other.createCache(smallGeometry)
        #expect(rename(other.path, file.path) == 0)
        #expect(throws: InspectError.replaced(path: file.path)) { try inspector.snapshot() }

        // Deleted.
        file.remove()
        #expect(throws: InspectError.deleted(path: file.path)) { try inspector.snapshot() }
        #expect(InspectError.deleted(path: file.path).fileChangedWhileAttached)

        // Truncated while attached and found too short when attaching again: one story for a watcher.
        #expect(InspectError.truncated(path: file.path, size: 10, expected: 20).fileIsTooShort)
        #expect(InspectError.format(path: file.path, .fileSizeMismatch(actual: 10, expected: 20)).fileIsTooShort)
        #expect(!InspectError.format(path: file.path, .fileSizeMismatch(actual: 30, expected: 20)).fileIsTooShort)
        #expect(InspectError.format(path: file.path, .truncatedHeader(size: 0, needed: 4096)).fileIsTooShort)
        #expect(!InspectError.format(path: file.path, .badMagic(found: 0)).fileIsTooShort)
        #expect(!InspectError.deleted(path: file.path).fileIsTooShort)
    }

    @Test(
        "cut and grown back 200 times under a snapshot loop: only truncation errors, then a snapshot equal to a fresh attachment's"
    )
    func truncationsMetInFlight() throws {
        let (file, inspector) = try Self.attachedSmallCache("inflight")
        defer { file.remove() }
        let layout = inspector.layout
        #expect(layout.wordsLength >= 2 * GuardTable.pageSize, "the cut must leave a whole page of words past it")
        let stop = Atomic<Bool>(false)
        let unexpected = Atomic<Int>(0)
        let loopDone = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            while !stop.load(ordering: .relaxed) {
                do throws(InspectError) {
                    _ = try inspector.snapshot()
                } catch {
                    if case .truncated = error {} else { unexpected.add(1, ordering: .relaxed) }
                }
            }
            loopDone.signal()
        }
        // Cuts inside the first page of the words: the rest of that page reads as zeros, the pages
        // after it fault; the loop meets either, sometimes after its size check passed.
        for _ in 0..<200 {
            #expect(truncate(file.path, off_t(layout.wordsOffset + 8 * layout.nullBlockCount + 8)) == 0)
            usleep(200)
            #expect(truncate(file.path, off_t(layout.fileSize)) == 0)
            usleep(200)
        }
        stop.store(true, ordering: .relaxed)
        loopDone.wait()
        #expect(unexpected.load(ordering: .relaxed) == 0)
        // Whole again (zeros past the cut): the attached inspector reads what a new one does.
        let after = try inspector.snapshot()
        let fresh = try CacheInspector(path: file.path).snapshot()
        #expect(after.words == fresh.words)
        #expect(after.allocations == fresh.allocations)
    }

    @Test("inspecting leaves the file's bytes and times unchanged")
    func readOnly() throws {
        let file = TemporaryFile("readonly")
        defer { file.remove() }
        var blocks: Set<Int> = []
        do {
            let cache = try file.createCache(smallGeometry)
            for size in [5, 50, 500, 1000, 70, 7] {
                blocks.insert(Int(try cache.allocate(size).rawValue) / smallGeometry.blockSize)
            }
        }
        let bytesBefore = try file.bytes()
        var before = stat()
        stat(file.path, &before)
        usleep(20_000)  // a write now would show in the timestamps

        let inspector = try CacheInspector(path: file.path)
        let snapshot = try inspector.snapshot()
        _ = SnapshotText(ascii: false).render(
            snapshot, CacheStatistics(snapshot), blocks: try blocks.map { try inspector.blockDetail($0) })
        #expect(try runToEnd(BuiltProducts.shmtop, ["snapshot", "--json", file.path]).termination == .exited(0))
        #expect(
            try runToEnd(BuiltProducts.shmtop, ["snapshot", file.path] + blocks.flatMap { ["--block", "\($0)"] })
                .termination == .exited(0))

        var after = stat()
        stat(file.path, &after)
        #expect(try file.bytes() == bytesBefore)
        #expect(after.st_mtim.tv_sec == before.st_mtim.tv_sec && after.st_mtim.tv_nsec == before.st_mtim.tv_nsec)
        #expect(after.st_ctim.tv_sec == before.st_ctim.tv_sec && after.st_ctim.tv_nsec == before.st_ctim.tv_nsec)
        #expect(after.st_size == before.st_size)
    }
}
