// What can go wrong, and the words a person reads when it does.

#if !hasFeature(Embedded)  // the C library compiles the core's files as one module
    import ShmFormat
    import ShmSystem
#endif

/// Why a cache file could not be opened, created or mapped. Every case names the path.
public enum CacheError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A system call failed: which one, and its `errno`.
    case system(SystemCallFailure)
    /// The path exists but is not a regular file (a directory, a device, a socket …).
    case notRegularFile(path: String)
    /// The file's permission bits forbid writing, and the allocator writes.
    case readOnlyFile(path: String)
    /// The file is not a valid cache file, or not one this version reads.
    case format(path: String, FormatError)
    /// The caller asked for a geometry the existing file does not have.
    case geometryMismatch(path: String, file: Geometry, requested: Geometry)
    /// The process that was initialising the file died before it finished.
    case creatorDied(path: String, pid: Int32)
    /// Another process kept the file in creation longer than the caller was willing to wait.
    case creationTimedOut(path: String, pid: Int32, seconds: Double)

    /// The path the error is about.
    public var path: String {
        switch self {
        case .system(let failure): failure.path
        case .notRegularFile(let path), .readOnlyFile(let path), .format(let path, _),
            .geometryMismatch(let path, _, _), .creatorDied(let path, _), .creationTimedOut(let path, _, _):
            path
        }
    }

    /// The `errno` a C caller sees for this error.
    public var errnoValue: Errno {
        switch self {
        case .system(let failure): failure.errno
        case .notRegularFile: .isDirectory
        case .readOnlyFile: .permissionDenied
        case .format, .geometryMismatch, .creatorDied: .invalidArgument
        case .creationTimedOut: .timedOut
        }
    }

    /// What is wrong, without the path.
    public var reason: String {
        switch self {
        case .system(let failure): failure.reason
        case .notRegularFile: "not a regular file"
        case .readOnlyFile: "file is read-only (no write permission bits)"
        case .format(_, let error): error.description
        case .geometryMismatch(_, let file, let requested):
            "file has geometry \(file), but \(requested) was requested"
        case .creatorDied(_, let pid):
            "the process that was creating it (pid \(pid)) died mid-way; remove the file and retry"
        case .creationTimedOut(_, let pid, let seconds):
            "still being created by pid \(pid) after \(seconds) s"
        }
    }

    public var description: String { "\(path): \(reason)" }
}

/// Why an allocation failed.
public enum AllocationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The request (plus the 8-byte header) is larger than a block, or negative.
    case tooLarge(requested: Int, largest: Int)
    /// No block has a free node of the size needed.
    case outOfSpace(requested: Int)

    public var description: String {
        switch self {
        case .tooLarge(let requested, let largest):
            "request of \(requested) bytes exceeds the largest allocation (\(largest) bytes)"
        case .outOfSpace(let requested): "no free node for \(requested) bytes: the cache is full"
        }
    }
}

/// Why a free was refused. A refused free changes nothing in the cache.
public enum FreeError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The offset is outside the data region or inside the null region.
    case outOfRange(ShmOffset)
    /// The offset is not where an allocation's usable bytes could start.
    case misaligned(ShmOffset)
    /// The 8 bytes before the offset are not a valid allocation header (overwritten, or never one).
    case corruptedHeader(ShmOffset)
    /// The node is free: a double free, or a stale offset.
    case notAllocated(ShmOffset)
    /// The offset lies inside a larger allocation.
    case insideAllocation(ShmOffset)

    public var offset: ShmOffset {
        switch self {
        case .outOfRange(let offset), .misaligned(let offset), .corruptedHeader(let offset),
            .notAllocated(let offset), .insideAllocation(let offset):
            offset
        }
    }

    public var description: String {
        switch self {
        case .outOfRange(let offset): "free of \(offset): outside the allocatable region"
        case .misaligned(let offset): "free of \(offset): not the start of an allocation"
        case .corruptedHeader(let offset): "free of \(offset): the allocation header is corrupted"
        case .notAllocated(let offset): "free of \(offset): not allocated (double free?)"
        case .insideAllocation(let offset): "free of \(offset): points inside another allocation"
        }
    }
}
