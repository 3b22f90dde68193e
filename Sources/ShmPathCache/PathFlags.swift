// What the path cache stores for each path, and what can go wrong.

#if !hasFeature(Embedded)  // the C library will compile these files as one module with the allocator
    import ShmFormat
    import ShmSystem
#endif

/// The verdict cached for a path: 8 bits, three with a meaning to the cache.
///
/// A plain struct rather than an `OptionSet`: `OptionSet`'s operations are generic protocol
/// extensions, which an unoptimised build runs through runtime metadata, and the hot path must be
/// callable from signal handlers (for the same reason its constants are computed, not stored).
public struct PathFlags: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The path may be accessed (`SHM_PATH_ALLOW`).
    @inlinable public static var allow: PathFlags { PathFlags(rawValue: PathCacheLayout.allowFlag) }
    /// The path may not be accessed (`SHM_PATH_DENY`).
    @inlinable public static var deny: PathFlags { PathFlags(rawValue: PathCacheLayout.denyFlag) }
    /// The entry answers for every path below it at a `/` boundary (`SHM_PATH_PREFIX`).
    @inlinable public static var prefix: PathFlags { PathFlags(rawValue: PathCacheLayout.prefixFlag) }

    /// True when every bit of `other` is set here.
    @inlinable public func contains(_ other: PathFlags) -> Bool { rawValue & other.rawValue == other.rawValue }
    /// The bits of both.
    @inlinable public func union(_ other: PathFlags) -> PathFlags { PathFlags(rawValue: rawValue | other.rawValue) }

    public var description: String { "0x" + String(rawValue, radix: 16) }
}

/// Why a path could not be inserted or searched. Each case has the `errno` of the C face.
public enum PathCacheError: Error, Hashable, Sendable {
    /// The path is longer than one entry holds (`ENAMETOOLONG`); a cache may ignore such paths.
    case nameTooLong(length: Int, longest: Int)
    /// The path is empty or relative (`EINVAL`).
    case invalidPath
    /// No room for a new table or entry (`ENOMEM`); the cache is as it was.
    case outOfSpace
    /// The cache file's geometry cannot hold a path cache (`EINVAL`), see `PathCacheLayout.unsupportedReason`.
    case unsupportedGeometry

    /// The `errno` a C caller sees.
    public var errnoValue: Errno {
        switch self {
        case .nameTooLong: .fileNameTooLong
        case .invalidPath, .unsupportedGeometry: .invalidArgument
        case .outOfSpace: .noMemory
        }
    }
}
