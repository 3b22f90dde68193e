// The two fragmentation measures of Linux's mm/vmstat.c, applied to buddy trees of blocks.

/// The kernel's per-order fragmentation measures, computed from the maximal free chunks per order.
///
/// Linux (`mm/vmstat.c`, `fill_contig_page_info`, `unusable_free_index`, `__fragmentation_index`)
/// works in pages; here the unit is `minSize` and order j means a chunk of `minSize · 2^j`. With
///
/// - `free` = free units, Σ count(k) · 2^k over all orders k,
/// - `total` = free chunks of any order, Σ count(k),
/// - `suitable(j)` = order-j chunks the free memory can provide, Σ_{k ≥ j} count(k) · 2^(k−j),
///
/// the **unusable free space index** of order j is `(free − suitable(j) · 2^j) / free`: the share of
/// free memory in chunks too small for an order-j request (0 when nothing is free). The
/// **fragmentation index** of order j is −1 when a chunk of order j or larger is free (a failure
/// there would not be for lack of contiguity); 0 when nothing is free; otherwise
/// `1 − (1 + free / 2^j) / total`, which tends to 0 when a failure is for lack of memory and to 1
/// when it is for fragmentation. The kernel scales both by 1000 to stay in integers; these are
/// the same values as fractions.
public struct FragmentationIndices: Hashable, Sendable {
    /// Maximal free chunks per order (index = order).
    public let freeChunksByOrder: [Int]

    /// Measures for these free chunk counts.
    public init(freeChunksByOrder: [Int]) {
        self.freeChunksByOrder = freeChunksByOrder
    }

    /// Free memory in units of the smallest order.
    public var freeUnits: Int {
        freeChunksByOrder.enumerated().reduce(0) { $0 + $1.element << $1.offset }
    }

    /// Free chunks of every order.
    public var totalChunks: Int { freeChunksByOrder.reduce(0, +) }

    /// How many order-`order` chunks the free memory could provide.
    public func suitableChunks(order: Int) -> Int {
        freeChunksByOrder.indices.filter { $0 >= order }.reduce(0) { $0 + freeChunksByOrder[$1] << ($1 - order) }
    }

    /// The share of free memory in chunks smaller than order `order`, 0...1.
    public func unusableFreeIndex(order: Int) -> Double {
        let free = freeUnits
        guard free > 0 else { return 0 }
        return Double(free - suitableChunks(order: order) << order) / Double(free)
    }

    /// −1 when an order-`order` chunk is free; else 0...1, towards 1 when a request of that order
    /// would fail for fragmentation rather than for lack of memory.
    public func fragmentationIndex(order: Int) -> Double {
        let total = totalChunks
        guard total > 0 else { return 0 }
        if suitableChunks(order: order) > 0 { return -1 }
        return 1 - (1 + Double(freeUnits) / Double(1 << order)) / Double(total)
    }
}
