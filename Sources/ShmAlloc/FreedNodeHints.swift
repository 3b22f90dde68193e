// Freed-node hints: per thread slot and order, the last nodes the slot freed, which the next request
// of that order tries to claim again with one CAS (see BlockSearch.swift, point 1).

import CShmSystem
import Synchronization

#if !hasFeature(Embedded)  // the C library compiles the core's files as one module
    import ShmFormat
    import ShmSystem
#endif

extension SharedCache {
    // MARK: Freed-node hints
    //
    // Per slot and order, a stack of up to `hintDepth` nodes (`block << 8 | node`) with its count
    // in the slot's first line. Every word is an atomic of process memory and every index is
    // clamped, so a signal handler that allocates or frees in the middle of a push or pop on the
    // same slot (or threads beyond `cursorSlots` sharing one) can only leave a stale hint, which
    // the claim's CAS refuses: never a wrong claim, never an access out of bounds.

    /// The number of hints slot `slot` holds for `order`.
    @inline(__always)
    private func hintCount(_ slot: Int, order: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
        cursors + (slot &* Self.slotStride &+ Self.hintCountWords &+ order)
    }

    /// Hint `index` of slot `slot` for `order`.
    @inline(__always)
    private func hint(_ slot: Int, order: Int, index: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
        cursors + (slot &* Self.slotStride &+ Self.hintWords &+ order &* Self.hintDepth &+ index)
    }

    /// Remembers that slot `slot` freed `node` (of `order`) in `block`; past `hintDepth`, the
    /// newest replaces the top.
    @inline(__always)
    func rememberFreedNode(block: Int, node: Int, order: Int, slot: Int) {
        let count = Int(
            truncatingIfNeeded: min(
                hintCount(slot, order: order).pointee.load(ordering: .relaxed), UInt64(Self.hintDepth)))
        hint(slot, order: order, index: min(count, Self.hintDepth &- 1)).pointee
            .store(UInt64(truncatingIfNeeded: block) &<< 8 | UInt64(truncatingIfNeeded: node), ordering: .relaxed)
        hintCount(slot, order: order).pointee.store(UInt64(min(count &+ 1, Self.hintDepth)), ordering: .relaxed)
    }

    /// Claims a node of `order` that this slot freed recently, if one is still free: the newest
    /// first, dropping hints whose node another claim took.
    @inline(__always)
    func claimFreedNode(
        order: Int, slot: Int, intent: UnsafeMutablePointer<Atomic<UInt64>>
    ) -> (block: Int, node: Int)? {
        let counter = hintCount(slot, order: order)
        var count = Int(truncatingIfNeeded: min(counter.pointee.load(ordering: .relaxed), UInt64(Self.hintDepth)))
        while count > 0 {
            count &-= 1
            counter.pointee.store(UInt64(count), ordering: .relaxed)
            let hinted = hint(slot, order: order, index: count).pointee.load(ordering: .relaxed)
            let block = Int(truncatingIfNeeded: hinted &>> 8)
            let node = Int(truncatingIfNeeded: hinted & 0xFF)
            guard block >= firstBlock, block < blockCount, node >= 1, node <= tree.nodeCount else { continue }
            var word = words[block].load(ordering: .relaxed)
            // `setMasks`, not `tree.isFree`: the table is one load, the tree computes the mask.
            while word & setMasks[node] == 0 {
                if claim(node, inBlock: block, word: &word, intent: intent) != nil { return (block, node) }
            }
        }
        return nil
    }
}
