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

import ShmFormat
import ShmSystem

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

    let descriptor: FileDescriptor
    /// The buddy words, mapped: what a live view reads at every refresh.
    private let mapping: GuardedMapping
    /// The data region, mapped for reading allocation headers in place (a live view reads those
    /// of the blocks that changed, a few thousand scattered nodes per refresh, where a `pread`
    /// each would cost a system call); `nil` when it could not be mapped, and headers are read
    /// with `pread`.
    let dataMapping: GuardedMapping?
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
        do { descriptor = try FileDescriptor.open(path, .readOnly, options: [.closeOnExec]) } catch {
            throw .system(SystemCallFailure(path: path, operation: "open", errno: error))
        }
        do throws(InspectError) {
            let status: FileStatus
            do { status = try descriptor.status() } catch {
                throw .system(SystemCallFailure(path: path, operation: "fstat", errno: error))
            }
            guard status.isRegularFile else { throw .notRegularFile(path: path) }
            header = try Self.readHeader(descriptor, path: path, fileSize: status.size)
            device = status.device
            inode = status.inode
            do {
                mapping = try GuardedMapping(
                    descriptor, offset: header.layout.wordsOffset, count: header.geometry.blockCount)
            } catch { throw .system(SystemCallFailure(path: path, operation: "mmap", errno: error)) }
            dataMapping = try? GuardedMapping(
                descriptor, offset: header.layout.dataOffset, count: header.geometry.capacity / 8)
        } catch {
            try? descriptor.close()
            throw error
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
        let wallClock = SystemClock.wallNanoseconds()
        try checkFile()
        let current = try Self.readHeader(descriptor, path: path, fileSize: nil)
        guard current.layout == header.layout else { throw .replaced(path: path) }
        let words = try readMapped { mapped in
            [UInt64](unsafeUninitializedCapacity: geometry.blockCount) { buffer, initialised in
                for block in buffer.indices { buffer[block] = mapped.word(at: block) }
                initialised = buffer.count
            }
        }
        let indexWords =
            layout.indexLength == 0 ? [] : try readWords(count: layout.freeIndex.totalWords, at: layout.indexOffset)
        let allocations = readingAllocations ? try scanAllocations(words) : nil
        return CacheSnapshot(
            path: path, header: current, words: words, indexWords: indexWords, allocations: allocations,
            takenAt: started, wallClockNanoseconds: wallClock)
    }

    /// Brings `snapshot` (an earlier snapshot of this inspector's) up to now by difference, and
    /// returns what changed: what a live view needs at every refresh.
    ///
    /// The mapped words of `blocks` (all usable blocks when `nil`; see
    /// ``SnapshotSeries/nextPass(of:)``) are compared with the snapshot's where they are read, and
    /// only the words that changed are written into its array, in place when no other snapshot
    /// shares it (copy-on-write): a series keeps one copy of the words and a refresh neither
    /// allocates nor writes 8 bytes per block. Words outside `blocks` keep their earlier values.
    /// The free-space index is not read (`indexWords` becomes empty), nor are allocation headers
    /// (an ``OwnerLedger`` follows the changes instead).
    ///
    /// Pass the same `series` to every call of a series (a snapshot it does not know starts
    /// afresh): it remembers which groups of words were all zero, which are then compared without
    /// reading the earlier words at all.
    public func advance(
        _ snapshot: inout CacheSnapshot, series: inout SnapshotSeries, comparing blocks: Range<Int>? = nil
    ) throws(InspectError) -> SnapshotChanges {
        precondition(snapshot.layout == layout, "a snapshot of another cache")
        let started = ContinuousClock.now
        let wallClock = SystemClock.wallNanoseconds()
        try checkFile()
        let current = try Self.readHeader(descriptor, path: path, fileSize: nil)
        guard current.layout == header.layout else { throw .replaced(path: path) }

        let usable = snapshot.usableBlocks  // the null region's words never change
        let compared = series.alignedRange(blocks ?? usable, usable: usable)
        if series.basis != snapshot.takenAt || series.emptyGroups.isEmpty {
            // The groups of the snapshot's words that are all zero, which passes then keep up to date.
            series.emptyGroups = [UInt64](repeating: 0, count: (SnapshotSeries.groupCount(usable) + 63) / 64)
            snapshot.words.withUnsafeBufferPointer { words in
                series.emptyGroups.withUnsafeMutableBufferPointer {
                    ChangedWords.markEmptyGroups(of: UnsafeBufferPointer(rebasing: words[usable]), in: $0)
                }
            }
        }
        var words: [UInt64] = []
        swap(&words, &snapshot.words)
        let expected = series.changedLastTime * 5 / 4
        let firstGroupWord = (compared.lowerBound - usable.lowerBound) / ChangedWords.spanWords
        let previousGroups = series.emptyGroups
        let changed: ChangedWords
        let emptyGroups: [UInt64]
        do {
            (changed, emptyGroups) = try readMapped { mapped in
                var changed = ChangedWords(expected: expected)
                var emptyGroups = previousGroups
                words.withUnsafeBufferPointer { old in
                    emptyGroups.withUnsafeMutableBufferPointer { groups in
                        changed.record(
                            UnsafeBufferPointer(rebasing: old[compared]), mapped.advanced(by: compared.lowerBound),
                            firstBlock: compared.lowerBound,
                            emptyGroups: UnsafeMutableBufferPointer(rebasing: groups[firstGroupWord...]))
                    }
                }
                return (changed, emptyGroups)
            }
        } catch {
            swap(&words, &snapshot.words)
            throw error
        }
        // One uniqueness check for all the stores, not one per store.
        words.withUnsafeMutableBufferPointer { words in
            for (block, word) in zip(changed.blocks, changed.laterWords) { words[block] = word }
        }
        let changes = SnapshotChanges(
            changed, seconds: (started - snapshot.takenAt).inSeconds, geometry: geometry)
        snapshot = CacheSnapshot(
            path: path, header: current, words: words, allocations: nil, takenAt: started,
            wallClockNanoseconds: wallClock)
        series.emptyGroups = emptyGroups
        series.recordPass(compared, usable: usable, at: started, changed: changes.blocks.count)
        return changes
    }

    /// Reads block `block` now and describes its tree and its allocations (header fields and first
    /// bytes). The word is read afresh, so the detail may be newer than the last snapshot.
    public func blockDetail(_ block: Int, previewLength: Int = BlockDetail.defaultPreviewLength) throws(InspectError)
        -> BlockDetail
    {
        precondition((0..<geometry.blockCount).contains(block), "block \(block) out of 0..<\(geometry.blockCount)")
        try checkFile()
        let word = try readMapped { $0.word(at: block) }
        let data = try [UInt8](unsafeUninitializedCapacity: geometry.blockSize) {
            buffer, initialised throws(InspectError) in
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
        let named: FileStatus
        do { named = try FileStatus(path: path) } catch {
            if error == .noSuchFileOrDirectory { throw .deleted(path: path) }
            throw .system(SystemCallFailure(path: path, operation: "stat", errno: error))
        }
        guard named.device == device, named.inode == inode else { throw .replaced(path: path) }
        let attached: FileStatus
        do { attached = try descriptor.status() } catch {
            throw .system(SystemCallFailure(path: path, operation: "fstat", errno: error))
        }
        if attached.size < layout.fileSize {
            throw .truncated(path: path, size: attached.size, expected: layout.fileSize)
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
    func readWords(count: Int, at offset: Int) throws(InspectError) -> [UInt64] {
        try [UInt64](unsafeUninitializedCapacity: count) { buffer, initialised throws(InspectError) in
            try read(into: UnsafeMutableRawBufferPointer(buffer), at: offset)
            #if _endian(big)
                for index in buffer.indices { buffer[index] = UInt64(littleEndian: buffer[index]) }
            #endif
            initialised = count
        }
    }

    /// Fills `buffer` from `offset`; a short read means the file shrank under us.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(InspectError) {
        let count: Int
        do { count = try descriptor.read(at: offset, into: buffer) } catch {
            throw .system(SystemCallFailure(path: path, operation: "read", errno: error))
        }
        if count < buffer.count {
            let size = (try? descriptor.status().size) ?? offset + count
            throw .truncated(path: path, size: size, expected: layout.fileSize)
        }
    }

    /// Reads and validates the header page's fields.
    private static func readHeader(_ descriptor: FileDescriptor, path: String, fileSize: Int?) throws(InspectError)
        -> FileHeader
    {
        do {
            return try withUnsafeTemporaryAllocation(byteCount: FileHeader.Field.end, alignment: 8) {
                buffer throws(InspectError) in
                let count: Int
                do throws(Errno) { count = try descriptor.read(at: 0, into: buffer) } catch {
                    throw .system(SystemCallFailure(path: path, operation: "read", errno: error))
                }
                do throws(FormatError) {
                    return try FileHeader(
                        decoding: UnsafeRawBufferPointer(rebasing: buffer[..<count]), fileSize: fileSize)
                } catch { throw .format(path: path, error) }
            }
        }
    }

}
