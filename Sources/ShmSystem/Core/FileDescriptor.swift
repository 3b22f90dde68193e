// Files: opening, status, positioned reads and writes, size and advisory locks.

import CShmSystem

/// An open file descriptor. A plain value: closing it is the owner's job (``close()``).
public struct FileDescriptor: RawRepresentable, Hashable, Sendable {
    /// The C descriptor.
    public let rawValue: Int32

    @inlinable public init(rawValue: Int32) { self.rawValue = rawValue }

    /// How a file is opened for access.
    public enum AccessMode: Sendable {
        case readOnly, writeOnly, readWrite

        var flags: Int32 {
            switch self {
            case .readOnly: O_RDONLY
            case .writeOnly: O_WRONLY
            case .readWrite: O_RDWR
            }
        }
    }

    /// Options of ``open(_:_:options:permissions:retryOnInterrupt:)``.
    public struct OpenOptions: OptionSet, Sendable {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }

        /// `O_CREAT`: create the file when it is missing.
        public static var create: OpenOptions { OpenOptions(rawValue: O_CREAT) }
        /// `O_TRUNC`: empty the file.
        public static var truncate: OpenOptions { OpenOptions(rawValue: O_TRUNC) }
        /// `O_CLOEXEC`: children started with `exec` do not inherit the descriptor.
        public static var closeOnExec: OpenOptions { OpenOptions(rawValue: O_CLOEXEC) }
    }

    /// Opens the file at `path` (a C string).
    ///
    /// - Parameters:
    ///   - permissions: the mode bits of a file `create` makes (less the umask).
    ///   - retryOnInterrupt: try again when a signal interrupts the call (`EINTR`).
    /// - Throws: the `Errno` of `open`.
    ///
    /// The C function is `open`.
    public static func open(
        _ path: UnsafePointer<CChar>, _ mode: AccessMode, options: OpenOptions = [], permissions: UInt32 = 0o666,
        retryOnInterrupt: Bool = true
    ) throws(Errno) -> FileDescriptor {
        let descriptor = try valueOrErrno(retryOnInterrupt: retryOnInterrupt) {
            shm_open_file(path, mode.flags | options.rawValue, permissions)
        }
        return FileDescriptor(rawValue: descriptor)
    }

    /// Opens the file at `path`, as ``open(_:_:options:permissions:retryOnInterrupt:)``.
    ///
    /// The C function is `open`.
    public static func open(
        _ path: String, _ mode: AccessMode, options: OpenOptions = [], permissions: UInt32 = 0o666,
        retryOnInterrupt: Bool = true
    ) throws(Errno) -> FileDescriptor {
        try path.withCStringTyped { (cPath) throws(Errno) in
            try open(cPath, mode, options: options, permissions: permissions, retryOnInterrupt: retryOnInterrupt)
        }
    }

    /// Closes the descriptor. Not retried on `EINTR`: on Linux the descriptor is gone either way.
    ///
    /// The C function is `close`.
    public func close() throws(Errno) {
        _ = try valueOrErrno(retryOnInterrupt: false) { CShmSystem.close(rawValue) }
    }

    /// The file's status.
    ///
    /// The C function is `fstat`.
    public func status() throws(Errno) -> FileStatus {
        var status = stat()
        _ = try valueOrErrno(retryOnInterrupt: false) { fstat(rawValue, &status) }
        return FileStatus(status)
    }

    /// Reads up to `buffer.count` bytes at `offset`: all of them unless the file ends first.
    /// Returns how many were read.
    ///
    /// The C function is `pread`, repeated until the buffer is full or the file ends.
    public func read(
        at offset: Int, into buffer: UnsafeMutableRawBufferPointer, retryOnInterrupt: Bool = true
    ) throws(Errno) -> Int {
        var done = 0
        while done < buffer.count {
            let count = try valueOrErrno(retryOnInterrupt: retryOnInterrupt) {
                pread(rawValue, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            }
            if count == 0 { break }
            done += count
        }
        return done
    }

    /// Reads up to `buffer.count` bytes at the file's current position; `/proc` files answer
    /// each call afresh, so this reads until the buffer is full or the file ends.
    ///
    /// The C function is `read`, repeated until the buffer is full or the file ends.
    public func read(
        into buffer: UnsafeMutableRawBufferPointer, retryOnInterrupt: Bool = true
    ) throws(Errno) -> Int {
        var done = 0
        while done < buffer.count {
            let count = try valueOrErrno(retryOnInterrupt: retryOnInterrupt) {
                CShmSystem.read(rawValue, buffer.baseAddress! + done, buffer.count - done)
            }
            if count == 0 { break }
            done += count
        }
        return done
    }

    /// Writes all of `bytes` at `offset`.
    ///
    /// The C function is `pwrite`, repeated until every byte is written.
    public func write(
        at offset: Int, from bytes: UnsafeRawBufferPointer, retryOnInterrupt: Bool = true
    ) throws(Errno) {
        var done = 0
        while done < bytes.count {
            done += try valueOrErrno(retryOnInterrupt: retryOnInterrupt) {
                pwrite(rawValue, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            }
        }
    }

    /// Writes all of `bytes` at the file's current position (the end, for a pipe or a terminal).
    ///
    /// The C function is `write`, repeated until every byte is written.
    public func write(_ bytes: UnsafeRawBufferPointer, retryOnInterrupt: Bool = true) throws(Errno) {
        var done = 0
        while done < bytes.count {
            done += try valueOrErrno(retryOnInterrupt: retryOnInterrupt) {
                CShmSystem.write(rawValue, bytes.baseAddress! + done, bytes.count - done)
            }
        }
    }

    /// Writes `text` and a newline with one `write` where the kernel takes it whole: unbuffered,
    /// so a line is neither held back behind buffered output nor lost with the process. A failure
    /// (a closed pipe, a full disk) is dropped: there is nowhere left to report it.
    ///
    /// The C function is `write`.
    public func writeLine(_ text: String) {
        var line = text + "\n"
        line.withUTF8 { bytes in try? write(UnsafeRawBufferPointer(bytes)) }
    }

    /// Standard output (descriptor 1).
    public static var standardOutput: FileDescriptor { FileDescriptor(rawValue: STDOUT_FILENO) }
    /// Standard error (descriptor 2).
    public static var standardError: FileDescriptor { FileDescriptor(rawValue: STDERR_FILENO) }

    /// Sets the file's size: a longer file reads as zeros (and takes no disk until written).
    ///
    /// The C function is `ftruncate`.
    public func resize(to size: Int, retryOnInterrupt: Bool = true) throws(Errno) {
        _ = try valueOrErrno(retryOnInterrupt: retryOnInterrupt) { ftruncate(rawValue, off_t(size)) }
    }

    /// Tries to take the exclusive advisory lock without blocking; `false` when another open file
    /// description holds it. The kernel drops the lock when its holder dies.
    ///
    /// The C function is `flock` with `LOCK_EX | LOCK_NB`.
    public func tryLockExclusive(retryOnInterrupt: Bool = true) throws(Errno) -> Bool {
        do {
            _ = try valueOrErrno(retryOnInterrupt: retryOnInterrupt) { flock(rawValue, LOCK_EX | LOCK_NB) }
            return true
        } catch  where error == .wouldBlock {
            return false
        }
    }

    /// Releases the advisory lock.
    ///
    /// The C function is `flock` with `LOCK_UN`.
    public func unlock(retryOnInterrupt: Bool = true) throws(Errno) {
        _ = try valueOrErrno(retryOnInterrupt: retryOnInterrupt) { flock(rawValue, LOCK_UN) }
    }
}

/// What `stat` says about a file: the few fields this project reads.
public struct FileStatus: Hashable, Sendable {
    /// The size in bytes.
    public let size: Int
    /// The type and permission bits (`st_mode`).
    public let mode: UInt32
    /// The device and inode: together they name the file, whatever path leads to it.
    public let device: UInt64, inode: UInt64
    /// Hard links to the file; 0 once every path to it was removed.
    public let linkCount: Int

    init(_ status: stat) {
        size = Int(status.st_size)
        mode = UInt32(status.st_mode)
        device = UInt64(status.st_dev)
        inode = UInt64(status.st_ino)
        linkCount = Int(status.st_nlink)
    }

    /// The status of the file at `path`, following symbolic links.
    ///
    /// The C function is `stat`.
    public init(path: String) throws(Errno) {
        var status = stat()
        _ = try path.withCStringTyped { (cPath) throws(Errno) in
            try valueOrErrno(retryOnInterrupt: false) { stat(cPath, &status) }
        }
        self.init(status)
    }

    /// True for a regular file (not a directory, device, socket …).
    public var isRegularFile: Bool { shm_is_regular(mode) != 0 }
    /// True for a directory.
    public var isDirectory: Bool { shm_is_directory(mode) != 0 }
    /// True when any of the owner, group or other write bits is set.
    public var hasWritePermission: Bool { mode & 0o222 != 0 }
}

extension String {
    /// `withCString` for a body with a typed error (the standard one rethrows untyped).
    func withCStringTyped<Result>(_ body: (UnsafePointer<CChar>) throws(Errno) -> Result) throws(Errno) -> Result {
        let result: Swift.Result<Result, Errno> = withCString { cString in
            do throws(Errno) { return .success(try body(cString)) } catch { return .failure(error) }
        }
        return try result.get()
    }
}
