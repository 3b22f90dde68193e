// Opening what is not a usable cache file: each case gets its own error and message, and the
// file is left exactly as it was.

import Foundation
import ShmAlloc
import ShmFormat
import ShmSystem
import ShmTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Opening a bad file is refused and changes nothing")
struct OpenErrorTests {
    static let geometry = try! Geometry(minSize: 32, maxSize: 1024, capacity: 64 << 10)

    /// Expects opening `path` with `policy` to throw `expected` with the message `reason`, and the
    /// file's bytes (if any) to be the same afterwards.
    func expectRefused(
        _ path: String, policy: SharedCache.OpenPolicy = .createIfNeeded(geometry), _ expected: CacheError,
        reason: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let before = FileManager.default.contents(atPath: path)
        #expect(throws: expected, sourceLocation: sourceLocation) { try SharedCache(path: path, policy: policy) }
        #expect(expected.reason == reason, sourceLocation: sourceLocation)
        #expect(expected.description == "\(path): \(reason)", sourceLocation: sourceLocation)
        #expect(
            FileManager.default.contents(atPath: path) == before, "the file changed", sourceLocation: sourceLocation)
    }

    /// A valid cache file with one field of its header page overwritten.
    func cacheFile(in scratch: ScratchDirectory, patching field: Int, with value: some FixedWidthInteger) throws
        -> String
    {
        let path = scratch.file("patched-\(field).shm")
        _ = try makeCache(at: path, geometry: Self.geometry)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.seek(toOffset: UInt64(field))
        try handle.write(contentsOf: withUnsafeBytes(of: value.littleEndian) { Data($0) })
        try handle.close()
        return path
    }

    @Test("a directory")
    func directory() throws {
        let scratch = try ScratchDirectory()
        expectRefused(scratch.path, .notRegularFile(path: scratch.path), reason: "not a regular file")
    }

    @Test("a read-only file (mode 0444), even for root")
    func readOnly() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.file("readonly.shm")
        _ = try makeCache(at: path, geometry: Self.geometry)
        chmod(path, 0o444)
        expectRefused(path, .readOnlyFile(path: path), reason: "file is read-only (no write permission bits)")
    }

    @Test("another format version (version 1, before the owner table)")
    func otherVersion() throws {
        let scratch = try ScratchDirectory()
        let path = try cacheFile(in: scratch, patching: FileHeader.Field.formatVersion, with: UInt32(1))
        expectRefused(
            path, .format(path: path, .unsupportedVersion(found: 1, supported: FileHeader.formatVersion)),
            reason: "format version 1 is not supported (this build reads version \(FileHeader.formatVersion))")
    }

    @Test("a file too small for a header, and an empty one when attaching")
    func tooSmall() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.file("small.shm")
        _ = FileManager.default.createFile(atPath: path, contents: Data(repeating: 7, count: 100))
        expectRefused(
            path, .format(path: path, .truncatedHeader(size: 100, needed: FileHeader.Field.end)),
            reason: "file too small for a header (100 bytes, need \(FileHeader.Field.end))")
        let empty = scratch.file("empty.shm")
        _ = FileManager.default.createFile(atPath: empty, contents: Data())
        expectRefused(
            empty, policy: .attach, .format(path: empty, .truncatedHeader(size: 0, needed: FileHeader.Field.end)),
            reason: "empty file: not a cache file")
    }

    @Test("bad magic")
    func badMagic() throws {
        let scratch = try ScratchDirectory()
        let path = try cacheFile(in: scratch, patching: FileHeader.Field.magic, with: UInt64(0x1234_5678))
        expectRefused(
            path, .format(path: path, .badMagic(found: 0x1234_5678)), reason: "not a cache file (bad magic 0x12345678)")
    }

    @Test("a file whose size does not match its header")
    func sizeMismatch() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.file("cut.shm")
        let expected = try makeCache(at: path, geometry: Self.geometry).layout.fileSize
        truncate(path, off_t(expected - 4096))
        expectRefused(
            path, .format(path: path, .fileSizeMismatch(actual: expected - 4096, expected: expected)),
            reason: "file is \(expected - 4096) bytes, but its header describes \(expected) bytes")
    }

    @Test("another geometry than .require demands; .createIfNeeded accepts the file's own")
    func geometryMismatch() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.file("geometry.shm")
        _ = try makeCache(at: path, geometry: Self.geometry)
        let wanted = try Geometry(minSize: 64, maxSize: 1024, capacity: 64 << 10)
        expectRefused(
            path, policy: .require(wanted), .geometryMismatch(path: path, file: Self.geometry, requested: wanted),
            reason:
                "file has geometry 32 B..1 KiB × 64 blocks = 64 KiB, but 64 B..1 KiB × 64 blocks = 64 KiB was requested"
        )
        #expect(try SharedCache(path: path, policy: .createIfNeeded(wanted)).geometry == Self.geometry)
    }

    @Test("a missing file when attaching, and a creator that died mid-way")
    func missingAndAbandoned() throws {
        let scratch = try ScratchDirectory()
        let missing = scratch.file("missing.shm")
        expectRefused(
            missing, policy: .attach,
            .system(SystemCallFailure(path: missing, operation: "open", errno: .noSuchFileOrDirectory)),
            reason: "open: no such file or directory")
        #expect(!FileManager.default.fileExists(atPath: missing))

        let path = try cacheFile(
            in: scratch, patching: FileHeader.Field.stateWord, with: FileHeader.stateWord(.initialising, pid: 999_999))
        expectRefused(
            path, .creatorDied(path: path, pid: 999_999),
            reason: "the process that was creating it (pid 999999) died mid-way; remove the file and retry")
    }
}
