// The repair pass of the free-space index.
//
// 3. Repair. A process killed between two writes to the index can still leave free space listed
//    nowhere it can be found (inside a remove, inside a re-file that raced a free). Such space is
//    lost only until a search fails: a failing search runs the repair pass, which lists every
//    block under the class its word has now and mends the summary bits above, and retries once.
//    The pass only adds listings, so it is safe beside any number of allocating processes. It
//    costs about a millisecond per 512 MiB, so one process at a time runs it, at most once per
//    `repairInterval`, claimed through the header's `nextRepair` deadline. A thread's first failing
//    search and every 64th after it read the clock to look at that deadline; the others pay
//    nothing more.

import CShmSystem
import Synchronization

#if !hasFeature(Embedded)  // the C library compiles the core's files as one module
    import ShmFormat
    import ShmSystem
#endif

extension SharedCache {
    /// Runs ``repairIndex()`` unless some process ran it less than `repairInterval` ago.
    ///
    /// - Returns: true when this call ran the pass (the caller's search may now succeed).
    func repairIndexIfDue() -> Bool {
        let now = SystemClock.coarseMonotonicNanoseconds()
        let due = nextRepair.pointee.load(ordering: .relaxed)
        // A deadline more than one interval ahead was set before a reboot (the clock restarted).
        guard now >= due || due &- now > Self.repairInterval else { return false }
        // Relaxed: the deadline only elects one repairer; the pass reads the words atomically.
        guard
            nextRepair.pointee.compareExchange(expected: due, desired: now &+ Self.repairInterval, ordering: .relaxed)
                .exchanged
        else { return false }
        repairIndex()
        return true
    }

    /// Lists every block under the class its word has now and mends the summary bits above every
    /// listing; counts the pass and the listings it added in the header.
    ///
    /// Only adds listings, so it is safe while other processes allocate and free: a block whose
    /// class changes after its word was read ends up listed too high (a claim), which searches
    /// tolerate, or is listed by its own free (a free). Reads every buddy word once and about one
    /// index word per 64 blocks and class: about a millisecond per 512 MiB of cache.
    ///
    /// - Returns: the listings added (blocks that were missing from their class).
    @discardableResult
    public func repairIndex() -> Int {
        var added = 0
        let lastGroup = (blockCount &- 1) &>> 6
        for group in (firstBlock &>> 6)...lastGroup {
            // On the stack, by a pointer: an `InlineArray` would need type metadata made at run
            // time in a debug build, under a lock (the pass may run in a signal handler).
            withUnsafeTemporaryAllocation(of: UInt64.self, capacity: Geometry.largestDepth &+ 1) { classMasks in
                classMasks.initialize(repeating: 0)
                for block in max(group &<< 6, firstBlock)..<min((group &+ 1) &<< 6, blockCount) {
                    if let blockClass = tree.largestFreeOrder(words[block].load(ordering: .relaxed)) {
                        classMasks[blockClass] |= 1 &<< UInt64(block & 63)
                    }
                }
                for blockClass in 0..<index.classCount where classMasks[blockClass] != 0 {
                    added &+= index.insert(blocks: classMasks[blockClass], group: group, class: blockClass)
                }
            }
            if group == lastGroup &>> 1 { crashPoint(.repairMidway, at: words + group &<< 6) }
        }
        repairPassCount.pointee.add(1, ordering: .relaxed)
        repairedListingCount.pointee.add(UInt64(added), ordering: .relaxed)
        return added
    }
}
