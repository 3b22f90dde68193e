// The sizes a cache is cut into, chosen when its file is created and stored in its header.

/// The shape of a cache: the smallest and largest allocation size and the number of blocks.
///
/// Both sizes are powers of two. The largest size is also the block size: every block is one
/// buddy tree whose root is one block and whose leaves are `minSize` bytes. A tree of depth
/// `maxSize / minSize ≤ 32` has at most 63 nodes, so its whole state fits one 64-bit word.
public struct Geometry: Hashable, Sendable, CustomStringConvertible {
    /// The smallest node, in bytes (a power of two, at least ``Geometry/smallestMinSize``).
    public let minSize: Int
    /// The largest node and the block size, in bytes (a power of two, at most ``Geometry/largestMaxSize``).
    public let maxSize: Int
    /// The number of blocks in the data region, the null region included.
    public let blockCount: Int

    /// The original library's geometry: 32 B to 1 KiB in 512 MiB.
    public static let `default` = try! Geometry(minSize: 32, maxSize: 1024, capacity: 512 << 20)

    /// The smallest `minSize`: a node must hold the 8-byte allocation header and 8 bytes of data.
    public static let smallestMinSize = 16
    /// The largest `maxSize`, bounded by the 20-bit size field of ``AllocationHeader``.
    public static let largestMaxSize = 1 << 20
    /// At most 32 leaves per block, so a block's tree (63 nodes) fits one 64-bit word.
    public static let largestDepth = 5
    /// The largest capacity a header may describe (1 TiB); the file is sparse, so this is address space.
    public static let largestCapacity = 1 << 40

    /// Checks and builds a geometry; every violation is reported with the values at fault.
    ///
    /// - Parameters:
    ///   - minSize: the smallest allocation node, a power of two ≥ 16.
    ///   - maxSize: the block size, a power of two, at most 32 × `minSize` and at most 1 MiB.
    ///   - capacity: the data region's size, a positive multiple of `maxSize`, larger than the null region.
    public init(minSize: Int, maxSize: Int, capacity: Int) throws(GeometryError) {
        guard minSize.isPowerOfTwo, minSize >= Self.smallestMinSize else {
            throw .minSizeNotAllowed(minSize)
        }
        guard maxSize.isPowerOfTwo, maxSize <= Self.largestMaxSize else {
            throw .maxSizeNotAllowed(maxSize)
        }
        guard maxSize >= minSize else { throw .maxBelowMin(minSize: minSize, maxSize: maxSize) }
        guard maxSize / minSize <= 1 << Self.largestDepth else {
            throw .treeTooDeep(minSize: minSize, maxSize: maxSize)
        }
        guard capacity > 0, capacity <= Self.largestCapacity else { throw .capacityOutOfRange(capacity) }
        guard capacity % maxSize == 0 else { throw .capacityNotMultiple(capacity: capacity, blockSize: maxSize) }
        self.init(uncheckedMinSize: minSize, maxSize: maxSize, blockCount: capacity / maxSize)
    }

    /// A geometry whose fields were validated elsewhere (by ``FileHeader``'s parser or by `init`).
    init(uncheckedMinSize minSize: Int, maxSize: Int, blockCount: Int) {
        self.minSize = minSize
        self.maxSize = maxSize
        self.blockCount = blockCount
    }

    /// The block size, which is also the largest allocation node.
    @inlinable @inline(__always) public var blockSize: Int { maxSize }
    /// The data region's size in bytes: `blockCount × blockSize`.
    public var capacity: Int { blockCount &* maxSize }
    /// log2 of `minSize`.
    @inlinable @inline(__always) public var minShift: Int { minSize.trailingZeroBitCount }
    /// log2 of `maxSize`.
    @inlinable @inline(__always) public var maxShift: Int { maxSize.trailingZeroBitCount }
    /// The number of orders (size classes) a block offers: `minSize, 2·minSize, …, maxSize`.
    @inlinable @inline(__always) public var orderCount: Int { maxShift - minShift + 1 }
    /// The buddy tree every block holds.
    @inlinable @inline(__always) public var tree: BuddyTree { BuddyTree(depth: maxShift - minShift) }

    /// The node size of an order: order 0 is `minSize`, order `orderCount - 1` is the block.
    @inlinable @inline(__always) public func nodeSize(ofOrder order: Int) -> Int { minSize &<< order }

    /// The largest request `allocate` accepts: the block minus the allocation header.
    /// (Wrapping arithmetic: `maxSize` is at least 16, and an overflow check would cost every allocation.)
    @inlinable @inline(__always) public var largestRequest: Int { maxSize &- AllocationHeader.size }

    /// The order of the smallest node that holds `requestedBytes` plus the allocation header, or
    /// `nil` when even a whole block is too small.
    @inlinable @inline(__always)
    public func order(forRequest requestedBytes: Int) -> Int? {
        // One unsigned comparison: a negative count is a huge unsigned one.
        guard UInt(bitPattern: requestedBytes) <= UInt(bitPattern: largestRequest) else { return nil }
        let needed = requestedBytes &+ AllocationHeader.size
        // ceil(log2(needed)), computed without a loop: the bit width of `needed - 1`.
        let shift = Int.bitWidth &- (needed &- 1).leadingZeroBitCount
        return shift <= minShift ? 0 : shift &- minShift
    }

    /// The bytes of the node a request of `requestedBytes` takes (header included), or `nil` when
    /// even a whole block is too small.
    @inlinable
    public func nodeSize(forRequest requestedBytes: Int) -> Int? {
        order(forRequest: requestedBytes).map(nodeSize(ofOrder:))
    }

    /// One allocation a buddy word records: its node in the block's tree, the node's order, and
    /// where the node starts, in bytes from the user base (its header; the usable bytes follow).
    public struct Allocation: Hashable, Sendable {
        public let node: Int
        public let order: Int
        public let nodeOffset: Int

        @inlinable
        public init(node: Int, order: Int, nodeOffset: Int) {
            self.node = node
            self.order = order
            self.nodeOffset = nodeOffset
        }

        /// The offset of the usable bytes, what `allocate` returned for it.
        @inlinable public var offset: Int { nodeOffset &+ AllocationHeader.size }
    }

    /// Calls `body` with every allocation `word`, block `block`'s buddy word, records (nodes that
    /// are set under a clear parent), lowest node number first.
    @inlinable
    public func forEachAllocation(inWord word: UInt64, ofBlock block: Int, _ body: (Allocation) -> Void) {
        let tree = self.tree
        var nodes = tree.allocations(word)
        while nodes != 0 {
            let node = nodes.trailingZeroBitCount
            nodes &= nodes &- 1
            let nodeOffset = block &* maxSize &+ tree.byteOffset(ofNode: node, minSize: minSize)
            body(Allocation(node: node, order: tree.order(ofNode: node), nodeOffset: nodeOffset))
        }
    }

    /// True when `header`, read at a node of `order`, may be a live allocation's header: it names
    /// that order and an owner, and its requested bytes fit the node. A node whose header is not
    /// plausible is being claimed or freed (see `AllocationHeader.isReleased`) or was overwritten.
    @inlinable
    public func isPlausible(_ header: AllocationHeader, atOrder order: Int) -> Bool {
        header.order == order && !header.isReleased
            && header.requestedSize <= nodeSize(ofOrder: order) &- AllocationHeader.size
    }

    public var description: String {
        "\(ByteCount(minSize))..\(ByteCount(maxSize)) × \(blockCount) blocks = \(ByteCount(capacity))"
    }
}

/// Why a geometry was refused.
public enum GeometryError: Error, Hashable, Sendable, CustomStringConvertible {
    case minSizeNotAllowed(Int)
    case maxSizeNotAllowed(Int)
    case maxBelowMin(minSize: Int, maxSize: Int)
    case treeTooDeep(minSize: Int, maxSize: Int)
    case capacityOutOfRange(Int)
    case capacityNotMultiple(capacity: Int, blockSize: Int)

    public var description: String {
        switch self {
        case .minSizeNotAllowed(let size):
            "min size \(size) must be a power of two of at least \(Geometry.smallestMinSize) bytes"
        case .maxSizeNotAllowed(let size):
            "max size \(size) must be a power of two of at most \(ByteCount(Geometry.largestMaxSize))"
        case .maxBelowMin(let minSize, let maxSize):
            "max size \(maxSize) is smaller than min size \(minSize)"
        case .treeTooDeep(let minSize, let maxSize):
            "max size / min size = \(maxSize / minSize) exceeds 32 (\(maxSize) / \(minSize)): "
                + "a block's buddy tree must fit one 64-bit word"
        case .capacityOutOfRange(let capacity):
            "capacity \(capacity) must be positive and at most \(ByteCount(Geometry.largestCapacity))"
        case .capacityNotMultiple(let capacity, let blockSize):
            "capacity \(capacity) is not a multiple of the block size \(blockSize)"
        }
    }
}

extension Int {
    /// True for 1, 2, 4, …; false for zero and negative numbers.
    @inline(__always) public var isPowerOfTwo: Bool { self > 0 && self & (self &- 1) == 0 }
}

/// A byte count printed the way people read sizes: `32 B`, `1 KiB`, `512 MiB`, `1.5 GiB`.
public struct ByteCount: CustomStringConvertible, Sendable {
    public let bytes: Int
    public init(_ bytes: Int) { self.bytes = bytes }

    public var description: String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        let magnitude = bytes.magnitude
        var unit = 0
        var scale: UInt = 1
        while unit < units.count - 1, magnitude / scale >= 1024 {
            scale *= 1024
            unit += 1
        }
        let sign = bytes < 0 ? "-" : ""
        if magnitude % scale == 0 { return "\(sign)\(magnitude / scale) \(units[unit])" }
        // Tenths rounded half up, in integers: the runtime-free C library links no libm.
        let tenths = magnitude / scale * 10 + (magnitude % scale * 10 + scale / 2) / scale
        return "\(sign)\(tenths / 10).\(tenths % 10) \(units[unit])"
    }
}

extension ByteCount {
    /// Parses a size as people write it: `4096`, `64KiB`, `512MiB`, `4 GiB`, `1G`, `2k` (binary
    /// units; a trailing `B` or `iB` is optional). `nil` when the text is not a size or overflows.
    public init?(parsing text: String) {
        let trimmed = text.trimmingWhitespace
        let digits = trimmed.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, let number = Int(digits) else { return nil }
        var unit = trimmed.dropFirst(digits.count).trimmingWhitespace.lowercased()
        if unit.hasSuffix("ib") { unit.removeLast(2) } else if unit.hasSuffix("b") { unit.removeLast() }
        let shifts = ["": 0, "k": 10, "m": 20, "g": 30, "t": 40]
        guard let shift = shifts[unit] else { return nil }
        let (value, overflow) = number.multipliedReportingOverflow(by: 1 << shift)
        guard !overflow else { return nil }
        self.init(value)
    }
}

extension StringProtocol {
    fileprivate var trimmingWhitespace: String {
        String(drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }
}
