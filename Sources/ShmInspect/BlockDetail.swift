// One block, opened up: its tree node by node and its allocations with their headers and bytes.

import ShmFormat

/// What a node of a block's buddy tree is, as the drill-down draws it.
public enum NodeState: Hashable, Sendable {
    /// An allocation starts here: the node is set and its parent is clear.
    case allocation
    /// Part of an allocation made at an ancestor.
    case insideAllocation
    /// Clear, but some node below it is taken: split into smaller pieces.
    case split
    /// Free, and its parent is not: a whole free chunk (what buddyinfo counts).
    case maximalFree
    /// Free, inside a larger free chunk.
    case free
    /// Set while a child is clear: breaks the buddy invariant (corruption).
    case invalid
}

/// A block's tree and allocations, read at one moment.
public struct BlockDetail: Hashable, Sendable {
    /// How many bytes of each allocation ``Allocation/firstBytes`` keeps by default.
    public static let defaultPreviewLength = 32

    /// One allocation of the block.
    public struct Allocation: Hashable, Sendable {
        /// The tree node (heap numbering: root 1).
        public let node: Int
        /// The node's order (0 = `minSize`).
        public let order: Int
        /// The node's size in bytes, header included.
        public let nodeSize: Int
        /// The offset callers use: the node's start plus the 8-byte header, from the user base.
        public let offset: Int
        /// The decoded header, or `nil` when its bytes are not a valid header for this node
        /// (being written right now, or overwritten).
        public let header: AllocationHeader?
        /// What became of the owner when the block was read; `nil` without a header.
        public let ownerState: ProcessState?
        /// Whether the owner was alive (not a zombie, not gone) when the block was read; `nil`
        /// without a header.
        public var ownerAlive: Bool? { ownerState.map { $0 == .alive } }
        /// The first bytes of the allocation's usable space (at most the requested size when known).
        public let firstBytes: [UInt8]
    }

    /// The block number.
    public let block: Int
    /// The block's buddy word.
    public let word: UInt64
    /// The tree shape.
    public let tree: BuddyTree
    /// The user offsets the block covers.
    public let offsets: Range<Int>
    /// True when the block lies under the null page.
    public let isNullBlock: Bool
    /// Node states, one array per level from the root (level 0) to the leaves; index = position.
    public let levels: [[NodeState]]
    /// The allocations, in address order.
    public let allocations: [Allocation]
    /// The size classes (orders) the free-space index lists this block under. The index is
    /// advisory: a block may stay listed under a class it has left until a search re-files it,
    /// but some listed class should be at least its current one (`census.largestFreeOrder`).
    public let advertisedOrders: [Int]

    /// True when the word obeys the buddy invariant.
    public var isValid: Bool { tree.isValid(word) }
    /// The census of this one word: taken leaves, free chunks per order, largest free order.
    public var census: BuddyCensus { BuddyCensus(tree: tree, word: word) }

    /// Describes block `block` from its word and its bytes (`blockBytes`: the whole block); each
    /// owner's state is judged through `owners` (by pid alone when it is empty).
    public init(
        block: Int, word: UInt64, layout: FileLayout, blockBytes: UnsafeRawBufferPointer, previewLength: Int,
        advertisedOrders: [Int] = [], owners: OwnerRegistry = OwnerRegistry()
    ) {
        let geometry = layout.geometry
        let tree = geometry.tree
        self.block = block
        self.word = word
        self.tree = tree
        self.offsets = (block * geometry.blockSize)..<((block + 1) * geometry.blockSize)
        self.isNullBlock = block < layout.nullBlockCount
        self.levels = Self.nodeStates(word, tree: tree)
        self.advertisedOrders = advertisedOrders

        let offsets = offsets
        var allocations: [Allocation] = []
        geometry.forEachAllocation(inWord: word, ofBlock: block) { found in
            let nodeSize = geometry.nodeSize(ofOrder: found.order)
            let start = found.nodeOffset - offsets.lowerBound
            let raw = UInt64(littleEndian: blockBytes.loadUnaligned(fromByteOffset: start, as: UInt64.self))
            let header = AllocationHeader(rawValue: raw).flatMap {
                geometry.isPlausible($0, atOrder: found.order) ? $0 : nil
            }
            let usable = nodeSize - AllocationHeader.size
            let previewCount = min(previewLength, header?.requestedSize ?? usable)
            let previewStart = start + AllocationHeader.size
            allocations.append(
                Allocation(
                    node: found.node, order: found.order, nodeSize: nodeSize, offset: offsets.lowerBound + previewStart,
                    header: header, ownerState: header.map { owners.state(of: $0.ownerPID) },
                    firstBytes: Array(blockBytes[previewStart..<(previewStart + previewCount)])))
        }
        self.allocations = allocations.sorted { $0.offset < $1.offset }
    }

    /// The state of every node of `word`, level by level.
    public static func nodeStates(_ word: UInt64, tree: BuddyTree) -> [[NodeState]] {
        (0...tree.depth).map { level in
            (0..<(1 << level)).map { position in
                let node = (1 << level) + position
                let isSet = word & (UInt64(1) << UInt64(node)) != 0
                let parentSet = node > 1 && word & (UInt64(1) << UInt64(node >> 1)) != 0
                if isSet {
                    let childrenSet =
                        level == tree.depth || word & (UInt64(3) << UInt64(2 * node)) == UInt64(3) << UInt64(2 * node)
                    if !childrenSet { return .invalid }
                    return parentSet ? .insideAllocation : .allocation
                }
                guard tree.isFree(word, node: node) else { return .split }
                return node > 1 && tree.isFree(word, node: node >> 1) ? .free : .maximalFree
            }
        }
    }
}
