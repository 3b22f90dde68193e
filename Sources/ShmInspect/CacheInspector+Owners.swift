// Reading allocation headers: all of them for a one-shot census, or into an owner ledger, all
// once and then those of the blocks that changed.

import ShmFormat

extension CacheInspector {
    /// The owner ledger of `snapshot`: reads the header of every allocation in its words.
    public func ownerLedger(of snapshot: CacheSnapshot) throws(InspectError) -> OwnerLedger {
        var ledger = OwnerLedger(geometry: geometry)
        let words = snapshot.words
        let blocks = Array(Self.allocatedBlocks(words, from: layout.nullBlockCount))
        try read(blocks, words: words, into: &ledger, counting: false) { ledger, plans in
            for (position, block) in blocks.enumerated() {
                plans[position] = ledger.plan(heldNodes: 0, word: words[block])
            }
        }
        return ledger
    }

    /// Brings `ledger` (of an earlier snapshot of this cache, last brought up to the snapshot
    /// `changes` starts from) up to `snapshot`: the headers of the blocks in `changes` are read
    /// again, and so are those of blocks whose headers were in flight at the last reading.
    /// Returns what the owners allocated and freed meanwhile, as the words show it, and the
    /// blocks whose contribution was read again (ascending). On a throw `ledger` is unchanged.
    public func update(
        _ ledger: inout OwnerLedger, to snapshot: CacheSnapshot, changes: SnapshotChanges
    ) throws(InspectError) -> (activity: OwnerActivity, blocks: [Int]) {
        let unsettled = ledger.unsettledBlocks.sorted()
        let blocks = Self.merging(changes.blocks, unsettled)
        let (words, earlierWords, tree) = (snapshot.words, changes.earlierWords, geometry.tree)
        try read(blocks, words: words, into: &ledger, counting: true) { ledger, plans in
            // A block with nodes in flight is planned from the ledger's records; any other (a
            // changed one) from its earlier word, whose allocations are the nodes the ledger holds
            // for it: its records are not touched before they are changed.
            var (changed, pending) = (0, 0)
            for (position, block) in blocks.enumerated() {
                let isChanged = changed < changes.blocks.count && changes.blocks[changed] == block
                defer { if isChanged { changed += 1 } }
                if pending < unsettled.count, unsettled[pending] == block {
                    pending += 1
                    plans[position] = ledger.plan(block: block, word: words[block])
                } else {
                    // Not in flight, so in the changes: a merged block comes from one or the other.
                    let held = tree.allocations(earlierWords[changed])
                    plans[position] = ledger.plan(heldNodes: held, word: words[block])
                }
            }
        }
        return (ledger.takeActivity(), blocks)
    }

    /// The blocks of `first` and `second` (both ascending), ascending, each once: a merge, where a
    /// set of the tens of thousands of changed blocks of a busy refresh cost a hash each.
    static func merging(_ first: [Int], _ second: [Int]) -> [Int] {
        guard !second.isEmpty else { return first }
        var merged: [Int] = []
        merged.reserveCapacity(first.count + second.count)
        var i = 0
        var j = 0
        while i < first.count || j < second.count {
            let next = j == second.count || (i < first.count && first[i] <= second[j]) ? first[i] : second[j]
            merged.append(next)
            while i < first.count, first[i] == next { i += 1 }
            while j < second.count, second[j] == next { j += 1 }
        }
        return merged
    }

    /// The census `ledger` makes now: each owner's process state (checked against the start time
    /// the owner table holds), the command of each live owner, and each owner's `rates`. States
    /// and commands come from `states`, which reads the owner table and `/proc` again only as
    /// often as its period says (and at once for an owner it has not seen).
    public func census(
        of ledger: OwnerLedger, rates: OwnerRates? = nil, states: inout OwnerStates
    ) throws(InspectError) -> AllocationCensus {
        let now = ContinuousClock.now
        let pids = ledger.ownerPIDs
        if states.needsOwnerTable(for: pids, at: now) { states.replaceRegistry(try readOwners(), pids: pids, at: now) }
        states.check(pids, at: now)
        return ledger.census(state: states.state(of:), command: states.command(of:), rates: rates)
    }

    /// The census `ledger` makes now, every owner's state and command read afresh.
    public func census(of ledger: OwnerLedger, rates: OwnerRates? = nil) throws(InspectError) -> AllocationCensus {
        var states = OwnerStates()
        return try census(of: ledger, rates: rates, states: &states)
    }

    /// The census of every allocation header in `words`, with each owner's state and command:
    /// the headers are summed as they are read, runs of blocks with one `pread` each (the kernel
    /// copies through its own large pages, where a scan of the mapping would miss the TLB on
    /// every page), and nothing is kept per block.
    func scanAllocations(_ words: [UInt64]) throws(InspectError) -> AllocationCensus {
        let owners = try readOwners()
        var builder = AllocationCensus.Builder(geometry: geometry)
        let tree = geometry.tree
        try forEachNode(
            of: Self.allocatedBlocks(words, from: layout.nullBlockCount), words: words,
            nodes: { block, _ in tree.allocations(words[block]) }, claimer: owners.claimer,
            visit: { builder.add($2, order: tree.order(ofNode: $1)) })
        return builder.census(state: owners.state(of:), command: ProcessState.commandName(ofProcess:))
    }

    /// Reads the owner table.
    func readOwners() throws(InspectError) -> OwnerRegistry { try withOwnerTable(OwnerRegistry.init(table:)) }

    /// Reads the owner table into a scratch buffer and returns what `decode` makes of it.
    func withOwnerTable<Result>(_ decode: (UnsafeRawBufferPointer) -> Result) throws(InspectError) -> Result {
        let table = UnsafeMutableRawBufferPointer.allocate(byteCount: OwnerTable.byteCount, alignment: 8)
        defer { table.deallocate() }
        try read(into: table, at: layout.ownersOffset)
        return decode(UnsafeRawBufferPointer(table))
    }

    /// The blocks of `words` from `first` on that hold something, ascending.
    private static func allocatedBlocks(_ words: [UInt64], from first: Int) -> LazyFilterSequence<Range<Int>> {
        (first..<words.count).lazy.filter { words[$0] != 0 }
    }

    /// Block `block`'s word as the file holds it now, or `nil` when it cannot be read.
    private func currentWord(ofBlock block: Int) -> UInt64? {
        try? readWords(count: 1, at: layout.wordsOffset + block * 8)[0]
    }

    /// Reads the headers of the allocation nodes of `blocks` (ascending, each once) at their words
    /// in `words`, as the plans `planning` makes (one per block, into the buffer it is given) say,
    /// and replaces each block's contribution to `ledger` with what they say.
    ///
    /// The blocks lie scattered over the ledger and the data region, so each costs cache misses
    /// to its records and its new headers; waited for one after another they were most of a busy
    /// refresh. So the headers of a chunk of blocks are asked for together before they are read,
    /// and each block's records a few blocks ahead of their change.
    private func read(
        _ blocks: [Int], words: [UInt64], into ledger: inout OwnerLedger, counting: Bool,
        planning: (OwnerLedger, UnsafeMutableBufferPointer<OwnerLedger.BlockPlan>) -> Void
    ) throws(InspectError) {
        // The owner table is read only when a header names no owner (a claim or free in flight).
        // One that cannot be read names no claimer: its node counts as in flight, and the
        // file's check after the read reports why.
        var owners: OwnerRegistry?
        let claimer = { (block: Int, node: Int) -> Int32? in
            if owners == nil { owners = (try? self.readOwners()) ?? OwnerRegistry() }
            return owners!.claimer(block: block, node: node)
        }
        // All records first, in order of blocks and nodes: a read of the mapping that met a
        // truncation is thrown away before the ledger changes.
        // Buffers of the ledger's, reused: a busy refresh's tens of thousands of records would
        // otherwise be a new allocation, faulted in afresh, at every refresh. Both only grow (the
        // first `blocks.count` plans and `recordCount` records are this update's).
        var plans: [OwnerLedger.BlockPlan] = []
        var records: [OwnerLedger.NodeRecord] = []
        swap(&plans, &ledger.scratch.plans)
        swap(&records, &ledger.scratch.records)
        defer {
            swap(&plans, &ledger.scratch.plans)
            swap(&records, &ledger.scratch.records)
        }
        if plans.count < blocks.count {
            plans.append(contentsOf: repeatElement(OwnerLedger.BlockPlan(), count: blocks.count - plans.count))
        }
        plans.withUnsafeMutableBufferPointer { planning(ledger, $0) }
        var recordCount = 0
        if let dataMapping, dataMapping.readsInPlace {
            let whole: Void? = dataMapping.read(descriptor) { mapped in
                readInPlace(
                    blocks, from: mapped, plans: plans, records: &records, recordCount: &recordCount,
                    claimer: claimer, words: words)
            }
            guard whole != nil else {
                try checkFile()
                throw .truncated(path: path, size: dataMapping.faultedFileOffset ?? 0, expected: layout.fileSize)
            }
        } else {
            // Copied from the file instead (one `pread` per run of consecutive blocks): room for
            // the nodes' records first.
            let nodes = plans.prefix(blocks.count).reduce(0) { $0 + $1.nodesToRead.nonzeroBitCount }
            if records.count < nodes {
                records.append(
                    contentsOf: repeatElement(OwnerLedger.NodeRecord(rawValue: 0), count: nodes - records.count))
            }
            try forEachNode(
                of: blocks, words: words, nodes: { plans[$1].nodesToRead }, claimer: claimer,
                visit: {
                    records[recordCount] = OwnerLedger.NodeRecord($2)
                    recordCount += 1
                })
        }
        ledger.replace(
            blocks: blocks, plans: plans[..<blocks.count], records: records[..<recordCount], counting: counting)
    }

    /// Blocks whose headers are asked for together, then read: enough that their cache misses
    /// overlap, few enough that their headers stay cached meanwhile.
    static let headerChunkBlocks = 256

    /// The records of the nodes to read of `blocks` (ascending), as `plans` give them, read from
    /// the headers in `mapped` (the data region) into `records` from `recordCount` on (grown as
    /// needed), in order of blocks and nodes; `claimer(block, node)` is asked for a node whose
    /// header names no owner (and `words`, the blocks' words, tell whether its block changed
    /// since). If the mapping faults, some records are read as zeros (the caller throws them away).
    ///
    /// Chunk by chunk, so that a chunk's headers are still cached when read: the headers asked
    /// for, then read. A header's place waits in its record's slot meanwhile (its word's index in
    /// the data region, its order and node), so that the reading is one flat loop. The ledger is
    /// not touched: the plans were made without it.
    private func readInPlace(
        _ blocks: [Int], from mapped: MappedWords, plans: [OwnerLedger.BlockPlan],
        records: inout [OwnerLedger.NodeRecord], recordCount: inout Int, claimer: (Int, Int) -> Int32?,
        words: [UInt64]
    ) {
        let geometry = geometry
        let tree = geometry.tree
        let blockWordsShift = geometry.blockSize.trailingZeroBitCount &- 3
        // Each node's place in its block (in words) and order, as a header's place holds them.
        var placeOfNode = InlineArray<64, UInt64>(repeating: 0)
        for node in 1..<min(64, tree.nodeCount &+ 1) {
            let word = tree.byteOffset(ofNode: node, minSize: geometry.minSize) &>> 3
            placeOfNode[node] = UInt64(word) &<< 10 | UInt64(tree.order(ofNode: node)) &<< 6 | UInt64(node)
        }
        plans.withUnsafeBufferPointer { plans in
            var chunkStart = 0
            while chunkStart < blocks.count {
                let chunkEnd = min(blocks.count, chunkStart &+ Self.headerChunkBlocks)
                // Room for the most records the chunk can have, so that they are written in place
                // without counting them first: the records array grows to its busiest update once.
                let most = recordCount &+ (chunkEnd &- chunkStart) &* OwnerLedger.Page.blockRecordsLimit
                if records.count < most {
                    records.append(
                        contentsOf: repeatElement(OwnerLedger.NodeRecord(rawValue: 0), count: most &- records.count))
                }
                records.withUnsafeMutableBufferPointer { records in
                    let chunkRecords = recordCount
                    for position in chunkStart..<chunkEnd {
                        // Wrapping: a block's words lie within the data region's.
                        let base = UInt64(truncatingIfNeeded: blocks[position] &<< blockWordsShift) &<< 10
                        var nodes = plans[position].nodesToRead
                        while nodes != 0 {
                            let place = base &+ placeOfNode[nodes.trailingZeroBitCount]
                            nodes &= nodes &- 1
                            mapped.prefetch(wordAt: Int(truncatingIfNeeded: place &>> 10))
                            records[recordCount] = OwnerLedger.NodeRecord(rawValue: place)
                            recordCount &+= 1
                        }
                    }
                    for slot in chunkRecords..<recordCount {
                        let place = records[slot].rawValue
                        let wordIndex = Int(truncatingIfNeeded: place &>> 10)
                        let order = Int(truncatingIfNeeded: (place &>> 6) & 0xF)
                        let rawHeader = mapped.word(at: wordIndex)
                        if let record = OwnerLedger.NodeRecord.counted(
                            rawHeader: rawHeader, order: order, geometry: geometry)
                        {
                            records[slot] = record
                            continue
                        }
                        let block = wordIndex &>> blockWordsShift
                        let node = Int(truncatingIfNeeded: place & 0x3F)
                        let reading = AllocationCensus.reading(
                            rawHeader: rawHeader, order: order, geometry: geometry, claimer: claimer(block, node),
                            blockChanged: currentWord(ofBlock: block) != words[block])
                        records[slot] = OwnerLedger.NodeRecord(reading)
                    }
                }
                chunkStart = chunkEnd
            }
        }
    }

    /// Calls `visit(block, node, reading)` for the allocation nodes `nodes(block, position)` (a
    /// subset of the word's allocations; `position` counts the blocks from 0) of each of `blocks`
    /// (ascending) at its word in `words`, in order of blocks and nodes; `claimer(block, node)` is
    /// asked for a node whose header names no owner. The headers are read from runs of
    /// consecutive blocks, one `pread` each.
    ///
    /// A throw may come after some visits.
    ///
    /// Inlined into its two callers, so that `nodes` and `visit` are too: called through a
    /// closure context for every node, they cost a busy refresh more than the headers' reading.
    @inline(__always)
    private func forEachNode(
        of blocks: some Collection<Int>, words: [UInt64], nodes: (_ block: Int, _ position: Int) -> UInt64,
        claimer: (Int, Int) -> Int32?,
        visit: (_ block: Int, _ node: Int, _ reading: AllocationCensus.NodeReading) -> Void
    ) throws(InspectError) {
        let geometry = geometry
        let tree = geometry.tree
        /// Visits block `block` (number `position`)'s chosen nodes, their headers loaded by
        /// `header` (byte offset in the block → raw header). Only the chosen nodes are walked: in a
        /// changed block they are one or two of ten or more allocations.
        func visitBlock(_ block: Int, position: Int, header: (Int) -> UInt64) {
            let word = words[block]
            var chosen = nodes(block, position)
            while chosen != 0 {
                let node = chosen.trailingZeroBitCount
                chosen &= chosen &- 1
                let offset = tree.byteOffset(ofNode: node, minSize: geometry.minSize)
                visit(
                    block, node,
                    AllocationCensus.reading(
                        rawHeader: header(offset), order: tree.order(ofNode: node), geometry: geometry,
                        claimer: claimer(block, node), blockChanged: currentWord(ofBlock: block) != word))
            }
        }
        let blocksPerChunk = max(1, Self.scanChunkBytes / geometry.blockSize)
        let buffer = UnsafeMutableRawBufferPointer.allocate(
            byteCount: blocksPerChunk * geometry.blockSize, alignment: 8)
        defer { buffer.deallocate() }
        /// The run of consecutive blocks being gathered for one `pread`, and its first block's position.
        var run: Range<Int>?
        var runPosition = 0
        func readRun(_ run: Range<Int>, from firstPosition: Int) throws(InspectError) {
            let bytes = UnsafeMutableRawBufferPointer(rebasing: buffer[..<(run.count * geometry.blockSize)])
            try read(into: bytes, at: layout.dataOffset + run.lowerBound * geometry.blockSize)
            for block in run {
                let base = (block - run.lowerBound) * geometry.blockSize
                visitBlock(block, position: firstPosition + block - run.lowerBound) {
                    UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: base + $0, as: UInt64.self))
                }
            }
        }
        for (position, block) in blocks.enumerated() {
            if let current = run, current.upperBound == block, current.count < blocksPerChunk {
                run = current.lowerBound..<(block + 1)
                continue
            }
            if let current = run { try readRun(current, from: runPosition) }
            run = block..<(block + 1)
            runPosition = position
        }
        if let run { try readRun(run, from: runPosition) }
    }

    /// The most bytes one `pread` of the data region asks for.
    static let scanChunkBytes = 1 << 20
}
