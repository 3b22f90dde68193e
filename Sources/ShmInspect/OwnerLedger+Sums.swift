// The owner ledger's sums: the records read added to their owners' sums in one tight pass, a
// record taken out of them, and the activity they count between two refreshes.

extension OwnerLedger {
    /// Takes `record` away from `sums`, which hold its owner's; with `counting`, as a free of its
    /// owner.
    @inline(__always)
    mutating func subtract(_ record: NodeRecord, counting: Bool, from sums: SumBuffers) {
        // Most records are counted: their kind is tested first.
        guard record.kind == NodeRecord.counted else {
            if record.isUnsettled { inFlight &-= 1 } else { unreadable &-= 1 }
            return
        }
        // Wrapping, as ``OwnerSums/remove(bytes:requested:counting:)``.
        let (order, requested) = (record.order, record.requestedSize)
        sums.requestedBytesByOrder[order] &-= requested
        ownerSums(of: record.pid, in: sums).pointee.remove(
            bytes: geometry.nodeSize(ofOrder: order), requested: requested, counting: counting)
    }

    /// Takes back the allocation ``addAppeared(_:counting:)`` counted for `record`: its node was
    /// read again, not allocated.
    mutating func uncountAllocation(of record: NodeRecord, in sums: SumBuffers) {
        guard record.kind == NodeRecord.counted else { return }
        ownerSums(of: record.pid, in: sums).pointee.allocated &-= 1
    }

    /// The sums of `pid`, which has sums in `sums` (see ``addAppeared(_:counting:)``): the last
    /// owner's (a writer's allocations sit together), or found by hash.
    @inline(__always)
    private mutating func ownerSums(of pid: Int32, in sums: SumBuffers) -> UnsafeMutablePointer<OwnerSums> {
        if lastOwner >= sums.owners.count || sums.owners[lastOwner].pid != pid { lastOwner = ownerIndex[pid]! }
        return sums.owners.baseAddress.unsafelyUnwrapped + lastOwner
    }

    /// Adds each of `records` to the sums as a node that appeared (with `counting`, an allocation
    /// of its owner), making sums for an owner that has none. Most records read are of nodes that
    /// appeared: summed here, in one tight pass over the records, they cost a fraction of what
    /// they did summed one by one between the runs' changes. A node read again is corrected where
    /// its old record is taken out.
    mutating func addAppeared(_ records: UnsafeBufferPointer<NodeRecord>, counting: Bool) {
        var position = 0
        while let unknown = addAppeared(records, from: &position, counting: counting) {
            lastOwner = ownerSlot(of: unknown)
        }
    }

    /// Adds `records` from `position` on, as ``addAppeared(_:counting:)`` does, up to the first
    /// that names an owner without sums: returns its pid (`position` then at it), or `nil` when
    /// all were added.
    private mutating func addAppeared(
        _ records: UnsafeBufferPointer<NodeRecord>, from position: inout Int, counting: Bool
    ) -> Int32? {
        let (index, geometry) = (ownerIndex, geometry)
        var (owner, inFlightAdded, unreadableAdded) = (lastOwner, 0, 0)
        defer { (lastOwner, inFlight, unreadable) = (owner, inFlight &+ inFlightAdded, unreadable &+ unreadableAdded) }
        return withSumBuffers { _, sums in
            let (ownerSums, orderSums) = (sums.owners, sums.requestedBytesByOrder)
            // The current owner's pid (none at first: outside Int32's range).
            var pid = Int64.min
            while true {
                // The current owner's records (a writer's allocations sit together), summed in
                // registers by a loop that leaves at the first record of another owner.
                var (allocations, bytes, requestedBytes) = (0, 0, 0)
                while position < records.count {
                    let record = records[position]
                    if record.kind == NodeRecord.counted {
                        guard Int64(record.pid) == pid else { break }
                        let (order, requested) = (record.order, record.requestedSize)
                        orderSums[order] &+= requested
                        allocations &+= 1
                        bytes &+= geometry.nodeSize(ofOrder: order)
                        requestedBytes &+= requested
                    } else if record.isUnsettled {
                        inFlightAdded &+= 1
                    } else {
                        unreadableAdded &+= 1
                    }
                    position &+= 1
                }
                if allocations != 0 {
                    ownerSums[owner].allocations &+= allocations
                    ownerSums[owner].bytes &+= bytes
                    ownerSums[owner].requestedBytes &+= requestedBytes
                    if counting { ownerSums[owner].allocated &+= allocations }
                }
                guard position < records.count else { return nil }
                let next = records[position].pid
                guard let found = index[next] else { return next }
                (owner, pid) = (found, Int64(next))
            }
        }
    }

    /// Calls `body` with this ledger and its sums as buffers, taken out of the ledger meanwhile so
    /// that both change in place (each write to an array would check that it is unique).
    mutating func withSumBuffers<Result>(_ body: (inout OwnerLedger, SumBuffers) -> Result) -> Result {
        var ownerSums: [OwnerSums] = []
        var orderSums: [Int] = []
        swap(&ownerSums, &owners)
        swap(&orderSums, &requestedBytesByOrder)
        defer {
            swap(&ownerSums, &owners)
            swap(&orderSums, &requestedBytesByOrder)
        }
        return ownerSums.withUnsafeMutableBufferPointer { ownerSums in
            orderSums.withUnsafeMutableBufferPointer { orderSums in
                body(&self, SumBuffers(owners: ownerSums, requestedBytesByOrder: orderSums))
            }
        }
    }

    /// Where `pid`'s sums are in `owners` (made when `pid` has none).
    private mutating func ownerSlot(of pid: Int32) -> Int {
        if lastOwner < owners.count, owners[lastOwner].pid == pid { return lastOwner }
        if let found = ownerIndex[pid] {
            lastOwner = found
        } else {
            lastOwner = owners.count
            ownerIndex[pid] = lastOwner
            owners.append(OwnerSums(pid: pid))
        }
        return lastOwner
    }

    /// What the owners allocated and freed since the last call, and starts counting afresh.
    mutating func takeActivity() -> OwnerActivity {
        var counts: [Int32: (allocations: Int, frees: Int)] = [:]
        for owner in owners where owner.allocated != 0 || owner.freed != 0 {
            counts[owner.pid] = (owner.allocated, owner.freed)
        }
        for index in owners.indices {
            owners[index].allocated = 0
            owners[index].freed = 0
        }
        // Owners that hold nothing leave; the index is rebuilt only when one did.
        if owners.contains(where: { $0.allocations == 0 }) {
            owners.removeAll { $0.allocations == 0 }
            ownerIndex = Dictionary(uniqueKeysWithValues: owners.enumerated().map { ($1.pid, $0) })
        }
        return OwnerActivity(counts: counts)
    }
}
