// A set of blocks as one bit per block: what a heatmap asks of a highlighted owner's blocks is,
// cell by cell, whether a range of blocks holds any, which a bitmap answers a word at a time.

/// A set of block numbers below a fixed count, one bit per block.
public struct BlockSet: Hashable, Sendable {
    private var bits: [UInt64]
    /// Blocks the set can hold: `0..<capacity`.
    public let capacity: Int

    /// An empty set of blocks below `capacity`.
    public init(capacity: Int) {
        self.capacity = capacity
        bits = [UInt64](repeating: 0, count: (capacity + 63) / 64)
    }

    /// Whether `block` is in the set.
    public func contains(_ block: Int) -> Bool { bits[block >> 6] & (1 << UInt64(block & 63)) != 0 }

    /// Puts `block` in the set (`member`) or takes it out.
    public mutating func set(_ block: Int, _ member: Bool) {
        if member {
            bits[block >> 6] |= 1 << UInt64(block & 63)
        } else {
            bits[block >> 6] &= ~(1 << UInt64(block & 63))
        }
    }

    /// Whether any block of `blocks` is in the set.
    public func intersects(_ blocks: Range<Int>) -> Bool {
        let range = blocks.clamped(to: 0..<capacity)
        guard !range.isEmpty else { return false }
        let first = range.lowerBound >> 6
        let last = (range.upperBound - 1) >> 6
        for index in first...last {
            var word = bits[index]
            if index == first { word &= ~0 << UInt64(range.lowerBound & 63) }
            if index == last, range.upperBound & 63 != 0 { word &= (1 << UInt64(range.upperBound & 63)) &- 1 }
            if word != 0 { return true }
        }
        return false
    }
}
