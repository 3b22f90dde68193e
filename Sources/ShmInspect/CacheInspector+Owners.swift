// Reading allocation headers: all of them for a one-shot census, or into an owner ledger, all
// once and then those of the blocks that changed.

import ShmFormat

extension CacheInspector {
    /// The owner ledger of `snapshot`: reads the header of every allocation in its words.
    public func ownerLedger(of snapshot: CacheSnapshot) throws(InspectError) -> OwnerLedger {
        var ledger = OwnerLedger(geometry: geometry)
        let blocks = Array(Self.allocatedBlocks(snapshot.words, from: layout.nullBlockCount))
        try read(blocks, words: snapshot.words, into: &ledger, counting: false)
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
        let blocks = Self.merging(changes.blocks, ledger.unsettledBlocks.sorted())
        try read(blocks, words: snapshot.words, into: &ledger, counting: true)
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
            of: Self.allocatedBlocks(words, from: layout.nullBlockCount), words: words, inPlace: false,
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

    /// Reads the headers of the allocation nodes of `blocks` (ascending) at their words in
    /// `words`, and replaces each block's contribution to `ledger` with what they say.
    ///
    /// The blocks lie scattered over the ledger and the data region, so each costs cache misses
    /// to its entry, its records and its new headers; waited for one after another they were most
    /// of a busy refresh. So each is asked for ahead of its use (``OwnerLedger/prefetchEntry(of:)``),
    /// and the headers of a chunk of blocks are asked for together before they are read.
    private func read(
        _ blocks: [Int], words: [UInt64], into ledger: inout OwnerLedger, counting: Bool
    ) throws(InspectError) {
        // The owner table is read only when a header names no owner (a claim or free in flight).
        // One that cannot be read names no claimer: its node counts as in flight, and the
        // file's check after the read reports why.
        var owners: OwnerRegistry?
        // All records first, in order of blocks and nodes: a read of the mapping that met a
        // truncation is thrown away before the ledger changes.
        // Buffers of the ledger's, reused: a busy refresh's tens of thousands of records would
        // otherwise be a new allocation, faulted in afresh, at every refresh.
        var plans: [OwnerLedger.BlockPlan] = []
        var records: [OwnerLedger.NodeRecord] = []
        swap(&plans, &ledger.scratch.plans)
        swap(&records, &ledger.scratch.records)
        defer {
            swap(&plans, &ledger.scratch.plans)
            swap(&records, &ledger.scratch.records)
        }
        plans.removeAll(keepingCapacity: true)
        plans.append(contentsOf: repeatElement(OwnerLedger.BlockPlan(), count: blocks.count))
        let claimer = { (block: Int, node: Int) -> Int32? in
            if owners == nil { owners = (try? self.readOwners()) ?? OwnerRegistry() }
            return owners!.claimer(block: block, node: node)
        }
        var recordCount = 0
        try plans.withUnsafeMutableBufferPointer { plans throws(InspectError) in
            // Chunk by chunk, so that a chunk's entries and headers are still cached when read
            // again: each block's plan, then the headers of its nodes to read.
            var chunkStart = 0
            while chunkStart < blocks.count {
                let chunk = blocks[chunkStart..<min(blocks.count, chunkStart + Self.headerChunkBlocks)]
                for position in chunk.indices {
                    let ahead = position &+ OwnerLedger.entryLookahead
                    if ahead < blocks.count { ledger.prefetchEntry(of: blocks[ahead]) }
                    plans[position] = ledger.plan(block: blocks[position], word: words[blocks[position]])
                }
                // Room for the most records the chunk can have, so that they are written in place
                // without counting them first: the records array grows to its busiest update once.
                let most = recordCount + chunk.count * OwnerLedger.Page.blockRecordsLimit
                if records.count < most {
                    records.append(
                        contentsOf: repeatElement(OwnerLedger.NodeRecord(rawValue: 0), count: most - records.count))
                }
                try records.withUnsafeMutableBufferPointer { records throws(InspectError) in
                    try forEachNode(
                        of: chunk, words: words, inPlace: true, nodes: { plans[chunkStart &+ $1].nodesToRead },
                        claimer: claimer,
                        visit: {
                            precondition(recordCount < records.count, "more nodes visited than chosen")
                            records[recordCount] = OwnerLedger.NodeRecord($2)
                            recordCount &+= 1
                        })
                }
                chunkStart = chunk.endIndex
            }
        }
        ledger.replace(blocks: blocks, plans: plans, records: records[..<recordCount], counting: counting)
    }

    /// Blocks whose headers are asked for together, then read: enough that their cache misses
    /// overlap, few enough that their entries and headers stay cached meanwhile.
    static let headerChunkBlocks = 256

    /// Calls `visit(block, node, reading)` for the allocation nodes `nodes(block, position)` (a
    /// subset of the word's allocations; `position` counts the blocks from 0) of each of `blocks`
    /// (ascending) at its word in `words`, in order of blocks and nodes; `claimer(block, node)` is
    /// asked for a node whose header names no owner. With `inPlace`, the headers are loaded from
    /// the data mapping where it reads in place (a few thousand scattered nodes, where a `pread`
    /// each would cost a system call), all asked for before the first is loaded; otherwise from
    /// runs of consecutive blocks, one `pread` each.
    ///
    /// A throw may come after some visits; with `inPlace`, those may have read zeros.
    ///
    /// Inlined into its two callers, so that `nodes` and `visit` are too: called through a
    /// closure context for every node, they cost a busy refresh more than the headers' reading.
    @inline(__always)
    private func forEachNode(
        of blocks: some Collection<Int>, words: [UInt64], inPlace: Bool,
        nodes: (_ block: Int, _ position: Int) -> UInt64, claimer: (Int, Int) -> Int32?,
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
        if inPlace, let dataMapping, dataMapping.readsInPlace {
            let whole: Void? = dataMapping.read(descriptor) { mapped in
                for (position, block) in blocks.enumerated() {
                    var chosen = nodes(block, position)
                    while chosen != 0 {
                        let node = chosen.trailingZeroBitCount
                        let offset = tree.byteOffset(ofNode: node, minSize: geometry.minSize)
                        mapped.prefetch(wordAt: (block &* geometry.blockSize &+ offset) &>> 3)
                        chosen &= chosen &- 1
                    }
                }
                for (position, block) in blocks.enumerated() {
                    // Wrapping: a block's bytes lie within the data region's (words: 8 bytes).
                    let base = block &* geometry.blockSize
                    visitBlock(block, position: position) { mapped.word(at: (base &+ $0) &>> 3) }
                }
            }
            guard whole != nil else {
                try checkFile()
                throw .truncated(path: path, size: dataMapping.faultedFileOffset ?? 0, expected: layout.fileSize)
            }
            return
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
