// Scratch space for tests: a fresh directory per test, removed with everything in it.

import Foundation
import ShmAlloc
import ShmFormat

/// A fresh directory under the system's temporary directory, removed when the value goes away.
public final class ScratchDirectory: Sendable {
    /// The directory's path.
    public let path: String

    /// Makes the directory (`mkdtemp`).
    public init() throws {
        var template = Array((NSTemporaryDirectory() + "/shmtop-test-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        path = String(cString: made)
    }

    /// A path inside the directory (nothing is created).
    public func file(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// One file path in a scratch directory of its own: the directory goes with the value, or with
/// `remove()`.
public struct TemporaryFile: Sendable {
    private let directory: ScratchDirectory
    /// The file's path (nothing is created).
    public let path: String

    /// A path named after `name` in a fresh scratch directory.
    public init(_ name: String = "cache") {
        // A scratch directory that cannot be made is a broken machine, not a test's failure.
        directory = try! ScratchDirectory()
        path = directory.file(name + ".shm")
    }

    /// Removes the file now (its directory goes when the value does).
    public func remove() { unlink(path) }

    /// Creates a cache file here with `geometry`, mapped read-write by this process.
    public func createCache(_ geometry: Geometry) throws -> SharedCache { try makeCache(at: path, geometry: geometry) }

    /// The file's bytes.
    public func bytes() throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }
}

/// Creates a cache file with `geometry` at `path` and returns it opened read-write.
public func makeCache(at path: String, geometry: Geometry) throws -> SharedCache {
    try SharedCache(path: path, policy: .require(geometry))
}
