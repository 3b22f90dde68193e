// Where an allocation looks for room, and how frees advertise it: the one interface between the
// hot paths and the free-space index.
//
// 1. Locality first: each thread slot of each process remembers the block it last allocated in
//    (in process memory, not in the file), and tries it first: one load and one CAS, no shared
//    state touched but the block's word. Processes and threads fill different blocks, so they do
//    not fight over one word.
// 2. Otherwise best fit: search the index class by class, from the request's order up to whole
//    blocks, so small requests pack into partly used blocks and empty blocks stay whole for large
//    ones. Each process starts its searches at its own origin, again to keep processes apart.
//
// Claims through the cursor do not touch the index (a search re-files the blocks it claims in),
// and frees only add listings: a block may stay listed under a class it has left, and the next
// search that meets it there re-files it. Being listed too high costs a searcher one look;
// being listed too low could fail a request that fits, so that is what must never happen, and
// every free lists its block under the class it reached. The index is advisory either way; the CAS on the block's word is
// the only point where ownership changes.

import ShmFormat
import Synchronization

extension SharedCache {
    /// The number of per-process cursors; threads map onto them by their stack address.
    static let cursorSlots = 16
    /// A cursor holds `block | pid << cursorPIDShift`, so a child of `fork` ignores its parent's.
    static let cursorPIDShift = 40

    /// This thread's cursor slot: threads run on different stacks, so the stack address (in 1 MiB
    /// granules) tells them apart without a system call or thread-local storage.
    @inline(__always)
    private func cursorSlot() -> Int {
        var marker: UInt8 = 0
        let address = withUnsafeMutablePointer(to: &marker) { UInt(bitPattern: $0) }
        return Int(truncatingIfNeeded: (address &>> 20) &* 0x9E37_79B9) & (Self.cursorSlots - 1)
    }

    /// Finds a block with a free node of `order` and claims the node with one CAS.
    ///
    /// - Returns: the block and the claimed node, or `nil` when no block has room.
    @inline(__always)
    func claimNode(order: Int) -> (block: Int, node: Int)? {
        let slot = cursorSlot()
        let pid = UInt64(UInt32(bitPattern: ProcessIdentity.pid))
        let remembered = cursors[slot].load(ordering: .relaxed)
        if remembered &>> UInt64(Self.cursorPIDShift) == pid {
            let block = Int(truncatingIfNeeded: remembered & ((1 &<< UInt64(Self.cursorPIDShift)) &- 1))
            if let (node, _) = claim(order: order, inBlock: block) { return (block, node) }
        }
        return searchIndex(order: order, slot: slot, pid: pid)
    }

    /// The best-fit search through the index (the slow path of `claimNode`).
    @inline(never)
    private func searchIndex(order: Int, slot: Int, pid: UInt64) -> (block: Int, node: Int)? {
        // A per-process, per-slot origin spreads concurrent searchers over the cache.
        let span = UInt64(blockCount &- firstBlock)
        let origin = firstBlock &+ Int(truncatingIfNeeded: (pid &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(slot) &* 0x85EB_CA6B) % span)
        for blockClass in order..<index.classCount {
            while let block = index.first(class: blockClass, from: origin) {
                // Listed below its class (a free added the higher listing): it is met again under
                // that class, where it belongs, so skip it here and keep the best fit exact.
                let currentClass = tree.largestFreeOrder(words[block].load(ordering: .relaxed)) ?? -1
                guard currentClass <= blockClass, let (node, word) = claim(order: order, inBlock: block) else {
                    refile(block, listedUnder: blockClass)
                    continue
                }
                // Keep the lists exact for the blocks searches use: best fit depends on them, and
                // full blocks must not clutter a nearly full cache's lists.
                if tree.largestFreeOrder(word) != blockClass { refile(block, listedUnder: blockClass) }
                cursors[slot].store(UInt64(block) | pid &<< UInt64(Self.cursorPIDShift), ordering: .relaxed)
                return (block, node)
            }
        }
        return nil
    }

    /// Claims the best-fitting free node of `order` in `block`, retrying while other claims race
    /// on the same word and a free node remains.
    ///
    /// - Returns: the node and the block's word right after the claim, or `nil` when no node of
    ///   `order` is free.
    @inline(__always)
    func claim(order: Int, inBlock block: Int) -> (node: Int, word: UInt64)? {
        var word = words[block].load(ordering: .relaxed)
        while let node = tree.bestFitNode(word, order: order) {
            let claimed = word | setMasks[node]
            let (exchanged, current) = words[block].compareExchange(
                expected: word, desired: claimed, successOrdering: .acquiring, failureOrdering: .relaxed)
            if exchanged { return (node, claimed) }
            word = current
        }
        return nil
    }

    /// Advertises a free: `block`'s word became `after`. Lists the block under the class the free
    /// left it in. Listings only ever get added here, so racing frees cannot hide a block from
    /// one another; a listing the block has outgrown is removed by the next search that meets it.
    @inline(__always)
    func didFree(block: Int, after: UInt64) {
        // A free always leaves a free node, so the block has a class.
        index.insert(block, class: tree.largestFreeOrder(after) ?? 0)
    }

    /// Moves `block` from `listed`, a class it was found under, to the class its word has now;
    /// repeats until the word holds still across the update. Only the two classes involved are
    /// touched (two cache lines), which matters in a large cache where each is a miss.
    ///
    /// A free that races with this cannot be hidden by the removal: a free that changed the word
    /// before the last re-read is seen and its class inserted here; one after it inserts its class
    /// itself, after this removal.
    func refile(_ block: Int, listedUnder listed: Int) {
        var word = words[block].load(ordering: .sequentiallyConsistent)
        var removed = false
        while true {
            let current = tree.largestFreeOrder(word)
            if current == listed, !removed { return }
            if let current { index.insert(block, class: current) }
            if current != listed, !removed {
                index.remove(block, class: listed)
                removed = true
            }
            let now = words[block].load(ordering: .sequentiallyConsistent)
            if now == word { return }
            word = now
        }
    }
}
