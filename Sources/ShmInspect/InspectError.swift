// What can go wrong while inspecting a cache file, in the words a person reads.

import ShmFormat
import ShmSystem

/// Why a cache file could not be inspected, or can no longer be. Every case names the path.
public enum InspectError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A system call failed: which one, and its `errno`.
    case system(SystemCallFailure)
    /// The path exists but is not a regular file (a directory, a device, a socket …).
    case notRegularFile(path: String)
    /// The file is not a valid cache file, or not one this version reads.
    case format(path: String, FormatError)
    /// The file became shorter than its header describes (truncated while attached).
    case truncated(path: String, size: Int, expected: Int)
    /// The path no longer names any file: the attached file was deleted.
    case deleted(path: String)
    /// The path now names another file than the one attached (replaced, e.g. renamed over).
    case replaced(path: String)

    /// The path the error is about.
    public var path: String {
        switch self {
        case .system(let failure): failure.path
        case .notRegularFile(let path), .format(let path, _), .truncated(let path, _, _),
            .deleted(let path), .replaced(let path):
            path
        }
    }

    /// True when the file was valid once and changed under the inspector: a caller watching it
    /// may keep its last good snapshot and try to attach again later.
    public var fileChangedWhileAttached: Bool {
        switch self {
        case .truncated, .deleted, .replaced: true
        case .system, .notRegularFile, .format: false
        }
    }

    /// True when the file is shorter than its header describes: truncated while attached, or
    /// found so when attaching. A watcher waiting for the file to come back treats the two as
    /// one story.
    public var fileIsTooShort: Bool {
        switch self {
        case .truncated: true
        case .format(_, .fileSizeMismatch(let actual, let expected)): actual < expected
        case .format(_, .truncatedHeader): true
        case .system, .notRegularFile, .format, .deleted, .replaced: false
        }
    }

    /// What is wrong, without the path.
    public var reason: String {
        switch self {
        case .system(let failure): failure.reason
        case .notRegularFile: "not a regular file"
        case .format(_, let error): error.description
        case .truncated(_, let size, let expected):
            "file was truncated to \(size) bytes while attached (its header describes \(expected))"
        case .deleted: "file was deleted while attached"
        case .replaced: "file was replaced by another file while attached"
        }
    }

    public var description: String { "\(path): \(reason)" }
}
