// `shmtop create`, and capacities far beyond memory (the file is sparse).

import Foundation
import ShmAlloc
import ShmFormat
import ShmTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("shmtop create")
struct CreateCommandTests {
    @Test("creates the geometry asked for, accepts it again, refuses another one and an impossible one in one line")
    func create() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.file("created.shm")
        let arguments = ["create", path, "--min-size", "64", "--max-size", "2KiB", "--capacity", "1MiB"]
        let created = try runToEnd(BuiltProducts.shmtop, arguments, in: scratch)
        #expect(created.termination == .exited(0), "\(created.outputTail)")
        #expect(created.output.hasPrefix("\(path): 64 B..2 KiB × 512 blocks = 1 MiB, "))
        let cache = try SharedCache(path: path, policy: .attach)
        #expect(cache.geometry == (try Geometry(minSize: 64, maxSize: 2048, capacity: 1 << 20)))
        #expect(cache.header.creatorPID == created.pid)

        let again = try runToEnd(BuiltProducts.shmtop, arguments, in: scratch)
        #expect(again.termination == .exited(0), "\(again.outputTail)")

        let mismatch = try runToEnd(BuiltProducts.shmtop, ["create", path, "--min-size", "32"], in: scratch)
        #expect(mismatch.termination == .exited(1))
        #expect(
            mismatch.error == "shmtop: \(path): file has geometry 64 B..2 KiB × 512 blocks = 1 MiB, "
                + "but 32 B..1 KiB × 524288 blocks = 512 MiB was requested\n")

        let tooDeep = try runToEnd(
            BuiltProducts.shmtop, ["create", scratch.file("deep.shm"), "--min-size", "16"], in: scratch)
        #expect(tooDeep.termination != .exited(0))
        #expect(tooDeep.error.contains("exceeds 32"), "\(tooDeep.outputTail)")
        #expect(!FileManager.default.fileExists(atPath: scratch.file("deep.shm")))
    }

    @Test("a 64 GiB cache is a sparse file: it is created at once, uses little disk, and allocates")
    func sixtyFourGiB() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.file("large.shm")
        let cache = try makeCache(at: path, geometry: try Geometry(minSize: 32, maxSize: 1024, capacity: 64 << 30))
        var status = stat()
        #expect(stat(path, &status) == 0)
        #expect(Int(status.st_size) == cache.layout.fileSize)
        #expect(Int(status.st_blocks) * 512 < 64 << 20, "only touched pages take disk space")
        let offsets = try (0..<1000).map { _ in try cache.allocate(1000) }
        #expect(Set(offsets).count == 1000)
        for offset in offsets { try cache.free(offset) }
        #expect(cache.word(ofBlock: cache.geometry.blockCount - 1) == 0)
    }
}
