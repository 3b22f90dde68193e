// An independent, deliberately naive model of one block's buddy tree: an array of node states
// and explicit recursion over the tree. It shares nothing with `BuddyTree` but the numbering
// (heap order, node 1 = root), so a bug in the bit tricks cannot hide in both.

/// A buddy tree as an array of "set" flags, one per node, with the same numbering as `BuddyTree`.
struct BuddyModel: Equatable {
    let depth: Int
    /// `isSet[n]` for node n in 1...nodeCount; index 0 is unused.
    var isSet: [Bool]

    init(depth: Int) {
        self.depth = depth
        isSet = Array(repeating: false, count: 1 << (depth + 1))
    }

    /// Decodes any word, valid or not (stray bits outside the tree are ignored).
    init(depth: Int, word: UInt64) {
        self.init(depth: depth)
        for node in nodes { isSet[node] = word >> UInt64(node) & 1 == 1 }
    }

    var nodeCount: Int { (1 << (depth + 1)) - 1 }
    var nodes: ClosedRange<Int> { 1...nodeCount }
    var word: UInt64 { nodes.reduce(0) { isSet[$1] ? $0 | 1 << UInt64($1) : $0 } }

    func level(of node: Int) -> Int { node == 1 ? 0 : 1 + level(of: node / 2) }
    func order(of node: Int) -> Int { depth - level(of: node) }
    func hasChildren(_ node: Int) -> Bool { level(of: node) < depth }
    /// The node of `order` at `position`, counted from the left of its level.
    func node(order: Int, position: Int) -> Int { (1 << (depth - order)) + position }
    func positions(order: Int) -> Range<Int> { 0..<(1 << (depth - order)) }
    /// The first leaf under `node`, as a bit of a leaf-aligned mask.
    func firstLeaf(of node: Int) -> Int { (node - (1 << level(of: node))) << order(of: node) }

    /// `node` and every node below it.
    func subtree(_ node: Int) -> [Int] {
        hasChildren(node) ? [node] + subtree(2 * node) + subtree(2 * node + 1) : [node]
    }

    func setMask(_ node: Int) -> UInt64 { subtree(node).reduce(0) { $0 | 1 << UInt64($1) } }
    func isFree(_ node: Int) -> Bool { subtree(node).allSatisfy { !isSet[$0] } }
    func isAllocation(_ node: Int) -> Bool { isSet[node] && (node == 1 || !isSet[node / 2]) }

    func freeStarts(order: Int) -> UInt64 {
        leafMask(positions(order: order).map { node(order: order, position: $0) }.filter(isFree))
    }

    /// Free nodes whose parent is not free (the root counts when it is free).
    func maximalFreeNodes(order: Int) -> [Int] {
        positions(order: order).map { node(order: order, position: $0) }
            .filter { isFree($0) && ($0 == 1 || !isFree($0 / 2)) }
    }

    func firstFreeNode(order: Int) -> Int? {
        positions(order: order).map { node(order: order, position: $0) }.first(where: isFree)
    }

    /// The maximal free chunk that contains the free node `node`: climb while the parent is free.
    func enclosingChunk(_ node: Int) -> Int {
        node != 1 && isFree(node / 2) ? enclosingChunk(node / 2) : node
    }

    /// Best fit by its definition: among free nodes of `order`, those whose maximal free chunk is
    /// smallest; of those, the leftmost.
    func bestFitNode(order: Int) -> Int? {
        let free = positions(order: order).map { node(order: order, position: $0) }.filter(isFree)
        guard let smallest = free.map({ self.order(of: enclosingChunk($0)) }).min() else { return nil }
        return free.first { self.order(of: enclosingChunk($0)) == smallest }
    }

    func largestFreeOrder() -> Int? {
        (0...depth).reversed().first { firstFreeNode(order: $0) != nil }
    }

    var isValid: Bool {
        nodes.allSatisfy { !isSet[$0] || !hasChildren($0) || (isSet[2 * $0] && isSet[2 * $0 + 1]) }
    }

    var allocations: UInt64 { nodeMask(nodes.filter(isAllocation)) }
    var nodesUnderSetParent: UInt64 { nodeMask(nodes.filter { $0 > 1 && isSet[$0 / 2] }) }
    var takenLeafCount: Int { positions(order: 0).filter { isSet[node(order: 0, position: $0)] }.count }

    mutating func allocate(_ node: Int) { for member in subtree(node) { isSet[member] = true } }
    mutating func free(_ node: Int) { for member in subtree(node) { isSet[member] = false } }

    func nodeMask(_ nodes: [Int]) -> UInt64 { nodes.reduce(0) { $0 | 1 << UInt64($1) } }
    func leafMask(_ nodes: [Int]) -> UInt64 { nodes.reduce(0) { $0 | 1 << UInt64(firstLeaf(of: $1)) } }
}
