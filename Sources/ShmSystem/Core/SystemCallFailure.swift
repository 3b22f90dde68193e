// A failed system call, told as a person reads it: the one case every error of a file shares.

/// A system call that failed on a file: which file, which call and its `errno`. The error types of
/// the allocator and the inspector wrap it, so the words are the same wherever a call fails.
public struct SystemCallFailure: Error, Hashable, Sendable, CustomStringConvertible {
    /// The file the call was about.
    public let path: String
    /// The C function that failed, such as `"open"` or `"mmap"`.
    public let operation: String
    /// What it set `errno` to.
    public let errno: Errno

    /// The failure of `operation` on `path` with `errno`.
    public init(path: String, operation: String, errno: Errno) {
        self.path = path
        self.operation = operation
        self.errno = errno
    }

    /// What went wrong, without the path: "open: no such file or directory".
    public var reason: String { "\(operation): \(errno)" }

    /// "path: operation: message".
    public var description: String { "\(path): \(reason)" }
}
