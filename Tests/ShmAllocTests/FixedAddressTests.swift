// Mapping a cache at an address the caller chooses (MAP_FIXED), as `shm_init(addr, path)` allows.

import Foundation
import ShmAlloc
import ShmFormat
import Testing

@Suite("Fixed-address mapping")
struct FixedAddressTests {
    @Test("a cache mapped at a reserved address puts its header there and works as usual")
    func mapsAtTheRequestedAddress() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("fixed-\(UUID()).shm").path
        defer { unlink(path) }
        let geometry = try Geometry(minSize: 32, maxSize: 1024, capacity: 1 << 20)
        let layout = try FileLayout(geometry: geometry, pageSize: Int(sysconf(Int32(_SC_PAGESIZE))))
        // Reserve address space the way a program that wants stable addresses would.
        let reserved = try #require(mmap(nil, layout.fileSize, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        #expect(reserved != UnsafeMutableRawPointer(bitPattern: -1))

        let cache = try SharedCache(path: path, policy: .require(geometry), address: reserved)
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
}
