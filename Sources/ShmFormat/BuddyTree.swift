// The buddy tree of one block, held in one 64-bit word, and the pure math on it.
//
// Numbering: nodes are numbered as in a binary heap. The root (the whole block) is node 1,
// the children of node i are 2i and 2i+1, and node i is bit i of the word (bit 0 is never
// used). Level L holds nodes 2^L ..< 2^(L+1); the leaves are level `depth`, each `minSize`.
// An allocation's *order* is its size class: order 0 is a leaf, order `depth` the root.
//
// Invariants of a valid word:
// - Allocating a node sets the node and all of its descendants (its "set mask"); ancestors
//   are left alone. So a set node's two children are set (`isValid`).
// - A node is an allocation exactly when it is set and its parent is clear (`isAllocation`).
// - A node is free exactly when its set mask is clear; equivalently when every leaf under it
//   is clear, because any allocation overlapping the node sets every leaf it covers.
//
// "Leaf-aligned masks" below are bitmaps over the leaves (bit j = leaf j): a node of order o
// at position p is represented by the bit of its first leaf, p · 2^o.

/// The shape of one block's buddy tree and the operations on its 64-bit word.
///
/// Every function is pure and branch-light: they run inside `shm_malloc` and `shm_free`.
public struct BuddyTree: Hashable, Sendable {
    /// The number of levels below the root: log2(maxSize / minSize), 0...5.
    public let depth: Int

    /// A tree of the given depth (0...5).
    @inlinable
    public init(depth: Int) {
        precondition((0...Geometry.largestDepth).contains(depth), "buddy tree depth \(depth) out of 0...5")
        self.depth = depth
    }

    // MARK: - Shape

    /// The number of nodes: 2^(depth+1) − 1 (63 for the default geometry).
    @inlinable public var nodeCount: Int { (2 &<< depth) &- 1 }
    /// The number of leaves: 2^depth.
    @inlinable @inline(__always) public var leafCount: Int { 1 &<< depth }
    /// The bits a word may use: 1 ... nodeCount.
    /// (Shifting ones down, not 1 up: at depth 5 the tree has 63 nodes and `1 &<< 64` would wrap to 1.)
    @inlinable public var usedBits: UInt64 { (~UInt64(0) &>> UInt64(63 &- nodeCount)) & ~1 }
    /// All leaves of a leaf-aligned mask.
    @inlinable @inline(__always) public var allLeaves: UInt64 { (UInt64(1) &<< UInt64(leafCount)) &- 1 }
    /// The word of a block whose every node is taken (the null region's blocks).
    @inlinable public var fullWord: UInt64 { usedBits }

    /// The level (0 = root) of node `node`.
    @inlinable @inline(__always) public func level(ofNode node: Int) -> Int {
        Int.bitWidth &- 1 &- node.leadingZeroBitCount
    }
    /// The order (0 = leaf) of node `node`.
    @inlinable @inline(__always) public func order(ofNode node: Int) -> Int { depth &- level(ofNode: node) }
    /// The position of node `node` within its level, counted from the left.
    @inlinable @inline(__always) public func position(ofNode node: Int) -> Int { node &- (1 &<< level(ofNode: node)) }
    /// The node of `order` at `position` within its level.
    @inlinable @inline(__always) public func node(order: Int, position: Int) -> Int {
        (1 &<< (depth &- order)) &+ position
    }
    /// The node of `order` whose first leaf is `leaf` (which must be a multiple of 2^order).
    @inlinable @inline(__always) public func node(order: Int, firstLeaf leaf: Int) -> Int {
        node(order: order, position: leaf &>> order)
    }
    /// The byte offset of node `node` from the start of its block.
    @inlinable @inline(__always) public func byteOffset(ofNode node: Int, minSize: Int) -> Int {
        (position(ofNode: node) &<< order(ofNode: node)) &* minSize
    }

    // MARK: - Masks

    /// The bits of one level, shifted down: bit p is the node at position p of that level.
    @inlinable @inline(__always)
    public func levelBits(_ word: UInt64, level: Int) -> UInt64 {
        let width = UInt64(1) &<< UInt64(level)
        return (word &>> width) & ((UInt64(1) &<< width) &- 1)
    }

    /// The leaves of a word as a leaf-aligned mask: bit j set when leaf j is taken.
    @inlinable @inline(__always) public func leaves(_ word: UInt64) -> UInt64 { levelBits(word, level: depth) }

    /// The node and all its descendants: what allocating `node` sets and freeing it clears.
    @inlinable @inline(__always)
    public func setMask(ofNode node: Int) -> UInt64 {
        var mask: UInt64 = 0
        var first = UInt64(node)
        var run: UInt64 = 1
        for _ in level(ofNode: node)...depth {
            mask |= ((UInt64(1) &<< run) &- 1) &<< first
            first &<<= 1
            run &<<= 1
        }
        return mask
    }

    /// The leaf-aligned bits where a node of `order` may start: every 2^order-th leaf.
    @inlinable @inline(__always)
    public func startMask(order: Int) -> UInt64 {
        // Every leaf, then every second, fourth … 2^order-th: each step ANDs in one of the usual
        // bit-interleaving masks, kept (all ones) while the step is beyond `order`. Arithmetic,
        // not a switch (random orders mispredict its jump table) nor a table (an `InlineArray`
        // needs its type metadata made at run time in a debug build, under a lock: not
        // async-signal-safe).
        let order = UInt64(truncatingIfNeeded: order)
        func step(_ k: UInt64, _ mask: UInt64) -> UInt64 { mask | (0 &- ((order &- k) &>> 63)) }
        let pattern: UInt64 =
            0xFFFF_FFFF & step(1, 0x5555_5555) & step(2, 0x3333_3333) & step(3, 0x0F0F_0F0F)
            & step(4, 0x00FF_00FF) & step(5, 0x0000_FFFF)
        return pattern & allLeaves
    }

    /// The internal nodes: every level but the leaves (nodes 1 ..< leafCount).
    @inlinable public var internalBits: UInt64 { (UInt64(1) &<< UInt64(leafCount)) &- 2 }

    /// The nodes whose parent is set. Always inlined: a caller's loop over many words (the
    /// inspector's owner ledger) then makes the masks once, not a call and the masks per word.
    @inlinable @inline(__always)
    public func nodesUnderSetParent(_ word: UInt64) -> UInt64 {
        Self.childrenOfSetNodes(word & internalBits)
    }

    // MARK: - Predicates

    /// True when the word obeys the invariant: no stray bits, and every set node's children are set.
    @inlinable
    public func isValid(_ word: UInt64) -> Bool {
        word & ~usedBits == 0 && nodesUnderSetParent(word) & ~word == 0
    }

    /// True when `node` and all its descendants are clear, so it can be allocated.
    @inlinable @inline(__always) public func isFree(_ word: UInt64, node: Int) -> Bool {
        word & setMask(ofNode: node) == 0
    }

    /// True when `node` is set and its parent is clear: the exact test for "an allocation starts here".
    @inlinable @inline(__always)
    public func isAllocation(_ word: UInt64, node: Int) -> Bool {
        let parentBit = UInt64(1) &<< UInt64(node &>> 1)  // node 1's "parent" is the unused bit 0
        return word & (UInt64(1) &<< UInt64(node)) != 0 && word & parentBit == 0
    }

    /// The allocations of a word as a node mask: set nodes whose parent is clear. Always inlined,
    /// as ``nodesUnderSetParent(_:)``.
    @inlinable @inline(__always)
    public func allocations(_ word: UInt64) -> UInt64 { word & usedBits & ~nodesUnderSetParent(word) }

    // MARK: - Free space

    /// `leaves` folded so that bit j is set when any leaf in j ..< j + 2^order is taken.
    @inlinable @inline(__always)
    func takenRuns(_ word: UInt64, order: Int) -> UInt64 {
        var taken = leaves(word)
        var shift: UInt64 = 1
        for _ in 0..<order {
            taken |= taken &>> shift
            shift &<<= 1
        }
        return taken
    }

    /// The free nodes of `order` as a leaf-aligned mask.
    @inlinable
    public func freeStarts(_ word: UInt64, order: Int) -> UInt64 {
        ~takenRuns(word, order: order) & startMask(order: order)
    }

    /// The *maximal* free nodes of `order` (free, with a parent that is not free) as a leaf-aligned
    /// mask: the chunks `/proc/buddyinfo` would count.
    @inlinable
    public func maximalFreeStarts(_ word: UInt64, order: Int) -> UInt64 {
        let free = freeStarts(word, order: order)
        guard order < depth else { return free }
        let parentFree = freeStarts(word, order: order &+ 1)
        return free & ~(parentFree | parentFree &<< UInt64(1 &<< order))
    }

    /// The first free node of `order`, in tree order, or `nil` when there is none.
    @inlinable
    public func firstFreeNode(_ word: UInt64, order: Int) -> Int? {
        let free = freeStarts(word, order: order)
        return free == 0 ? nil : node(order: order, firstLeaf: free.trailingZeroBitCount)
    }

    /// The free node of `order` to allocate by best fit: the first one inside the smallest maximal
    /// free chunk that can hold it, so larger free chunks stay whole. `nil` when none is free.
    @inlinable @inline(__always)
    public func bestFitNode(_ word: UInt64, order: Int) -> Int? {
        // An empty block is the common case of a fresh or drained cache: its first node fits best.
        if word == 0 { return node(order: order, position: 0) }
        var taken = takenRuns(word, order: order)
        var free = ~taken & startMask(order: order)
        guard free != 0 else { return nil }
        var chunkOrder = order
        while chunkOrder < depth {
            taken |= taken &>> UInt64(1 &<< chunkOrder)
            let parentFree = ~taken & startMask(order: chunkOrder &+ 1)
            let maximal = free & ~(parentFree | parentFree &<< UInt64(1 &<< chunkOrder))
            if maximal != 0 { return node(order: order, firstLeaf: maximal.trailingZeroBitCount) }
            free = parentFree
            chunkOrder &+= 1
        }
        return node(order: order, firstLeaf: free.trailingZeroBitCount)
    }

    /// The order of the largest free node, or `nil` when the block is full.
    @inlinable @inline(__always)
    public func largestFreeOrder(_ word: UInt64) -> Int? {
        // The orders that have a free node form a prefix 0 ... L (a free node holds free nodes of
        // every lower order), so L + 1 is how many orders have one: counted without a branch on
        // the word, as frees meet words of every shape and a data-dependent exit mispredicts.
        // The bits past the last leaf count as taken: a fold that reaches past the leaves (an
        // order above `depth`) then finds no free start, so every depth takes the same five
        // steps with constant start patterns (`startMask` of a 32-leaf tree), and the depth is
        // not needed to count.
        assert(depth <= 5, "a word holds at most 63 nodes")
        let leaves = leaves(word)
        // An empty block, what a free leaves most often when one thread frees what it allocated.
        if leaves == 0 { return depth }
        var taken = leaves | ~allLeaves
        var ordersWithRoom = Self.isNonZero(~taken)
        taken |= taken &>> 1
        ordersWithRoom &+= Self.isNonZero(~taken & 0x5555_5555)
        taken |= taken &>> 2
        ordersWithRoom &+= Self.isNonZero(~taken & 0x1111_1111)
        taken |= taken &>> 4
        ordersWithRoom &+= Self.isNonZero(~taken & 0x0101_0101)
        taken |= taken &>> 8
        ordersWithRoom &+= Self.isNonZero(~taken & 0x0001_0001)
        taken |= taken &>> 16
        ordersWithRoom &+= Self.isNonZero(~taken & 0x0000_0001)
        return ordersWithRoom == 0 ? nil : ordersWithRoom &- 1
    }

    /// 1 when `bits` is non-zero, else 0, by arithmetic: the compiler turns `bits != 0 ? 1 : 0`
    /// into a branch here, which random words mispredict.
    @inlinable @inline(__always)
    static func isNonZero(_ bits: UInt64) -> Int { Int(truncatingIfNeeded: (bits | (0 &- bits)) &>> 63) }

    /// The number of leaves taken by allocations (each allocation takes all leaves under it).
    @inlinable public func takenLeafCount(_ word: UInt64) -> Int { leaves(word).nonzeroBitCount }
}
