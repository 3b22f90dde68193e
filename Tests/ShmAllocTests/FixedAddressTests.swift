// Mapping a cache at an address the caller chooses, as `shm_init(addr, path)` allows: never over
// a mapping that is already there (MAP_FIXED_NOREPLACE).

import Foundation
import ShmAlloc
import ShmFormat
import ShmSystem
import Testing

@Suite("Fixed-address mapping")
struct FixedAddressTests {
    @Test("a cache mapped at a free address puts its header there and works as usual")
    func mapsAtTheRequestedAddress() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("fixed-\(UUID()).shm").path
        defer { unlink(path) }
        let geometry = try Geometry(minSize: 32, maxSize: 1024, capacity: 1 << 20)
        let layout = try FileLayout(geometry: geometry, pageSize: Int(sysconf(Int32(_SC_PAGESIZE))))
        // Find free address space: reserve it, then give it back. Another test's thread may map
        // something into the hole before the cache does (the kernel likes a freshly freed gap),
        // which the cache refuses with EEXIST, as it must: then try another hole.
        var mapped: (cache: SharedCache, address: UnsafeMutableRawPointer)?
        for _ in 0..<20 where mapped == nil {
            let hole = try #require(mmap(nil, layout.fileSize, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
            try #require(hole != UnsafeMutableRawPointer(bitPattern: -1))
            munmap(hole, layout.fileSize)
            do throws(CacheError) {
                mapped = (try SharedCache(path: path, policy: .require(geometry), address: hole), hole)
            } catch {
                guard case .system(let failure) = error, failure.errno == .fileExists else { throw error }
            }
        }
        let (cache, reserved) = try #require(mapped, "every hole was taken before the cache could map it")
        #expect(cache.fileBase == reserved)
        #expect(cache.base == reserved + layout.dataOffset)

        let pointer = try cache.allocatePointer(100)
        #expect(pointer > cache.base && pointer < cache.base + geometry.capacity)
        pointer.storeBytes(of: 0x5EED, as: UInt32.self)
        let other = try SharedCache(path: path, policy: .attach)
        let offset = try #require(cache.offset(of: pointer))
        #expect(other.pointer(to: offset)!.load(as: UInt32.self) == 0x5EED)
        try cache.free(pointer: pointer)
        #expect(other.word(ofBlock: Int(offset.rawValue) >> geometry.maxShift) == 0)
    }

    @Test("an address already mapped is refused with EEXIST, and what was mapped there stays")
    func refusesToReplaceAMapping() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("taken-\(UUID()).shm").path
        defer { unlink(path) }
        let geometry = try Geometry(minSize: 32, maxSize: 1024, capacity: 1 << 20)
        let layout = try FileLayout(geometry: geometry, pageSize: Int(sysconf(Int32(_SC_PAGESIZE))))
        let taken = try #require(mmap(nil, layout.fileSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        defer { munmap(taken, layout.fileSize) }
        (taken + layout.fileSize / 2).storeBytes(of: 0xFEED_F00D, as: UInt64.self)
        #expect(throws: CacheError.system(SystemCallFailure(path: path, operation: "mmap", errno: .fileExists))) {
            try SharedCache(path: path, policy: .require(geometry), address: taken)
        }
        #expect((taken + layout.fileSize / 2).load(as: UInt64.self) == 0xFEED_F00D)
    }
}
