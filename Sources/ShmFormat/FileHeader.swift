// The cache file: where each region lives, and the header page that describes them.
//
//   0            headerSize   wordsOffset   indexOffset                    dataOffset
//   ┌────────────┬────────────┬─────────────┬──────────────────────────────┬───────────────────────────┐
//   │ header page│ owner table│ buddy words │ free-space index (FreeIndex) │ data: null page, blocks … │
//   └────────────┴────────────┴─────────────┴──────────────────────────────┴───────────────────────────┘
//
// Every region starts on a page boundary. The header is all a reader needs: the geometry and
// every offset are stored in it, and a reader recomputes the layout and refuses a file whose
// stored offsets disagree.

/// The regions of a cache file, derived from its geometry and page size.
public struct FileLayout: Hashable, Sendable {
    /// The geometry the layout was computed for.
    public let geometry: Geometry
    /// The page size the file was created with; the header and the null region are one page.
    public let pageSize: Int

    /// Lays out a file; fails when the page size is not a power of two in 4 KiB ... 64 KiB or
    /// when the null region would take every block.
    public init(geometry: Geometry, pageSize: Int) throws(FormatError) {
        guard pageSize.isPowerOfTwo, (4096...65536).contains(pageSize) else {
            throw .pageSizeNotAllowed(pageSize)
        }
        self.geometry = geometry
        self.pageSize = pageSize
        guard geometry.blockCount > nullBlockCount else {
            throw .capacityTooSmall(capacity: geometry.capacity, nullRegion: nullBlockCount * geometry.blockSize)
        }
    }

    /// The header page's length.
    public var headerSize: Int { pageSize }
    /// Where the owner table starts (see ``OwnerTable``).
    public var ownersOffset: Int { headerSize }
    /// The owner table's length, rounded up to whole pages.
    public var ownersLength: Int { roundedUpToPage(OwnerTable.byteCount) }
    /// Where the buddy words start: one 64-bit word per block, densely packed.
    public var wordsOffset: Int { ownersOffset + ownersLength }
    /// The words region's length, rounded up to whole pages.
    public var wordsLength: Int { roundedUpToPage(geometry.blockCount * 8) }
    /// Where the free-space index starts.
    public var indexOffset: Int { wordsOffset + wordsLength }
    /// The free-space index's shape.
    public var freeIndex: FreeIndexLayout { FreeIndexLayout(geometry: geometry) }
    /// The free-space index's length, rounded up to whole pages.
    public var indexLength: Int { roundedUpToPage(freeIndex.totalWords * 8) }
    /// Where the data region (the user base, offset 0) starts.
    public var dataOffset: Int { indexOffset + indexLength }
    /// The data region's length: every block, the null region included.
    public var dataLength: Int { geometry.capacity }
    /// The whole file's size.
    public var fileSize: Int { dataOffset + dataLength }
    /// The blocks under the null page: marked full, never handed out, mapped read-only.
    public var nullBlockCount: Int { max(1, pageSize / geometry.blockSize) }
    /// The length mapped read-only at the start of the data region.
    public var nullRegionLength: Int { nullBlockCount * geometry.blockSize }
    /// Bytes spent on anything but allocatable blocks: header, owners, words, index and the null region.
    public var reservedBytes: Int { dataOffset + nullRegionLength }

    @inline(__always)
    func roundedUpToPage(_ bytes: Int) -> Int { (bytes + pageSize - 1) & ~(pageSize - 1) }
}

/// The lifecycle of a file, stored in the low half of the header's state word.
public enum FileState: UInt32, Sendable, CustomStringConvertible {
    /// Zero-filled: nobody has claimed it yet.
    case uninitialised = 0
    /// A creator (its pid in the state word's high half) is writing the header and the words.
    case initialising = 1
    /// Complete: every field is final and the words are live.
    case ready = 2

    public var description: String {
        switch self {
        case .uninitialised: "uninitialised"
        case .initialising: "initialising"
        case .ready: "ready"
        }
    }
}

/// The header page's fields, decoded from (or to be encoded into) its bytes.
public struct FileHeader: Hashable, Sendable {
    /// `"shmalloc"` in ASCII, as the first 8 bytes of every cache file.
    public static let magic: UInt64 = 0x636F_6C6C_616D_6873
    /// The format version this code reads and writes.
    /// Version 2 added the owner table and the repair fields; version 3 the path cache's root
    /// (``Field/pathCacheRoot``). Older files are refused with ``FormatError/unsupportedVersion(found:supported:)``.
    public static let formatVersion: UInt32 = 3

    /// Byte offsets of the header's fields. All fields are little-endian; the ones marked atomic are
    /// read and written only with atomic operations through a shared mapping.
    public enum Field {
        public static let magic = 0
        public static let formatVersion = 8  // UInt32
        public static let headerSize = 12  // UInt32
        /// Atomic `UInt64`: ``FileState`` in the low 32 bits, the initialising pid in the high 32.
        public static let stateWord = 16
        public static let createdAtNanoseconds = 24
        public static let minSize = 32
        public static let maxSize = 40
        public static let blockCount = 48
        public static let pageSize = 56
        public static let wordsOffset = 64
        public static let wordsLength = 72
        public static let indexOffset = 80
        public static let indexLength = 88
        public static let dataOffset = 96
        public static let dataLength = 104
        public static let fileSize = 112
        public static let nullBlockCount = 120
        /// Atomic `UInt64`: frees refused because the offset was no allocation. On its own cache
        /// line, away from the read-mostly fields above.
        public static let invalidFrees = 128
        /// Atomic `UInt64`: allocations that found no room.
        public static let failedAllocations = 136
        /// Atomic `UInt64`: the monotonic-clock instant (ns) before which no process starts another
        /// repair pass of the free-space index; 0 in a new file (the first failing search repairs).
        public static let nextRepair = 144
        /// Atomic `UInt64`: repair passes run since the file was created.
        public static let repairPasses = 152
        /// Atomic `UInt64`: listings those passes added (free space that was missing from the index).
        public static let repairedListings = 160
        public static let ownersOffset = 168
        public static let ownersLength = 176
        /// Atomic `UInt64`: the offset (from the user base) of the path cache's root table, 0 until
        /// the first insert creates it with a CAS (see PathCacheLayout.swift).
        public static let pathCacheRoot = 184
        /// The first byte past the last field; the rest of the page is zero.
        public static let end = 192
    }

    public let formatVersion: UInt32
    public let state: FileState
    /// The process that initialised the file.
    public let creatorPID: Int32
    /// When the file was initialised, in nanoseconds since the Unix epoch.
    public let createdAtNanoseconds: UInt64
    public let layout: FileLayout
    public let invalidFrees: UInt64
    public let failedAllocations: UInt64
    /// Repair passes of the free-space index run since the file was created.
    public let repairPasses: UInt64
    /// Listings those passes added: free space a crashed process had left out of the index.
    public let repairedListings: UInt64
    /// The path cache's root table as an offset from the user base; 0 when the file has no path cache yet.
    public let pathCacheRoot: UInt64

    public var geometry: Geometry { layout.geometry }

    /// A header for a new file, in state `initialising`.
    public init(layout: FileLayout, creatorPID: Int32, createdAtNanoseconds: UInt64) {
        self.formatVersion = Self.formatVersion
        self.state = .initialising
        self.creatorPID = creatorPID
        self.createdAtNanoseconds = createdAtNanoseconds
        self.layout = layout
        self.invalidFrees = 0
        self.failedAllocations = 0
        self.repairPasses = 0
        self.repairedListings = 0
        self.pathCacheRoot = 0
    }

    /// The state word for `state` claimed by `pid`.
    @inlinable
    public static func stateWord(_ state: FileState, pid: Int32) -> UInt64 {
        UInt64(state.rawValue) | UInt64(UInt32(bitPattern: pid)) &<< 32
    }

    /// Decodes and validates a header.
    ///
    /// - Parameters:
    ///   - bytes: at least the first ``Field/end`` bytes of the file.
    ///   - fileSize: the file's actual size, checked against the header's when given.
    /// - Throws: the first thing wrong, in the order a person would check: size, magic, version,
    ///   state, geometry, layout, file size.
    public init(decoding bytes: UnsafeRawBufferPointer, fileSize: Int?) throws(FormatError) {
        guard bytes.count >= Field.end else { throw .truncatedHeader(size: bytes.count, needed: Field.end) }
        func u64(_ offset: Int) -> UInt64 {
            UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        }
        func u32(_ offset: Int) -> UInt32 {
            UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        }
        func int(_ offset: Int) -> Int { Int(truncatingIfNeeded: u64(offset)) }

        let magic = u64(Field.magic)
        guard magic == Self.magic else {
            if magic == 0, bytes.allSatisfy({ $0 == 0 }) { throw .uninitialised }
            throw .badMagic(found: magic)
        }
        formatVersion = u32(Field.formatVersion)
        guard formatVersion == Self.formatVersion else {
            throw .unsupportedVersion(found: formatVersion, supported: Self.formatVersion)
        }
        let stateWord = u64(Field.stateWord)
        creatorPID = Int32(bitPattern: UInt32(truncatingIfNeeded: stateWord &>> 32))
        guard let state = FileState(rawValue: UInt32(truncatingIfNeeded: stateWord)) else {
            throw .badState(rawValue: UInt32(truncatingIfNeeded: stateWord))
        }
        guard state == .ready else { throw .notReady(state: state, creatorPID: creatorPID) }
        self.state = state

        let minSize = int(Field.minSize)
        let maxSize = int(Field.maxSize)
        let blockCount = int(Field.blockCount)
        guard blockCount > 0, maxSize > 0, blockCount <= Geometry.largestCapacity / maxSize else {
            throw .geometry(.capacityOutOfRange(blockCount &* maxSize))
        }
        let geometry: Geometry
        do { geometry = try Geometry(minSize: minSize, maxSize: maxSize, capacity: blockCount * maxSize) } catch {
            throw .geometry(error)
        }
        layout = try FileLayout(geometry: geometry, pageSize: int(Field.pageSize))
        let stored: [(String, Int, Int)] = [
            ("header size", Int(u32(Field.headerSize)), layout.headerSize),
            ("owners offset", int(Field.ownersOffset), layout.ownersOffset),
            ("owners length", int(Field.ownersLength), layout.ownersLength),
            ("words offset", int(Field.wordsOffset), layout.wordsOffset),
            ("words length", int(Field.wordsLength), layout.wordsLength),
            ("index offset", int(Field.indexOffset), layout.indexOffset),
            ("index length", int(Field.indexLength), layout.indexLength),
            ("data offset", int(Field.dataOffset), layout.dataOffset),
            ("data length", int(Field.dataLength), layout.dataLength),
            ("file size", int(Field.fileSize), layout.fileSize),
            ("null block count", int(Field.nullBlockCount), layout.nullBlockCount),
        ]
        for (name, found, expected) in stored where found != expected {
            throw .inconsistentLayout(field: name, stored: found, expected: expected)
        }
        if let fileSize, fileSize != layout.fileSize {
            throw .fileSizeMismatch(actual: fileSize, expected: layout.fileSize)
        }
        createdAtNanoseconds = u64(Field.createdAtNanoseconds)
        invalidFrees = u64(Field.invalidFrees)
        failedAllocations = u64(Field.failedAllocations)
        repairPasses = u64(Field.repairPasses)
        repairedListings = u64(Field.repairedListings)
        pathCacheRoot = u64(Field.pathCacheRoot)
    }

    /// Writes every field into a zeroed header page, the state word included.
    public func encode(into page: UnsafeMutableRawBufferPointer) {
        precondition(page.count >= Field.end, "header page too small")
        func put(_ value: UInt64, _ offset: Int) {
            page.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt64.self)
        }
        func put(_ value: UInt32, _ offset: Int) {
            page.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt32.self)
        }
        func put(_ value: Int, _ offset: Int) { put(UInt64(value), offset) }
        put(Self.magic, Field.magic)
        put(formatVersion, Field.formatVersion)
        put(UInt32(layout.headerSize), Field.headerSize)
        put(Self.stateWord(state, pid: creatorPID), Field.stateWord)
        put(createdAtNanoseconds, Field.createdAtNanoseconds)
        put(geometry.minSize, Field.minSize)
        put(geometry.maxSize, Field.maxSize)
        put(geometry.blockCount, Field.blockCount)
        put(layout.pageSize, Field.pageSize)
        put(layout.ownersOffset, Field.ownersOffset)
        put(layout.ownersLength, Field.ownersLength)
        put(layout.wordsOffset, Field.wordsOffset)
        put(layout.wordsLength, Field.wordsLength)
        put(layout.indexOffset, Field.indexOffset)
        put(layout.indexLength, Field.indexLength)
        put(layout.dataOffset, Field.dataOffset)
        put(layout.dataLength, Field.dataLength)
        put(layout.fileSize, Field.fileSize)
        put(layout.nullBlockCount, Field.nullBlockCount)
        put(invalidFrees, Field.invalidFrees)
        put(failedAllocations, Field.failedAllocations)
        put(repairPasses, Field.repairPasses)
        put(repairedListings, Field.repairedListings)
        put(pathCacheRoot, Field.pathCacheRoot)
    }
}

/// Why a file is not a usable cache file. Each case says what was found and what was expected.
public enum FormatError: Error, Hashable, Sendable, CustomStringConvertible {
    case truncatedHeader(size: Int, needed: Int)
    case uninitialised
    case badMagic(found: UInt64)
    case unsupportedVersion(found: UInt32, supported: UInt32)
    case badState(rawValue: UInt32)
    case notReady(state: FileState, creatorPID: Int32)
    case geometry(GeometryError)
    case pageSizeNotAllowed(Int)
    case capacityTooSmall(capacity: Int, nullRegion: Int)
    case inconsistentLayout(field: String, stored: Int, expected: Int)
    case fileSizeMismatch(actual: Int, expected: Int)

    public var description: String {
        switch self {
        case .truncatedHeader(let size, let needed):
            size == 0 ? "empty file: not a cache file" : "file too small for a header (\(size) bytes, need \(needed))"
        case .uninitialised:
            "header is all zeros: the file was never initialised"
        case .badMagic(let found):
            "not a cache file (bad magic 0x\(String(found, radix: 16)))"
        case .unsupportedVersion(let found, let supported):
            "format version \(found) is not supported (this build reads version \(supported))"
        case .badState(let rawValue):
            "header state \(rawValue) is not a known state"
        case .notReady(let state, let pid):
            "file is \(state), not ready (creator pid \(pid))"
        case .geometry(let error):
            "bad geometry: \(error)"
        case .pageSizeNotAllowed(let size):
            "page size \(size) must be a power of two from 4096 to 65536"
        case .capacityTooSmall(let capacity, let nullRegion):
            "capacity \(capacity) leaves no block beside the \(nullRegion)-byte null region"
        case .inconsistentLayout(let field, let stored, let expected):
            "header \(field) is \(stored), but the geometry implies \(expected)"
        case .fileSizeMismatch(let actual, let expected):
            "file is \(actual) bytes, but its header describes \(expected) bytes"
        }
    }
}
