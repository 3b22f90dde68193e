// ShmSystem: the one system layer, thin typed wrappers over the C library's system calls, used by
// the allocator, the inspector and the tools. It must not import ShmFormat or anything above it.
// Its Core folder compiles in both builds that share it, the Swift library and the runtime-free C
// library (Embedded Swift, which links this folder alone), so it imports only `CShmSystem` and the
// standard library: no Foundation, no swift-system, no existentials, no untyped `throws`.
// Processes (child processes, signal routing) serves the tools and is free of that rule.

import CShmSystem

/// An error number from a failed system call, as the C library reports it in `errno`.
///
/// The static members name the values this project meets, spelled as swift-system spells them.
public struct Errno: RawRepresentable, Error, Hashable, Sendable, CustomStringConvertible {
    /// The C value, such as `ENOENT`.
    public let rawValue: Int32

    @inlinable public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The calling thread's current `errno`, read right after a call failed.
    @inlinable public static var current: Errno { Errno(rawValue: shm_errno()) }

    /// Sets the calling thread's `errno`, as a C caller expects after a failed call.
    @inlinable public static func setCurrent(_ errno: Errno) { shm_set_errno(errno.rawValue) }

    /// `ENOENT`.
    public static var noSuchFileOrDirectory: Errno { Errno(rawValue: ENOENT) }
    /// `EINTR`: the call was interrupted by a signal before it did anything.
    public static var interrupted: Errno { Errno(rawValue: EINTR) }
    /// `EIO`.
    public static var ioError: Errno { Errno(rawValue: EIO) }
    /// `EAGAIN`, which is also `EWOULDBLOCK` on Linux.
    public static var wouldBlock: Errno { Errno(rawValue: EAGAIN) }
    /// `ENOMEM`.
    public static var noMemory: Errno { Errno(rawValue: ENOMEM) }
    /// `EACCES`.
    public static var permissionDenied: Errno { Errno(rawValue: EACCES) }
    /// `EEXIST`.
    public static var fileExists: Errno { Errno(rawValue: EEXIST) }
    /// `EISDIR`.
    public static var isDirectory: Errno { Errno(rawValue: EISDIR) }
    /// `EINVAL`.
    public static var invalidArgument: Errno { Errno(rawValue: EINVAL) }
    /// `EMFILE`.
    public static var tooManyOpenFiles: Errno { Errno(rawValue: EMFILE) }
    /// `ENAMETOOLONG`.
    public static var fileNameTooLong: Errno { Errno(rawValue: ENAMETOOLONG) }
    /// `ETIMEDOUT`.
    public static var timedOut: Errno { Errno(rawValue: ETIMEDOUT) }

    /// The C library's message for the value, lower-cased to sit inside a sentence
    /// ("no such file or directory").
    ///
    /// The C function is `strerror` (glibc's answers a string that stays valid).
    public var description: String {
        guard let message = strerror(rawValue) else { return "error \(rawValue)" }
        // ASCII lower-casing by hand: the messages are ASCII, and `lowercased()` would pull the
        // Unicode tables into the runtime-free build.
        var bytes: [UInt8] = []
        var cursor = message
        while cursor.pointee != 0 {
            let byte = UInt8(bitPattern: cursor.pointee)
            bytes.append(byte >= 65 && byte <= 90 ? byte + 32 : byte)
            cursor += 1
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Runs `body` until it does not fail with `EINTR` (when `retryOnInterrupt`), turning `-1` into
/// the thrown `Errno`. The shape of every wrapper in this module.
func valueOrErrno<Value: FixedWidthInteger>(
    retryOnInterrupt: Bool, _ body: () -> Value
) throws(Errno) -> Value {
    while true {
        let result = body()
        if result != -1 { return result }
        let errno = Errno.current
        if retryOnInterrupt && errno == .interrupted { continue }
        throw errno
    }
}
