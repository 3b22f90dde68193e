// Where an allocation looks for room: the one interface between the hot paths and the search.
//
// This version scans blocks from a shared hint, wrapping around once, as the original did:
// O(blocks) when the cache is nearly full. The hint is only advisory; the CAS on a block's word
// is the only point where ownership changes, so a stale hint costs time, never correctness.

import ShmFormat
import Synchronization

extension SharedCache {
    /// Finds a block with a free node of `order` and claims the node with one CAS.
    ///
    /// - Returns: the block and the claimed node, or `nil` when no block has room.
    @inline(__always)
    func claimNode(order: Int) -> (block: Int, node: Int)? {
        let hint = Int(truncatingIfNeeded: searchHint.pointee.load(ordering: .relaxed))
        var block = (firstBlock..<blockCount).contains(hint) ? hint : firstBlock
        for _ in firstBlock..<blockCount {
            if let node = claim(order: order, inBlock: block) {
                if block != hint { searchHint.pointee.store(UInt64(block), ordering: .relaxed) }
                return (block, node)
            }
            block &+= 1
            if block == blockCount { block = firstBlock }
        }
        return nil
    }

    /// Claims the best-fitting free node of `order` in `block`, retrying while other claims race
    /// on the same word and a free node remains.
    @inline(__always)
    func claim(order: Int, inBlock block: Int) -> Int? {
        var word = words[block].load(ordering: .relaxed)
        while let node = tree.bestFitNode(word, order: order) {
            let (exchanged, current) = words[block].compareExchange(
                expected: word, desired: word | tree.setMask(ofNode: node),
                successOrdering: .acquiring, failureOrdering: .relaxed)
            if exchanged { return node }
            word = current
        }
        return nil
    }

    /// Called after a node of `block` was freed. The scan needs no bookkeeping; a free-space index
    /// would record here that `block` has room again.
    @inline(__always)
    func didFree(block: Int) {}
}
