// What the owner ledger answers: its owners, the blocks one of them holds, and the census its
// figures make (OwnerLedger.swift keeps the figures up to date).

import ShmFormat

extension OwnerLedger {
    /// The pids that hold allocations.
    public var ownerPIDs: [Int32] { owners.filter { $0.allocations != 0 }.map(\.pid) }

    /// The blocks holding allocations of `pid` (reads the whole ledger; ``update(_:ownedBy:blocks:)``
    /// keeps the set up to date from then on).
    public func blocks(ownedBy pid: Int32) -> BlockSet {
        var owned = BlockSet(capacity: geometry.blockCount)
        for number in 0..<storage.pageCount where !storage.pages[number].isEmpty {
            for index in 0..<Self.pageBlocks where owns(block: number * Self.pageBlocks + index, pid: pid) {
                owned.set(number * Self.pageBlocks + index, true)
            }
        }
        return owned
    }

    /// Brings `owned`, the blocks of `pid` before `blocks` were read again (see
    /// ``CacheInspector/update(_:to:changes:)``), up to the ledger.
    public func update(_ owned: inout BlockSet, ownedBy pid: Int32, blocks: [Int]) {
        for block in blocks { owned.set(block, owns(block: block, pid: pid)) }
    }

    /// Whether block `block` holds an allocation of `pid`.
    public func owns(block: Int, pid: Int32) -> Bool {
        let (page, index) = storage.page(of: block)
        guard !page.pointee.isEmpty else { return false }
        return page.pointee.withRecords(of: index) { $0.contains { $0.isCounted(for: pid) } }
    }

    /// The census the ledger's figures make, with each owner's process state as `state` gives
    /// it, the command name of each live owner as `command` gives it, and each owner's rates
    /// from `rates` (absent for an owner `rates` does not name, and for all without `rates`).
    public func census(
        state: (Int32) -> ProcessState, command: (Int32) -> String? = { _ in nil }, rates: OwnerRates? = nil
    ) -> AllocationCensus {
        let owners = owners.filter { $0.allocations != 0 }.map { sums in
            let pid = sums.pid
            var owner = OwnerAllocations(
                pid: pid, allocations: sums.allocations, bytes: sums.bytes, requestedBytes: sums.requestedBytes)
            let ownerState = state(pid)
            owner.mark(ownerState, command: ownerState == .alive ? command(pid) : nil, capacity: geometry.capacity)
            if let rates { owner.setRates(rates.perSecond(of: pid)) }
            return owner
        }
        return AllocationCensus(
            requestedBytesByOrder: requestedBytesByOrder, owners: OwnerOrder.byBytes.sorted(owners),
            unreadableHeaders: unreadable, inFlightHeaders: inFlight)
    }
}
