// Reading allocation headers into an owner ledger: all of them once, then those of the blocks
// that changed.

import ShmFormat

extension CacheInspector {
    /// The owner ledger of `snapshot`: reads the header of every allocation in its words.
    public func ownerLedger(of snapshot: CacheSnapshot) throws(InspectError) -> OwnerLedger {
        try ownerLedger(words: snapshot.words)
    }

    /// Brings `ledger` (of an earlier snapshot of this cache, last brought up to the snapshot
    /// `changes` starts from) up to `snapshot`: the headers of the blocks in `changes` are read
    /// again, and so are those of blocks whose headers were in flight at the last reading.
    /// Returns what the owners allocated and freed meanwhile, as the words show it.
    public func update(
        _ ledger: inout OwnerLedger, to snapshot: CacheSnapshot, changes: SnapshotChanges
    ) throws(InspectError) -> OwnerActivity {
        var blocks = changes.blocks
        if !ledger.unsettledBlocks.isEmpty {
            blocks = Array(Set(blocks).union(ledger.unsettledBlocks)).sorted()
        }
        try read(blocks, words: snapshot.words, into: &ledger, counting: true)
        return ledger.takeActivity()
    }

    /// The owner ledger of `words` (a snapshot's); without `keepingBlocks`, only its sums.
    func ownerLedger(words: [UInt64], keepingBlocks: Bool = true) throws(InspectError) -> OwnerLedger {
        var ledger = OwnerLedger(geometry: geometry, keepsBlocks: keepingBlocks)
        try read((layout.nullBlockCount..<words.count).filter { words[$0] != 0 }, words: words, into: &ledger, counting: false)
        return ledger
    }

    /// The census `ledger` makes now: each owner's process state (checked against the start time
    /// the owner table holds), the command of each live owner, and each owner's `rates`.
    public func census(of ledger: OwnerLedger, rates: OwnerRates? = nil) throws(InspectError) -> AllocationCensus {
        let owners = try readOwners()
        return ledger.census(state: owners.state(of:), command: ProcessState.commandName(ofProcess:), rates: rates)
    }

    /// The census of every allocation header in `words`, with each owner's state and command.
    func scanAllocations(_ words: [UInt64]) throws(InspectError) -> AllocationCensus {
        try census(of: ownerLedger(words: words, keepingBlocks: false))
    }

    /// Reads the owner table.
    func readOwners() throws(InspectError) -> OwnerRegistry {
        let table = UnsafeMutableRawBufferPointer.allocate(byteCount: OwnerTable.byteCount, alignment: 8)
        defer { table.deallocate() }
        try read(into: table, at: layout.ownersOffset)
        return OwnerRegistry(table: UnsafeRawBufferPointer(table))
    }

    /// Block `block`'s word as the file holds it now, or `nil` when it cannot be read.
    private func currentWord(ofBlock block: Int) -> UInt64? {
        try? readWords(count: 1, at: layout.wordsOffset + block * 8)[0]
    }

    /// Reads the headers of the allocation nodes of `blocks` (ascending) at their words in
    /// `words`, and replaces each block's contribution to `ledger` with what they say.
    private func read(_ blocks: [Int], words: [UInt64], into ledger: inout OwnerLedger, counting: Bool) throws(InspectError) {
        guard !blocks.isEmpty else { return }
        let owners = try readOwners()
        let tree = geometry.tree
        let geometry = geometry
        /// The records of block `block` at `word`, its headers loaded by `header` (byte offset in
        /// the data region → raw header).
        func records(_ block: Int, _ word: UInt64, header: (Int) -> UInt64) -> [OwnerLedger.NodeRecord] {
            var nodes = tree.allocations(word)
            var records: [OwnerLedger.NodeRecord] = []
            records.reserveCapacity(nodes.nonzeroBitCount)
            while nodes != 0 {
                let node = nodes.trailingZeroBitCount
                nodes &= nodes &- 1
                let raw = header(block * geometry.blockSize + tree.byteOffset(ofNode: node, minSize: geometry.minSize))
                records.append(OwnerLedger.NodeRecord(AllocationCensus.reading(
                    rawHeader: raw, order: tree.order(ofNode: node), geometry: geometry,
                    claimer: owners.claimer(block: block, node: node), blockChanged: currentWord(ofBlock: block) != word)))
            }
            return records
        }
        if let dataMapping, dataMapping.readsInPlace {
            guard let read = dataMapping.read(descriptor, { mapped in
                blocks.map { block in records(block, words[block]) { mapped.word(at: $0 / 8) } }
            }) else {
                try checkFile()
                throw .truncated(path: path, size: dataMapping.faultedFileOffset ?? 0, expected: layout.fileSize)
            }
            for (block, records) in zip(blocks, read) { ledger.replace(block: block, word: words[block], records: records, counting: counting) }
            return
        }
        // Without the mapping: runs of consecutive blocks, one `pread` each.
        let blocksPerChunk = max(1, Self.scanChunkBytes / geometry.blockSize)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: blocksPerChunk * geometry.blockSize, alignment: 8)
        defer { buffer.deallocate() }
        var start = 0
        while start < blocks.count {
            var end = start + 1
            while end < blocks.count, end - start < blocksPerChunk, blocks[end] == blocks[end - 1] + 1 { end += 1 }
            let first = blocks[start]
            let run = UnsafeMutableRawBufferPointer(rebasing: buffer[..<((end - start) * geometry.blockSize)])
            try read(into: run, at: layout.dataOffset + first * geometry.blockSize)
            for block in blocks[start..<end] {
                let found = records(block, words[block]) { offset in
                    UInt64(littleEndian: run.loadUnaligned(fromByteOffset: offset - first * geometry.blockSize, as: UInt64.self))
                }
                ledger.replace(block: block, word: words[block], records: found, counting: counting)
            }
            start = end
        }
    }

    /// The most bytes one `pread` of the data region asks for.
    static let scanChunkBytes = 1 << 20
}
