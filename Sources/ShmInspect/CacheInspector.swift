// The read-only attachment to a cache file.
//
// The file is opened `O_RDONLY`, so the inspector cannot write a byte even by mistake. The buddy
// words, which a live view reads at every refresh, are mapped `PROT_READ` and read with atomic
// loads under a guard that survives the file being truncated (GuardedMapping.swift): no copy
// through the kernel. The header page, the free-space index and the data blocks (allocation
// headers, a drilled-into block) are read with `pread`, which reports a truncated file as a short
// read; for the header scan it is also the faster way, as the kernel copies through its own
// large-page mapping where a scan of a mapping would miss the TLB on every page.
//
// Atomicity of the words: writers change a word only with 8-byte compare-and-swap on an aligned
// address, and the inspector loads each one whole. A snapshot as a whole is not one instant:
// words read early and words read late may straddle a writer's operation, which is what a
// snapshot of a live cache means. Every statistic is computed from the one copy, so figures agree
// with each other.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import ShmFormat
import SystemPackage

/// A cache file opened read-only for inspection.
///
/// Attach with ``init(path:)``; take a ``CacheSnapshot`` with ``snapshot(readingAllocations:)`` as
/// often as needed, and look inside a block with ``blockDetail(_:)``. Every call checks that the
/// path still names the attached file at its full size and throws ``InspectError/truncated(path:size:expected:)``,
/// ``InspectError/deleted(path:)`` or ``InspectError/replaced(path:)`` when it does not. Nothing the
/// inspector does writes to the file. Safe to use from several threads (`pread` keeps no offset;
/// the words mapping is only read).
public final class CacheInspector: Sendable {
    /// The path the inspector attached to.
    public let path: String
    /// The header as read when attaching (geometry and layout never change; counters do).
    public let header: FileHeader

    private let descriptor: FileDescriptor
    /// The buddy words, mapped: what a live view reads at every refresh.
    private let mapping: GuardedMapping
    private let device: UInt64
    private let inode: UInt64

    /// The file's layout.
    public var layout: FileLayout { header.layout }
    /// The file's geometry.
    public var geometry: Geometry { header.geometry }

    /// Opens `path` read-only and validates its header.
    ///
    /// - Throws: ``InspectError``: the file is missing, unreadable, not a regular file, or not a
    ///   valid cache file of this format version (empty, random bytes, truncated header …).
    public init(path: String) throws(InspectError) {
        self.path = path
        let descriptor: FileDescriptor
        do {
            descriptor = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec])
        } catch let error as Errno {
            throw .system(path: path, operation: "open", errno: error)
        } catch {
            throw .system(path: path, operation: "open", errno: .ioError)
        }
        do {
            let status: Stat
            do { status = try descriptor.stat() } catch { throw InspectError.system(path: path, operation: "fstat", errno: error) }
            guard status.type == .regular else { throw InspectError.notRegularFile(path: path) }
            header = try Self.readHeader(descriptor, path: path, fileSize: Int(status.size))
            device = UInt64(status.deviceID.rawValue)
            inode = UInt64(status.inode.rawValue)
            do {
                mapping = try GuardedMapping(descriptor, offset: header.layout.wordsOffset, count: header.geometry.blockCount)
            } catch { throw InspectError.system(path: path, operation: "mmap", errno: error) }
        } catch let error as InspectError {
            try? descriptor.close()
            throw error
        } catch {
            try? descriptor.close()
            throw .system(path: path, operation: "open", errno: .ioError)
        }
        self.descriptor = descriptor
    }

    deinit { try? descriptor.close() }

    // MARK: - Snapshots

    /// Copies the header and the buddy words, and (when `readingAllocations`) scans the headers of
    /// all allocations for their owners and requested sizes.
    ///
    /// The word copy costs 8 bytes per block; the allocation scan reads every block that holds an
    /// allocation, so a caller refreshing many times a second may scan less often.
    public func snapshot(readingAllocations: Bool = true) throws(InspectError) -> CacheSnapshot {
        let started = ContinuousClock.now
        let wallClock = Self.wallClockNanoseconds()
        try checkFile()
        let current = try Self.readHeader(descriptor, path: path, fileSize: nil)
        guard current.layout == header.layout else { throw .replaced(path: path) }
        let words = try readMapped { mapped in
            [UInt64](unsafeUninitializedCapacity: geometry.blockCount) { buffer, initialised in
                for block in buffer.indices { buffer[block] = mapped.word(at: block) }
                initialised = buffer.count
            }
        }
        let indexWords = layout.indexLength == 0 ? [] : try readWords(count: layout.freeIndex.totalWords, at: layout.indexOffset)
        let allocations = readingAllocations ? try scanAllocations(words) : nil
        return CacheSnapshot(
            path: path, header: current, words: words, indexWords: indexWords, allocations: allocations,
            takenAt: started, wallClockNanoseconds: wallClock)
    }

    /// The next snapshot of a series, taken by difference from `previous` (an earlier snapshot of
    /// this inspector's), with what changed since: what a live view needs at every refresh.
    ///
    /// The mapped words are compared with the previous words where they are read, and only the
    /// words that changed are written into the new snapshot's array. That array is `recycled`'s,
    /// an older snapshot's words brought up to date from the changes recorded with it, so a
    /// refresh neither allocates nor writes 8 bytes per block. (A snapshot from
    /// ``snapshot(readingAllocations:)`` copies the words whole and reads them again to compare.)
    /// The free-space index is not read: the snapshot's `indexWords` is empty.
    ///
    /// `recycled` starts empty (``RecycledWords/init()``); pass the same one to every call of a
    /// series, with the snapshot the last call returned as `previous` (any other starts afresh).
    /// Its words are reused only once no other snapshot shares them (copy-on-write). Groups of
    /// words that were all zero are compared without reading the previous words at all.
    public func snapshot(
        readingAllocations: Bool, after previous: CacheSnapshot, recycling recycled: inout RecycledWords
    ) throws(InspectError) -> (snapshot: CacheSnapshot, changes: SnapshotChanges) {
        precondition(previous.layout == layout, "a snapshot of another cache")
        let started = ContinuousClock.now
        let wallClock = Self.wallClockNanoseconds()
        try checkFile()
        let current = try Self.readHeader(descriptor, path: path, fileSize: nil)
        guard current.layout == header.layout else { throw .replaced(path: path) }

        // Bring the recycled words up to `previous` (or share its array: the first write copies it).
        let usable = previous.usableBlocks    // the null region's words never change
        var words = recycled.words
        recycled.words = []
        if words.count == previous.words.count, let changes = recycled.changes, recycled.basis == previous.takenAt {
            for (block, word) in zip(changes.blocks, changes.laterWords) { words[block] = word }
        } else {
            words = previous.words
            // Nothing known to be empty yet: every group is compared in full once.
            let groups = (usable.count + SnapshotChanges.chunkWords - 1) / SnapshotChanges.chunkWords
            recycled.emptyGroups = [UInt64](repeating: 0, count: (groups + 63) / 64)
        }
        let expected = (recycled.changes?.blocks.count ?? 0) * 5 / 4
        let previousGroups = recycled.emptyGroups
        var changes: SnapshotChanges
        (changes, recycled.emptyGroups) = try readMapped { mapped in
            var changes = SnapshotChanges(expected: expected)
            var emptyGroups = previousGroups
            words.withUnsafeBufferPointer { old in
                emptyGroups.withUnsafeMutableBufferPointer { emptyGroups in
                    changes.record(
                        UnsafeBufferPointer(rebasing: old[usable]), mapped.advanced(by: usable.lowerBound),
                        firstBlock: usable.lowerBound, emptyGroups: emptyGroups)
                }
            }
            return (changes, emptyGroups)
        }
        for (block, word) in zip(changes.blocks, changes.laterWords) { words[block] = word }
        changes.finish(
            seconds: SnapshotChanges.seconds(from: previous.takenAt, to: started), tree: geometry.tree, minSize: geometry.minSize)

        let allocations = readingAllocations ? try scanAllocations(words) : nil
        let snapshot = CacheSnapshot(
            path: path, header: current, words: words, allocations: allocations, takenAt: started,
            wallClockNanoseconds: wallClock)
        // `previous`'s words, with what turns them into this snapshot's, for the call after next.
        recycled.words = previous.words
        recycled.changes = changes
        recycled.basis = started
        return (snapshot, changes)
    }

    /// Reads block `block` now and describes its tree and its allocations (header fields and first
    /// bytes). The word is read afresh, so the detail may be newer than the last snapshot.
    public func blockDetail(_ block: Int, previewLength: Int = BlockDetail.defaultPreviewLength) throws(InspectError) -> BlockDetail {
        precondition((0..<geometry.blockCount).contains(block), "block \(block) out of 0..<\(geometry.blockCount)")
        try checkFile()
        let word = try readMapped { $0.word(at: block) }
        let data = try [UInt8](unsafeUninitializedCapacity: geometry.blockSize) { buffer, initialised throws(InspectError) in
            try read(into: UnsafeMutableRawBufferPointer(buffer), at: layout.dataOffset + block * geometry.blockSize)
            initialised = buffer.count
        }
        var advertised: [Int] = []
        if layout.indexLength > 0 {
            let index = layout.freeIndex
            for order in 0..<index.classCount {
                let wordIndex = index.wordIndex(class: order, level: 0, bit: block)
                let listing = try readWords(count: 1, at: layout.indexOffset + wordIndex * 8)[0]
                if listing & (1 << UInt64(block & 63)) != 0 { advertised.append(order) }
            }
        }
        let owners = try readOwners()
        return data.withUnsafeBytes { bytes in
            BlockDetail(
                block: block, word: word, layout: layout, blockBytes: bytes, previewLength: previewLength,
                advertisedOrders: advertised, owners: owners)
        }
    }

    /// Throws when the path no longer names the attached file, or the file is shorter than its header says.
    public func checkFile() throws(InspectError) {
        let named: Stat
        do { named = try FilePath(path).stat() } catch {
            if error == .noSuchFileOrDirectory { throw .deleted(path: path) }
            throw .system(path: path, operation: "stat", errno: error)
        }
        guard UInt64(named.deviceID.rawValue) == device, UInt64(named.inode.rawValue) == inode else {
            throw .replaced(path: path)
        }
        let attached: Stat
        do { attached = try descriptor.stat() } catch { throw .system(path: path, operation: "fstat", errno: error) }
        if attached.size < layout.fileSize {
            throw .truncated(path: path, size: Int(attached.size), expected: layout.fileSize)
        }
    }

    // MARK: - Reading

    /// Runs `body` over the mapped buddy words and returns its result;
    /// throws when the file is shorter than its layout (truncated under the mapping), deleted or
    /// replaced. `body` may run twice, so it only computes its result.
    private func readMapped<Result>(_ body: (MappedWords) -> Result) throws(InspectError) -> Result {
        for attempt in 0..<2 {
            if let result = mapping.read(descriptor, body) {
                // A cut inside a page does not fault (the page's tail reads as zeros): the file's
                // size after the read says whether one happened meanwhile.
                try checkFile()
                return result
            }
            // The file's state says why (it may also have been deleted or replaced since).
            try checkFile()
            // The same file is whole again (grown back, or the truncation was met in flight): map
            // it afresh and read once more.
            if attempt == 0 { mapping.restore(descriptor) }
        }
        // Cut and grown back again meanwhile: the file was at most as long as the lowest page
        // that faulted.
        throw .truncated(path: path, size: mapping.faultedFileOffset ?? 0, expected: layout.fileSize)
    }

    /// Reads `count` little-endian 64-bit words at `offset`.
    private func readWords(count: Int, at offset: Int) throws(InspectError) -> [UInt64] {
        try [UInt64](unsafeUninitializedCapacity: count) { buffer, initialised throws(InspectError) in
            try read(into: UnsafeMutableRawBufferPointer(buffer), at: offset)
            #if _endian(big)
            for index in buffer.indices { buffer[index] = UInt64(littleEndian: buffer[index]) }
            #endif
            initialised = count
        }
    }

    /// Fills `buffer` from `offset`; a short read means the file shrank under us.
    private func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(InspectError) {
        let count: Int
        do { count = try Self.readFully(descriptor, into: buffer, at: offset) } catch {
            throw .system(path: path, operation: "read", errno: error)
        }
        if count < buffer.count {
            let size = (try? descriptor.stat().size).map(Int.init) ?? offset + count
            throw .truncated(path: path, size: size, expected: layout.fileSize)
        }
    }

    /// `pread` until `buffer` is full or the file ends; returns the bytes read.
    private static func readFully(
        _ descriptor: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer, at offset: Int
    ) throws(Errno) -> Int {
        var done = 0
        while done < buffer.count {
            let count: Int
            do {
                count = try descriptor.read(
                    fromAbsoluteOffset: Int64(offset + done), into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
            } catch let error as Errno { throw error } catch { throw .ioError }
            if count == 0 { break }
            done += count
        }
        return done
    }

    /// Reads and validates the header page's fields.
    private static func readHeader(_ descriptor: FileDescriptor, path: String, fileSize: Int?) throws(InspectError) -> FileHeader {
        do {
            return try withUnsafeTemporaryAllocation(byteCount: FileHeader.Field.end, alignment: 8) { buffer throws(InspectError) in
                let count: Int
                do throws(Errno) { count = try readFully(descriptor, into: buffer, at: 0) } catch {
                    throw .system(path: path, operation: "read", errno: error)
                }
                do throws(FormatError) {
                    return try FileHeader(decoding: UnsafeRawBufferPointer(rebasing: buffer[..<count]), fileSize: fileSize)
                } catch { throw .format(path: path, error) }
            }
        }
    }

    // MARK: - Allocation scan

    /// Block `block`'s word as the file holds it now, or `nil` when it cannot be read.
    private func currentWord(ofBlock block: Int) -> UInt64? {
        try? readWords(count: 1, at: layout.wordsOffset + block * 8)[0]
    }

    /// Reads the owner table.
    private func readOwners() throws(InspectError) -> OwnerRegistry {
        let table = UnsafeMutableRawBufferPointer.allocate(byteCount: OwnerTable.byteCount, alignment: 8)
        defer { table.deallocate() }
        try read(into: table, at: layout.ownersOffset)
        return OwnerRegistry(table: UnsafeRawBufferPointer(table))
    }

    /// The most bytes one `pread` of the data region asks for.
    static let scanChunkBytes = 1 << 20

    /// Reads the header of every allocation in `words` (runs of non-empty blocks at a time) and
    /// sums them per owner and per order; then reads each owner's process state.
    private func scanAllocations(_ words: [UInt64]) throws(InspectError) -> AllocationCensus {
        let tree = geometry.tree
        let owners = try readOwners()
        var builder = AllocationCensus.Builder(geometry: geometry)
        let blocksPerChunk = max(1, Self.scanChunkBytes / geometry.blockSize)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: blocksPerChunk * geometry.blockSize, alignment: 8)
        defer { buffer.deallocate() }

        var block = layout.nullBlockCount
        while block < words.count {
            guard words[block] != 0 else { block += 1; continue }
            var end = block + 1
            while end < words.count, end - block < blocksPerChunk, words[end] != 0 { end += 1 }
            let run = UnsafeMutableRawBufferPointer(rebasing: buffer[..<((end - block) * geometry.blockSize)])
            try read(into: run, at: layout.dataOffset + block * geometry.blockSize)
            for index in block..<end {
                var nodes = tree.allocations(words[index])
                while nodes != 0 {
                    let node = nodes.trailingZeroBitCount
                    nodes &= nodes &- 1
                    let offsetInRun = (index - block) * geometry.blockSize + tree.byteOffset(ofNode: node, minSize: geometry.minSize)
                    let raw = UInt64(littleEndian: run.loadUnaligned(fromByteOffset: offsetInRun, as: UInt64.self))
                    builder.add(
                        rawHeader: raw, order: tree.order(ofNode: node), claimer: owners.claimer(block: index, node: node),
                        blockChanged: currentWord(ofBlock: index) != words[index])
                }
            }
            block = end
        }
        return builder.census(state: owners.state(of:), command: ProcessState.commandName(ofProcess:))
    }

    /// Nanoseconds since the Unix epoch.
    static func wallClockNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
    }
}

/// An older snapshot's words kept for reuse by
/// ``CacheInspector/snapshot(readingAllocations:after:recycling:)``, with the changes that bring
/// them up to the snapshot the next call compares with.
public struct RecycledWords: Sendable {
    /// An older snapshot's words.
    var words: [UInt64] = []
    /// What turns `words` into the snapshot `basis` names.
    var changes: SnapshotChanges?
    /// When the snapshot the next call must compare with was taken (it must be the last one returned).
    var basis: ContinuousClock.Instant?
    /// One bit per group of `SnapshotChanges.chunkWords` usable words of that snapshot: set when
    /// the group is all zero (empty blocks), so the next comparison need not read it.
    var emptyGroups: [UInt64] = []

    /// Nothing recycled yet.
    public init() {}
}

