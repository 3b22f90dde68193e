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

    /// Counts an entry of `meta` in a node of `nodeBytes` at `depth`.
    mutating func count(entryOf meta: PathCacheLayout.Meta, nodeBytes: Int, depth: Int) {
        entries += 1
        if meta.flags & PathCacheLayout.prefixFlag != 0 { prefixEntries += 1 }
        pathBytes += meta.length
        entryNodeBytes += nodeBytes
        if depthCounts.count <= depth {
            depthCounts.append(contentsOf: repeatElement(0, count: depth + 1 - depthCounts.count))
        }
        depthCounts[depth] += 1
    }
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
    public func walk(_ visit: (_ path: UnsafeRawBufferPointer, _ flags: UInt8, _ depth: Int) -> Void = { _, _, _ in })
        -> PathCacheCensus
    {
        var progress = Progress()
        resume(&progress, nodes: Int.max) { node in
            if !node.isTable { visit(node.path, node.flags, node.depth) }
        }
        return progress.census
    }

    /// Where a walk done a slice at a time stands (``resume(_:nodes:_:)``): the census so far and
    /// the nodes still to visit. Nodes are never moved or freed once published (PathCacheLayout's
    /// invariants), so slices taken at different times add up to a census of every node published
    /// before the walk read the slot naming it.
    public struct Progress: Sendable {
        /// The figures of the nodes visited so far; complete once ``isFinished``.
        public internal(set) var census = PathCacheCensus()
        /// True when every node reachable from the root has been visited.
        public internal(set) var isFinished = false
        /// The root word the walk started from; 0 before it started.
        public internal(set) var root: UInt64 = 0
        /// The root table's offset, once found valid.
        var rootTable: Int?
        /// The next root slot whose bucket table is to be read.
        var nextRootSlot = 0
        /// Entries still to visit: their offset and depth (an explicit stack: the depth is bounded,
        /// the recursion of a deep chain would not be).
        var pending: [(offset: Int, depth: Int)] = []
        /// Entries the walk may still visit: no file holds more entries than nodes, so a walk past
        /// that many is following a cycle that only a corrupt file has, and stops there.
        var visitsLeft = 0

        /// A walk not started yet.
        public init() {}
    }

    /// A node a walk visits: a table, or an entry with its path, flags and depth.
    public struct Node {
        /// The node's usable bytes, from the user base; its allocation header is the 8 bytes before.
        public let offset: Int
        /// The node's bytes (allocation header and slack included).
        public let nodeBytes: Int
        /// True for a root or bucket table, false for an entry.
        public let isTable: Bool
        /// An entry's path bytes (in the mapping); empty for a table.
        public let path: UnsafeRawBufferPointer
        /// An entry's flags; 0 for a table.
        public let flags: UInt8
        /// An entry's depth below its bucket slot (0 = in the slot itself); 0 for a table.
        public let depth: Int
    }

    /// Continues `progress` (a walk of this root; a walk of another root starts afresh) by at most
    /// `nodes` tables and entries, calling `visit` for each; ``Progress/isFinished`` tells when
    /// the census is complete. An empty cache (root 0) finishes at once.
    public func resume(_ progress: inout Progress, nodes: Int, _ visit: (Node) -> Void) {
        if progress.root != root { progress = Progress() }
        guard !progress.isFinished else { return }
        guard root != 0 else {
            progress.isFinished = true
            return
        }
        let slotCount = PathCacheLayout.tableSlotCount(geometry: geometry)
        var budget = nodes
        if progress.rootTable == nil {
            progress.root = root
            progress.visitsLeft = geometry.capacity >> geometry.minShift
            guard
                let rootTable = table(
                    at: Int(truncatingIfNeeded: root), level: 1, slotCount: slotCount, census: &progress.census, visit)
            else {
                progress.census.invalidSlots += 1
                progress.isFinished = true
                return
            }
            progress.rootTable = rootTable
            progress.census.storedPrefixCount = load64(rootTable + PathCacheLayout.prefixCountOffset)
            budget -= 1
        }
        let rootTable = progress.rootTable!
        while budget > 0 {
            guard let next = progress.pending.popLast() else {
                // The next bucket table's entries.
                guard progress.nextRootSlot < slotCount else {
                    progress.isFinished = true
                    return
                }
                let rootSlot = progress.nextRootSlot
                progress.nextRootSlot += 1
                let bucketSlot = load32(rootTable + PathCacheLayout.tableHeaderSize + rootSlot * 4)
                guard bucketSlot != 0 else { continue }
                budget -= 1
                guard
                    let bucket = table(
                        at: nodeOffset(ofSlot: bucketSlot),
                        level: 2, slotCount: slotCount, census: &progress.census, visit)
                else {
                    progress.census.invalidSlots += 1
                    continue
                }
                for index in 0..<slotCount {
                    let entrySlot = load32(bucket + PathCacheLayout.tableHeaderSize + index * 4)
                    if entrySlot != 0 {
                        progress.pending.append((nodeOffset(ofSlot: entrySlot), 0))
                    }
                }
                continue
            }
            budget -= 1
            progress.visitsLeft -= 1
            guard progress.visitsLeft >= 0 else {
                progress.census.invalidSlots += progress.pending.count + 1
                progress.pending.removeAll()
                progress.isFinished = true
                return
            }
            visitEntry(next.offset, depth: next.depth, progress: &progress, visit)
        }
    }

    /// Counts and visits the entry at `offset` (or counts an invalid slot) and queues its children.
    private func visitEntry(_ offset: Int, depth: Int, progress: inout Progress, _ visit: (Node) -> Void) {
        guard depth < PathCacheLayout.maxDepth, let meta = entryMeta(at: offset) else {
            progress.census.invalidSlots += 1
            return
        }
        let path = UnsafeRawBufferPointer(rebasing: data[(offset + entryBytesOffset(meta))...].prefix(meta.length))
        let bytes = nodeSize(request: entryBytesOffset(meta) + meta.length)
        visit(Node(offset: offset, nodeBytes: bytes, isTable: false, path: path, flags: meta.flags, depth: depth))
        progress.census.count(entryOf: meta, nodeBytes: bytes, depth: depth)
        // Most child slots are empty, and the scan of them was most of a walk's instructions: they
        // are scanned two at a time (an entry has at least two) with a plain load, and only a
        // pair holding a slot is loaded again with acquire ordering. A slot changes once, from 0
        // to its final value, so a plain load that sees 0 misses only what a later walk finds.
        let children = offset + PathCacheLayout.childrenOffset
        for pair in stride(from: 0, to: 1 << meta.fanOutShift, by: 2) {
            guard data.loadUnaligned(fromByteOffset: children + pair * 4, as: UInt64.self) != 0 else { continue }
            for child in pair..<(pair + 2) {
                let childSlot = load32(children + child * 4)
                if childSlot != 0 {
                    progress.pending.append((nodeOffset(ofSlot: childSlot), depth + 1))
                }
            }
        }
    }

    /// The offset of a valid table of `level` at `offset`, counted in the census and visited, or `nil`.
    private func table(
        at offset: Int, level: Int, slotCount: Int, census: inout PathCacheCensus, _ visit: (Node) -> Void
    ) -> Int? {
        let request = PathCacheLayout.tableRequest(geometry: geometry)
        guard isNodeStart(offset), offset + request <= data.count,
            load64(offset) == PathCacheLayout.tableDescriptor(level: level, slotCount: slotCount)
        else { return nil }
        let bytes = nodeSize(request: request)
        census.tables += 1
        census.tableNodeBytes += bytes
        let noPath = UnsafeRawBufferPointer(start: nil, count: 0)
        visit(Node(offset: offset, nodeBytes: bytes, isTable: true, path: noPath, flags: 0, depth: 0))
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

    /// The offset of the usable bytes of the node a (non-zero) slot names.
    private func nodeOffset(ofSlot slot: UInt32) -> Int {
        PathCacheLayout.offset(ofSlot: slot, minShift: geometry.minShift)
    }

    /// Where an entry's path bytes start, from the entry.
    private func entryBytesOffset(_ meta: PathCacheLayout.Meta) -> Int {
        PathCacheLayout.childrenOffset + 4 << meta.fanOutShift
    }

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
