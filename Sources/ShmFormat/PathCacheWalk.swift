// Walking a path cache without its code: every table and entry from the root, checked against
// the layout (PathCacheLayout.swift) before it is trusted, so a reader of a damaged or hostile
// file gets counted problems instead of a crash or an endless walk.

import Synchronization

/// What a walk found: the figures the inspector shows and the tests check.
public struct PathCacheCensus: Hashable, Sendable {
    /// Entries reached (each one cached path).
    public var entries = 0
    /// Entries whose flags carry ``PathCacheLayout/prefixFlag``.
    public var prefixEntries = 0
    /// The prefix count the root table keeps (an upper bound of `prefixEntries`; see PathCache).
    public var storedPrefixCount: UInt64 = 0
    /// The paths' own bytes.
    public var pathBytes = 0
    /// Bytes of the nodes holding entries and tables (allocation headers and slack included).
    public var entryNodeBytes = 0
    public var tableNodeBytes = 0
    public var tables = 0
    /// `depthCounts[d]`: entries `d` entries below their bucket slot (0 = in the slot itself).
    public var depthCounts: [Int] = []
    /// Slots naming something that is not a valid table or entry, which the walk does not follow
    /// (or, in a file whose slots form a cycle, those it had yet to follow when it gave up).
    public var invalidSlots = 0

    public init() {}
}

/// A walk of the path cache in a mapped data region (read-only suffices).
public struct PathCacheWalk {
    /// The data region: offset 0 is the user base.
    let data: UnsafeRawBufferPointer
    let geometry: Geometry
    let root: UInt64

    /// - Parameters:
    ///   - data: the whole data region, from the user base (`capacity` bytes).
    ///   - geometry: the file's geometry.
    ///   - root: the header's ``FileHeader/Field/pathCacheRoot`` word.
    public init(data: UnsafeRawBufferPointer, geometry: Geometry, root: UInt64) {
        self.data = data
        self.geometry = geometry
        self.root = root
    }

    /// Visits every valid entry once (its path bytes, flags and depth below its bucket slot) and
    /// returns the census. Slots are read with acquire loads, so a walk beside live writers sees
    /// complete entries; the entries it meets are those published before it read their slots.
    public func walk(_ visit: (_ path: UnsafeRawBufferPointer, _ flags: UInt8, _ depth: Int) -> Void = { _, _, _ in }) -> PathCacheCensus {
        var census = PathCacheCensus()
        let slotCount = PathCacheLayout.tableSlotCount(geometry: geometry)
        guard root != 0 else { return census }
        guard let rootTable = table(at: Int(truncatingIfNeeded: root), level: 1, slotCount: slotCount, census: &census) else {
            census.invalidSlots += 1
            return census
        }
        census.storedPrefixCount = load64(rootTable + PathCacheLayout.prefixCountOffset)
        // Entries still to visit: their offset and depth (an explicit stack: the depth is bounded,
        // the recursion of a deep chain would not be).
        var pending: [(offset: Int, depth: Int)] = []
        for rootSlot in 0..<slotCount {
            let bucketSlot = load32(rootTable + PathCacheLayout.tableHeaderSize + rootSlot * 4)
            guard bucketSlot != 0 else { continue }
            guard let bucket = table(at: PathCacheLayout.offset(ofSlot: bucketSlot, minShift: geometry.minShift),
                                     level: 2, slotCount: slotCount, census: &census)
            else {
                census.invalidSlots += 1
                continue
            }
            for index in 0..<slotCount {
                let entrySlot = load32(bucket + PathCacheLayout.tableHeaderSize + index * 4)
                if entrySlot != 0 { pending.append((PathCacheLayout.offset(ofSlot: entrySlot, minShift: geometry.minShift), 0)) }
            }
        }
        // No file holds more entries than nodes: a walk past that many is following a cycle that
        // only a corrupt file has (each entry on it counted again), and stops there.
        var visitsLeft = geometry.capacity >> geometry.minShift
        while let next = pending.popLast() {
            visitsLeft -= 1
            guard visitsLeft >= 0 else {
                census.invalidSlots += pending.count + 1
                break
            }
            let (offset, depth) = next
            guard depth < PathCacheLayout.maxDepth, let meta = entryMeta(at: offset) else {
                census.invalidSlots += 1
                continue
            }
            let path = UnsafeRawBufferPointer(rebasing: data[(offset + entryBytesOffset(meta))...].prefix(meta.length))
            visit(path, meta.flags, depth)
            census.entries += 1
            if meta.flags & PathCacheLayout.prefixFlag != 0 { census.prefixEntries += 1 }
            census.pathBytes += meta.length
            census.entryNodeBytes += nodeSize(request: entryBytesOffset(meta) + meta.length)
            if census.depthCounts.count <= depth { census.depthCounts.append(contentsOf: repeatElement(0, count: depth + 1 - census.depthCounts.count)) }
            census.depthCounts[depth] += 1
            for child in 0..<(1 << meta.fanOutShift) {
                let childSlot = load32(offset + PathCacheLayout.childrenOffset + child * 4)
                if childSlot != 0 { pending.append((PathCacheLayout.offset(ofSlot: childSlot, minShift: geometry.minShift), depth + 1)) }
            }
        }
        return census
    }

    /// The offset of a valid table of `level` at `offset`, counted in the census, or `nil`.
    private func table(at offset: Int, level: Int, slotCount: Int, census: inout PathCacheCensus) -> Int? {
        let request = PathCacheLayout.tableRequest(geometry: geometry)
        guard isNodeStart(offset), offset + request <= data.count,
              load64(offset) == PathCacheLayout.tableDescriptor(level: level, slotCount: slotCount)
        else { return nil }
        census.tables += 1
        census.tableNodeBytes += nodeSize(request: request)
        return offset
    }

    /// The meta word of a valid entry at `offset`: its fan-out must be the one its length implies
    /// and its bytes must lie in the region.
    private func entryMeta(at offset: Int) -> PathCacheLayout.Meta? {
        guard isNodeStart(offset), offset + 8 <= data.count else { return nil }
        let meta = PathCacheLayout.Meta(rawValue: load64(offset))
        guard meta.length > 0, meta.length <= PathCacheLayout.longestPath(geometry: geometry),
              PathCacheLayout.entryShape(length: meta.length, geometry: geometry).fanOutShift == meta.fanOutShift,
              offset + entryBytesOffset(meta) + meta.length <= data.count
        else { return nil }
        return meta
    }

    /// Where an entry's path bytes start, from the entry.
    private func entryBytesOffset(_ meta: PathCacheLayout.Meta) -> Int { PathCacheLayout.childrenOffset + 4 << meta.fanOutShift }

    /// True for the usable bytes of a node: past the null page's first node, header-aligned.
    private func isNodeStart(_ offset: Int) -> Bool {
        offset >= geometry.minSize && (offset - AllocationHeader.size) & (geometry.minSize - 1) == 0
    }

    private func nodeSize(request: Int) -> Int { geometry.nodeSize(ofOrder: geometry.order(forRequest: request) ?? 0) }

    private func load64(_ offset: Int) -> UInt64 {
        UnsafeMutableRawPointer(mutating: data.baseAddress! + offset).assumingMemoryBound(to: Atomic<UInt64>.self)
            .pointee.load(ordering: .acquiring)
    }

    private func load32(_ offset: Int) -> UInt32 {
        UnsafeMutableRawPointer(mutating: data.baseAddress! + offset).assumingMemoryBound(to: Atomic<UInt32>.self)
            .pointee.load(ordering: .acquiring)
    }
}
