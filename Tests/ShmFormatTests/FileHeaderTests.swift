// The header page and the allocation header: round trips, and every way a file can be refused.

import ShmFormat
import ShmWorkloads
import Testing

@Suite("FileHeader and FileLayout")
struct FileHeaderTests {
    static let layout = try! FileLayout(
        geometry: try! Geometry(minSize: 32, maxSize: 1024, capacity: 1 << 20), pageSize: 4096)

    /// A header page as a creator writes it, then switched to `ready` as the creator does last.
    static func readyPage(layout: FileLayout = layout) -> [UInt8] {
        var page = [UInt8](repeating: 0, count: layout.headerSize)
        let header = FileHeader(layout: layout, creatorPID: 4242, createdAtNanoseconds: 1_700_000_000_123_456_789)
        page.withUnsafeMutableBytes { header.encode(into: $0) }
        store(FileHeader.stateWord(.ready, pid: 4242), at: FileHeader.Field.stateWord, in: &page)
        return page
    }

    static func store<Value: FixedWidthInteger>(_ value: Value, at offset: Int, in page: inout [UInt8]) {
        page.withUnsafeMutableBytes { $0.storeBytes(of: value.littleEndian, toByteOffset: offset, as: Value.self) }
    }

    static func decode(_ page: [UInt8], fileSize: Int? = layout.fileSize) throws -> FileHeader {
        try page.withUnsafeBytes { try FileHeader(decoding: $0, fileSize: fileSize) }
    }

    @Test("layout: page-aligned regions in order, one word per block, null page first")
    func layoutRegions() {
        let layout = Self.layout
        #expect(layout.headerSize == 4096)
        #expect(layout.ownersOffset == 4096)
        #expect(layout.ownersLength == 36864)  // 64 entries × 576 B
        #expect(layout.wordsOffset == 4096 + 36864)
        #expect(layout.wordsLength == 8192)  // 1024 blocks × 8 B
        #expect(layout.indexOffset == layout.wordsOffset + 8192)
        #expect(layout.dataOffset == layout.indexOffset + layout.indexLength)
        #expect(layout.dataOffset % 4096 == 0)
        #expect(layout.fileSize == layout.dataOffset + (1 << 20))
        #expect(layout.nullBlockCount == 4)
        #expect(layout.nullRegionLength == 4096)
        #expect(layout.reservedBytes == layout.dataOffset + 4096)
        // A block larger than the page still reserves one whole block for the null region.
        let large = try! FileLayout(
            geometry: try! Geometry(minSize: 1024, maxSize: 16384, capacity: 1 << 20), pageSize: 4096)
        #expect(large.nullBlockCount == 1)
    }

    @Test("layout refuses odd page sizes and capacities the null region would fill")
    func layoutRefusals() throws {
        let geometry = try Geometry(minSize: 32, maxSize: 1024, capacity: 4096)
        #expect(throws: FormatError.capacityTooSmall(capacity: 4096, nullRegion: 4096)) {
            try FileLayout(geometry: geometry, pageSize: 4096)
        }
        for pageSize in [0, 2048, 6000, 1 << 17] {
            #expect(throws: FormatError.pageSizeNotAllowed(pageSize)) {
                try FileLayout(geometry: .default, pageSize: pageSize)
            }
        }
    }

    @Test("encode then decode gives back every field")
    func roundTrip() throws {
        let header = try Self.decode(Self.readyPage())
        #expect(header.state == .ready)
        #expect(header.formatVersion == FileHeader.formatVersion)
        #expect(header.creatorPID == 4242)
        #expect(header.createdAtNanoseconds == 1_700_000_000_123_456_789)
        #expect(header.layout == Self.layout)
        #expect(header.geometry == Self.layout.geometry)
        #expect(header.invalidFrees == 0)
        #expect(header.failedAllocations == 0)
        #expect(header.pathCacheRoot == 0)
        // Decoding what was decoded and re-encoded is stable, counters included.
        var again = [UInt8](repeating: 0, count: 4096)
        Self.store(UInt64(7), at: FileHeader.Field.invalidFrees, in: &again)
        again.withUnsafeMutableBytes { header.encode(into: $0) }
        #expect(try Self.decode(again) == header)
        #expect(Array(again[..<FileHeader.Field.end]) == Array(Self.readyPage()[..<FileHeader.Field.end]))
        #expect(Array(again[0..<8]) == Array("shmalloc".utf8))
    }

    @Test("a short or empty file is truncated", arguments: [0, 1, 100, FileHeader.Field.end - 1])
    func truncated(size: Int) {
        let page = Array(Self.readyPage()[..<size])
        #expect(throws: FormatError.truncatedHeader(size: size, needed: FileHeader.Field.end)) { try Self.decode(page) }
    }

    @Test("each corruption is reported as what it is")
    func refusals() {
        let ready = Self.readyPage()
        func refused(_ expected: FormatError, fileSize: Int? = Self.layout.fileSize, _ change: (inout [UInt8]) -> Void)
        {
            var page = ready
            change(&page)
            #expect(throws: expected) { try Self.decode(page, fileSize: fileSize) }
        }
        refused(.uninitialised) { $0 = [UInt8](repeating: 0, count: 4096) }
        refused(.badMagic(found: 0x636F_6C6C_616D_5873)) { $0[1] = 0x58 }
        refused(.badMagic(found: 0)) { Self.store(UInt64(0), at: 0, in: &$0) }
        // Version 2 (no path cache root) is refused as clearly as any other old file.
        for old: UInt32 in [1, 2] {
            refused(.unsupportedVersion(found: old, supported: 3)) {
                Self.store(old, at: FileHeader.Field.formatVersion, in: &$0)
            }
        }
        refused(.badState(rawValue: 7)) { Self.store(UInt64(7), at: FileHeader.Field.stateWord, in: &$0) }
        refused(.notReady(state: .initialising, creatorPID: 99)) {
            Self.store(FileHeader.stateWord(.initialising, pid: 99), at: FileHeader.Field.stateWord, in: &$0)
        }
        refused(.notReady(state: .uninitialised, creatorPID: 0)) {
            Self.store(UInt64(0), at: FileHeader.Field.stateWord, in: &$0)
        }
        refused(.geometry(.minSizeNotAllowed(48))) { Self.store(UInt64(48), at: FileHeader.Field.minSize, in: &$0) }
        refused(.geometry(.capacityOutOfRange(0))) { Self.store(UInt64(0), at: FileHeader.Field.blockCount, in: &$0) }
        refused(.pageSizeNotAllowed(3000)) { Self.store(UInt64(3000), at: FileHeader.Field.pageSize, in: &$0) }
        refused(.inconsistentLayout(field: "owners length", stored: 4096, expected: 36864)) {
            Self.store(UInt64(4096), at: FileHeader.Field.ownersLength, in: &$0)
        }
        refused(.inconsistentLayout(field: "words offset", stored: 8192, expected: 40960)) {
            Self.store(UInt64(8192), at: FileHeader.Field.wordsOffset, in: &$0)
        }
        refused(.inconsistentLayout(field: "data offset", stored: 0, expected: Self.layout.dataOffset)) {
            Self.store(UInt64(0), at: FileHeader.Field.dataOffset, in: &$0)
        }
        refused(.fileSizeMismatch(actual: 4096, expected: Self.layout.fileSize), fileSize: 4096) { _ in }
        // Without an actual size (a reader of the header alone) the size is not checked.
        #expect(throws: Never.self) { try Self.decode(ready, fileSize: nil) }
    }

    @Test("error messages say what was found and what was expected")
    func messages() {
        #expect(FormatError.truncatedHeader(size: 0, needed: 208).description == "empty file: not a cache file")
        #expect(
            FormatError.truncatedHeader(size: 10, needed: 208).description
                == "file too small for a header (10 bytes, need 208)")
        #expect(FormatError.badMagic(found: 0xABC).description == "not a cache file (bad magic 0xabc)")
        #expect(
            FormatError.unsupportedVersion(found: 2, supported: 1).description
                == "format version 2 is not supported (this build reads version 1)")
        #expect(
            FormatError.notReady(state: .initialising, creatorPID: 9).description
                == "file is initialising, not ready (creator pid 9)")
        #expect(
            FormatError.fileSizeMismatch(actual: 1, expected: 2).description
                == "file is 1 bytes, but its header describes 2 bytes")
    }
}

@Suite("AllocationHeader")
struct AllocationHeaderTests {
    @Test("packs and unpacks pid, requested size and order")
    func roundTrip() {
        var random = SplitMix64(seed: 0xA110C)
        let edges: [(Int32, Int, Int)] = [(0, 0, 0), (1, 1, 1), (.max, (1 << 20) - 1, 15), (-1, 1016, 5), (.min, 8, 0)]
        let randomHeaders = (0..<1000).map { _ in
            (Int32(truncatingIfNeeded: random.next()), Int(random.next() % (1 << 20)), Int(random.next() % 16))
        }
        for (pid, size, order) in edges + randomHeaders {
            let header = AllocationHeader(ownerPID: pid, requestedSize: size, order: order)
            let decoded = AllocationHeader(rawValue: header.rawValue)
            #expect(decoded == header)
            #expect(decoded?.ownerPID == pid && decoded?.requestedSize == size && decoded?.order == order)
        }
    }

    @Test("the check byte rejects zeros, every single-bit flip, and nearly all garbage")
    func checkByte() {
        #expect(AllocationHeader(rawValue: 0) == nil, "a zero-filled node is never a header")
        var random = SplitMix64(seed: 0xC4EC)
        for _ in 0..<200 {
            let header = AllocationHeader(
                ownerPID: Int32(truncatingIfNeeded: random.next()),
                requestedSize: Int(random.next() % 1017), order: Int(random.next() % 6))
            for bit in 0..<64 {
                #expect(
                    AllocationHeader(rawValue: header.rawValue ^ 1 << UInt64(bit)) == nil, "bit \(bit) of \(header)")
            }
        }
        let accepted = (0..<100_000).filter { _ in AllocationHeader(rawValue: random.next()) != nil }.count
        #expect(accepted < 1000, "about 1 in 256 random words passes an 8-bit check; \(accepted) of 100000 did")
    }
}
