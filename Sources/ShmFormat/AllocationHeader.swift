// The 8 bytes in front of every allocation: what the inspector needs to attribute it.

/// The header stored just before every allocation's first usable byte.
///
/// Bit layout of the 64-bit little-endian value:
///
/// | bits   | field                                  |
/// |--------|----------------------------------------|
/// | 0..<32 | owner pid (the process that allocated; 0 once freed) |
/// | 32..<52| requested size in bytes (< 1 MiB)      |
/// | 52..<56| order of the node (0 = `minSize`)      |
/// | 56..<64| check byte over bits 0..<56            |
///
/// `free` trusts none of it blindly: the order only says where to look, and the buddy word decides
/// (see ``BuddyTree/isAllocation(_:node:)``). The check byte tells a header that user code
/// overwrote from one that never was a header.
public struct AllocationHeader: Hashable, Sendable {
    /// The header's size in bytes; every allocation's usable bytes start this far into its node.
    @inlinable public static var size: Int { 8 }

    /// The process that allocated the node.
    public let ownerPID: Int32
    /// The size the caller asked for.
    public let requestedSize: Int
    /// The order of the node (node size = `minSize << order`).
    public let order: Int

    /// A header for a new allocation. `requestedSize` must be below 2^20 and `order` below 16.
    @inlinable
    public init(ownerPID: Int32, requestedSize: Int, order: Int) {
        self.ownerPID = ownerPID
        self.requestedSize = requestedSize
        self.order = order
    }

    /// The packed 64-bit value, check byte included.
    @inlinable
    public var rawValue: UInt64 {
        let body =
            UInt64(UInt32(bitPattern: ownerPID))
            | (UInt64(truncatingIfNeeded: requestedSize) & 0xF_FFFF) &<< 32
            | (UInt64(truncatingIfNeeded: order) & 0xF) &<< 52
        return body | Self.checkByte(body) &<< 56
    }

    /// The header `free` leaves on the node it releases: the same order and size, owner pid 0 (no
    /// process has pid 0). A node claimed again whose claimer has not written its own header yet,
    /// or never will (killed in between), then names no owner instead of the previous one.
    @inlinable
    public var released: AllocationHeader { AllocationHeader(ownerPID: 0, requestedSize: requestedSize, order: order) }

    /// True for a header that `free` left behind: it belongs to no allocation.
    @inlinable public var isReleased: Bool { ownerPID == 0 }

    /// Unpacks a stored header, or returns `nil` when its check byte does not match its body.
    @inlinable
    public init?(rawValue: UInt64) {
        let body = rawValue & 0x00FF_FFFF_FFFF_FFFF
        guard rawValue &>> 56 == Self.checkByte(body) else { return nil }
        ownerPID = Int32(bitPattern: UInt32(truncatingIfNeeded: body))
        requestedSize = Int((body &>> 32) & 0xF_FFFF)
        order = Int((body &>> 52) & 0xF)
    }

    /// A multiplicative hash of the body folded to 8 bits, offset so that an all-zero word fails.
    @inlinable
    static func checkByte(_ body: UInt64) -> UInt64 {
        ((body &* 0x9E37_79B9_7F4A_7C15) &>> 56) ^ 0xA5
    }
}
