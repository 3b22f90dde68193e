// Where an allocation looks for room, and how frees advertise it: the one interface between the
// hot paths and the free-space index.
//
// 1. Locality first, in process memory (not in the file), per thread slot:
//    - Freed nodes: each slot keeps the last few nodes it freed, per order, and a request of that
//      order tries to claim one of them again with a single CAS (the CAS checks the node is still
//      free): no bit-tree search, no index work. Like glibc's per-thread cache, but advisory: a
//      freed node is in the index like any other free space, and a hint that another process
//      took is just a failed CAS.
//    - The cursor: the block the slot last allocated in that still had room; `bestFitNode`
//      there costs one load and one CAS.
//    Claims through either leave the block's listing alone (too high, at worst, which searches
//    tolerate). Processes and threads use different blocks, so they do not fight over one word.
// 2. Otherwise best fit: search the index class by class, from the request's order up to whole
//    blocks, so small requests pack into partly used blocks and empty blocks stay whole for large
//    ones. Each process starts its searches at its own origin, again to keep processes apart.
//
// Claims through the cursor do not touch the index (a search re-files the blocks it claims in),
// and frees only add listings: a block may stay listed under a class it has left, and the next
// search that meets it there re-files it. Being listed too high costs a searcher one look;
// being listed too low could fail a request that fits, so that is what must never happen: every
// free lists its block under the class it is about to reach *before* its CAS (so a process killed
// right after the CAS leaves its block listed) and again after it (a search may have re-filed the
// block in between). The index is advisory either way; the CAS on the block's word is the only
// point where ownership changes.
//
// (3. Repair: IndexRepair.swift. Freed-node hints: FreedNodeHints.swift.)

import CShmSystem
import Synchronization

#if !hasFeature(Embedded)  // the C library compiles the core's files as one module
    import ShmFormat
    import ShmSystem
#endif

extension SharedCache {
    /// The number of per-process cursors: the first this many threads of a process each have
    /// their own; later threads share them round-robin.
    static let cursorSlots = OwnerTable.intentSlots
    /// A cursor holds `block | pid << cursorPIDShift`, so a child of `fork` ignores its parent's.
    static let cursorPIDShift = 40
    /// The blocks from its origin a search looks at first (4 MiB of 1 KiB blocks).
    static let searchWindow = 4096
    /// Freed-node hints kept per slot and order. A thread whose frees and allocations of one order
    /// drift apart by more than this loses hints (the stack is full) and then searches the index
    /// (it is empty), where it meets the blocks it claimed through hints still listed (claims
    /// leave listings alone): at 8, a churn of 64 live random sizes searched on one allocation in
    /// 17, each search stepping over about six stale listings. Costs 1.6 KiB per slot in process
    /// memory (100 KiB per cache and process).
    static let hintDepth = 32
    /// A slot's words in `cursors`: the cursor, the hint counts (one per order) and the failed
    /// searches in the first cache line, the hints after it; whole lines, so threads never write
    /// a line another reads.
    static let cursorWord = 0, hintCountWords = 1, failedSearchesWord = 7, hintWords = 8
    static let slotStride = (hintWords + (Geometry.largestDepth + 1) * hintDepth + 7) & ~7
    /// The least time between two repair passes of one cache, by any processes.
    static let repairInterval: UInt64 = 1_000_000_000

    /// This thread's cursor slot: handed out once per thread (initial-exec TLS, see
    /// `shm_system.h`), so threads of one process never crowd into one slot while slots remain.
    @inline(__always)
    func cursorSlot() -> Int { Int(shm_thread_slot()) & (Self.cursorSlots &- 1) }

    /// Finds a block with a free node of `order` and claims the node with one CAS.
    ///
    /// - Returns: the block, the claimed node, and the calling thread's intent slot, which names
    ///   the node until the caller has written its header and clears it; `nil` when no block has
    ///   room.
    @inline(__always)
    func claimNode(order: Int) -> (block: Int, node: Int, intent: UnsafeMutablePointer<Atomic<UInt64>>)? {
        let slot = cursorSlot()
        let intent = owners.intent(slot: slot)
        if let (block, node) = claimFreedNode(order: order, slot: slot, intent: intent) { return (block, node, intent) }
        guard let (block, node) = claimUnhinted(order: order, slot: slot, intent: intent) else { return nil }
        return (block, node, intent)
    }

    /// The claims of `claimNode` after the freed-node hints: the cursor, the index, the repair
    /// pass. Out of line: about one allocation in 60 of a churn gets here, and the hint path keeps
    /// its registers.
    ///
    /// - Returns: the block and the claimed node; `nil`, with the intent cleared, when no block has room.
    @inline(never)
    private func claimUnhinted(
        order: Int, slot: Int, intent: UnsafeMutablePointer<Atomic<UInt64>>
    ) -> (block: Int, node: Int)? {
        let pid = UInt64(UInt32(bitPattern: ProcessIdentity.pid))
        if let block = remembered(cursor(slot), pid: pid),
            let (node, _) = claim(order: order, inBlock: block, intent: intent)
        {
            return (block, node)
        }
        if let found = searchIndex(order: order, slot: slot, pid: pid, intent: intent) { return found }
        guard isRepairCheckDue(slot), repairIndexIfDue(),
            let found = searchIndex(order: order, slot: slot, pid: pid, intent: intent)
        else {
            // Tried nodes were named in the intent; none was claimed.
            intent.pointee.store(0, ordering: .relaxed)
            return nil
        }
        return found
    }

    /// The best-fit search through the index (the slow path of `claimNode`): best fit among the
    /// `searchWindow` blocks from this slot's origin first; when they have no room at all, best
    /// fit among the nearest blocks past them, class by class.
    ///
    /// The window keeps threads and processes in blocks of their own while the cache has room:
    /// a search over the whole cache finds, for a size of which this slot has no partly used
    /// block, the nearest one of another thread, and the two then fight over its word and its
    /// cache lines. Best fit within the window still packs small requests into partly used
    /// blocks, and every class is searched over the whole cache before an allocation fails. The
    /// first block past the window in the smallest class that has one is remembered, so the
    /// fallback usually costs no second walk down the index.
    @inline(never)
    private func searchIndex(
        order: Int, slot: Int, pid: UInt64, intent: UnsafeMutablePointer<Atomic<UInt64>>
    ) -> (block: Int, node: Int)? {
        // A per-process, per-slot origin spreads concurrent searchers over the cache: a Fibonacci
        // hash of pid and slot, whose high bits (all the scaling below keeps) differ for
        // neighbouring slots; scaled to the span by a multiply, as a 64-bit `%` costs tens of
        // cycles on every search.
        let span = blockCount &- firstBlock
        let hash = (pid &<< 16 | UInt64(slot)) &* 0x9E37_79B9_7F4A_7C15
        let origin = firstBlock &+ Int(truncatingIfNeeded: hash.multipliedFullWidth(by: UInt64(span)).high)
        let window = min(span, Self.searchWindow)
        // The smallest class with a block listed past the window, and that block. (Scalars, not
        // a table per class: an `InlineArray` would need type metadata made at run time in a
        // debug build, under a lock, and a signal handler that allocates could wait on it.)
        var fallbackClass = -1
        var fallbackBlock = -1
        for blockClass in order..<index.classCount {
            while let block = index.first(class: blockClass, from: origin) {
                let distance = block >= origin ? block &- origin : block &- firstBlock &+ span &- (origin &- firstBlock)
                guard distance < window else {
                    if fallbackClass < 0 { (fallbackClass, fallbackBlock) = (blockClass, block) }
                    break
                }
                if let node = claim(
                    order: order, inListed: block, class: blockClass, slot: slot, pid: pid, intent: intent)
                {
                    return (block, node)
                }
            }
        }
        guard fallbackClass >= 0 else { return nil }
        var candidate: Int? = fallbackBlock
        for blockClass in fallbackClass..<index.classCount {
            while let block = candidate ?? index.first(class: blockClass, from: origin) {
                candidate = nil
                if let node = claim(
                    order: order, inListed: block, class: blockClass, slot: slot, pid: pid, intent: intent)
                {
                    return (block, node)
                }
            }
        }
        return nil
    }

    /// Claims a node of `order` in `block`, which a search found listed under `listed`, and keeps
    /// the lists exact for the blocks searches use: best fit depends on them, and full blocks must
    /// not clutter a nearly full cache's lists.
    ///
    /// - Returns: the node, or `nil` when the block had no room for it (it is re-filed).
    @inline(__always)
    private func claim(
        order: Int, inListed block: Int, class listed: Int, slot: Int, pid: UInt64,
        intent: UnsafeMutablePointer<Atomic<UInt64>>
    ) -> Int? {
        // Listed below its class (a free added the higher listing): it is met again under that
        // class, where it belongs, so skip it here and keep the best fit exact.
        let currentClass = tree.largestFreeOrder(words[block].load(ordering: .relaxed)) ?? -1
        guard currentClass <= listed, let (node, word) = claim(order: order, inBlock: block, intent: intent) else {
            refile(block, listedUnder: listed)
            return nil
        }
        if tree.largestFreeOrder(word) != listed { refile(block, listedUnder: listed) }
        if hasRoom(word) { remember(block, in: cursor(slot), pid: pid) }
        return node
    }

    /// Slot `slot`'s cursor: the block it last allocated in that had room left.
    @inline(__always)
    func cursor(_ slot: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
        cursors + (slot &* Self.slotStride &+ Self.cursorWord)
    }

    /// The block `memo` holds, when this process (not its parent before a `fork`) stored it.
    /// Relaxed: the memo is only a hint; the CAS on the block's word decides.
    @inline(__always)
    func remembered(_ memo: UnsafeMutablePointer<Atomic<UInt64>>, pid: UInt64) -> Int? {
        let value = memo.pointee.load(ordering: .relaxed)
        guard value &>> UInt64(Self.cursorPIDShift) == pid else { return nil }
        return Int(truncatingIfNeeded: value & ((1 &<< UInt64(Self.cursorPIDShift)) &- 1))
    }

    /// Stores `block` in `memo` for this process.
    @inline(__always)
    func remember(_ block: Int, in memo: UnsafeMutablePointer<Atomic<UInt64>>, pid: UInt64) {
        memo.pointee.store(UInt64(block) | pid &<< UInt64(Self.cursorPIDShift), ordering: .relaxed)
    }

    /// Counts a failed search of slot `slot`; true for its first and then every 64th, the ones
    /// that look at the repair deadline (a clock read would double the cost of every failing
    /// allocation in a full cache).
    @inline(__always)
    private func isRepairCheckDue(_ slot: Int) -> Bool {
        let failures = cursors + (slot &* Self.slotStride &+ Self.failedSearchesWord)
        let count = failures.pointee.load(ordering: .relaxed)
        failures.pointee.store(count &+ 1, ordering: .relaxed)
        return count & 63 == 0
    }

    /// True when a block whose word is `word` has a free leaf left.
    @inline(__always)
    func hasRoom(_ word: UInt64) -> Bool { tree.leaves(word) != tree.allLeaves }

    /// Claims the best-fitting free node of `order` in `block`, retrying while other claims race
    /// on the same word and a free node remains. Writes each node it tries into `intent` first.
    ///
    /// - Returns: the node and the block's word right after the claim, or `nil` when no node of
    ///   `order` is free.
    @inline(__always)
    func claim(order: Int, inBlock block: Int, intent: UnsafeMutablePointer<Atomic<UInt64>>) -> (
        node: Int, word: UInt64
    )? {
        var word = words[block].load(ordering: .relaxed)
        while let node = tree.bestFitNode(word, order: order) {
            if let claimed = claim(node, inBlock: block, word: &word, intent: intent) { return (node, claimed) }
        }
        return nil
    }

    /// One claim attempt: names `node` of `block` in `intent`, then sets it in the block's word
    /// with one CAS from `word`, the word as last read.
    ///
    /// - Returns: the word after the claim; `nil` when the CAS failed, with `word` updated to
    ///   what the block holds now.
    @inline(__always)
    func claim(
        _ node: Int, inBlock block: Int, word: inout UInt64, intent: UnsafeMutablePointer<Atomic<UInt64>>
    ) -> UInt64? {
        // Relaxed: the intent matters to a reader only once this process has died, when every
        // store it made is in the file.
        intent.pointee.store(OwnerTable.intent(block: block, node: node), ordering: .relaxed)
        crashPoint(.claimIntentWritten, at: words + block)
        // Acquiring: the new owner sees what the previous one wrote before its free.
        let claimed = word | setMasks[node]
        let (exchanged, current) = words[block].compareExchange(
            expected: word, desired: claimed, successOrdering: .acquiring, failureOrdering: .relaxed)
        word = current
        guard exchanged else { return nil }
        // Invariants of a claim: the node was free in the word it took, and the word stays a buddy
        // tree (a bad node number would set bits of other nodes or none).
        assert(tree.isFree(current, node: node), "claimed node \(node) of block \(block) was not free")
        assert(tree.isAllocation(claimed, node: node) && tree.isValid(claimed), "claim left block \(block) invalid")
        return claimed
    }

    // MARK: Advertising frees

    /// Advertises a free: `block`'s word becomes `after`. Lists the block under the class the free
    /// leaves it in. Called before the free's CAS; after it, the free inserts again under the
    /// class this returns (one load when the listing is still there, which it is unless a search
    /// re-filed the block in between). Listings
    /// only ever get added here, so racing frees cannot hide a block from one another; a listing
    /// the block has outgrown (or never reached, when the CAS is retried) is removed by the next
    /// search that meets it.
    ///
    /// Ordering: after the CAS, the index is read with sequentially consistent loads and the CAS
    /// itself is sequentially consistent, pairing with `refile`'s remove-then-re-read: either this
    /// free sees the removal and lists the block again, or `refile` sees the freed word.
    ///
    /// - Returns: the class it listed the block under.
    @inline(__always)
    func advertiseFree(block: Int, after: UInt64) -> Int {
        // A free always leaves a free node, so the block has a class.
        let blockClass = tree.largestFreeOrder(after) ?? 0
        list(block, class: blockClass)
        return blockClass
    }

    /// Lists `block` under `blockClass` unless it is listed there already: the check inline (one
    /// load, all that most frees need), the insert out of line, so that its loop over the levels
    /// does not take the free's registers.
    @inline(__always)
    func list(_ block: Int, class blockClass: Int) {
        if !index.lists(block, class: blockClass) { insertListing(block, class: blockClass) }
    }

    /// The out-of-line insert of `list`. A method of the cache, not of the index: a call to the
    /// index's own would copy the index out of the cache first.
    @inline(never)
    private func insertListing(_ block: Int, class blockClass: Int) { index.insert(block, class: blockClass) }

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
            #if SHM_EXPENSIVE_CHECKS
                // Every word a search reads is a buddy tree: a word is only ever changed by one CAS
                // from a valid word to a valid word. (Expensive by frequency: every refile's re-read.)
                precondition(tree.isValid(word), "block \(block) holds an invalid word \(word)")
            #endif
            let current = tree.largestFreeOrder(word)
            if current == listed, !removed { return }
            if let current { index.insert(block, class: current) }
            if current != listed, !removed {
                index.remove(block, class: listed)
                removed = true
                crashPoint(.refileRemoved, at: words + block)
            }
            let now = words[block].load(ordering: .sequentiallyConsistent)
            if now == word { return }
            word = now
        }
    }
}
