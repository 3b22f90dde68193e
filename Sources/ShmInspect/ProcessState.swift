// Whether the process that owns allocations can still free them.
//
// `kill(pid, 0)` only says that a pid is in use: a zombie (exited, not yet reaped by its parent)
// passes, and so does an unrelated process that was given the pid after the owner died. Neither
// will ever free the owner's allocations. `/proc/<pid>/stat` tells both apart: its state field
// names a zombie, and its start time (clock ticks after boot) names one process for good, since
// a pid is reused only by a process started later. A caller that recorded an owner's start time
// passes it as `expectedStartTime`; today's allocation headers hold only the pid, so the
// inspector passes nil until the file records start times too.

import ShmFormat
import ShmSystem

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// What became of the process with a pid: running, exited but not reaped, or gone.
public enum ProcessState: String, Hashable, Sendable, Codable {
    /// It runs (or is stopped, sleeping, traced …): it may still free what it holds.
    case alive
    /// It has exited and its parent has not reaped it yet: it will never free anything again.
    case zombie
    /// No such process, or the pid now belongs to another process.
    case dead

    /// The state of process `pid` now; `.dead` when `expectedStartTime` is given and the process
    /// with that pid started at another time (the pid was reused). Start times are compared on
    /// their low 32 bits, as the cache's owner table stores them (``OwnerTable``).
    ///
    /// Reads `/proc/<pid>/stat`. Where `/proc` hides the pid (mounted with `hidepid`, or not
    /// mounted), `kill(pid, 0)` decides between `.alive` and `.dead`, and a start time cannot be
    /// checked: an owner is then never declared dead while its pid is in use.
    public init(pid: Int32, expectedStartTime: UInt64? = nil) {
        guard pid > 0 else {
            self = .dead
            return
        }
        guard let status = Self.statLine(ofProcess: pid) else {
            // EPERM: the pid exists, but this process may not signal it.
            self = kill(pid, 0) == 0 || errno == EPERM ? .alive : .dead
            return
        }
        if let expectedStartTime, !OwnerTable.isSameStartTime(status.startTime, expectedStartTime) {
            self = .dead
            return
        }
        self.init(status)
    }

    /// The state a stat line's state letter means.
    init(_ status: ProcessStatLine) {
        if status.state == UInt8(ascii: "Z") {
            self = .zombie
        } else {
            self = status.hasExited ? .dead : .alive
        }
    }

    /// When process `pid` started, in clock ticks after boot (`sysconf(_SC_CLK_TCK)` a second;
    /// field 22 of `/proc/<pid>/stat`); `nil` when it cannot be read. With the pid it names one
    /// process for good.
    public static func startTime(ofProcess pid: Int32) -> UInt64? {
        guard pid > 0 else { return nil }
        return statLine(ofProcess: pid)?.startTime
    }

    /// The command name of process `pid` (`/proc/<pid>/comm`: the executable's name, at most 15
    /// bytes, unless the process renamed itself), while a process with that pid exists; `nil`
    /// otherwise. Check its start time as well to know it is the same process as before.
    public static func commandName(ofProcess pid: Int32) -> String? {
        guard pid > 0, let bytes = contents(of: "/proc/\(pid)/comm") else { return nil }
        // The kernel ends the name with a newline.
        return String(decoding: bytes.last == UInt8(ascii: "\n") ? bytes.dropLast() : bytes[...], as: UTF8.self)
    }

    /// `/proc/<pid>/stat`, parsed; `nil` when there is no such file or it does not parse.
    static func statLine(ofProcess pid: Int32) -> ProcessStatLine? {
        contents(of: "/proc/\(pid)/stat")?.withUnsafeBytes { ProcessStatLine(parsing: $0) }
    }

    /// The whole contents of a small file under `/proc` (at most 4 KiB, which every `stat` and
    /// `comm` file fits), or `nil` when it cannot be opened or read.
    ///
    /// The C functions `open`, `read` (each retried on `EINTR`) and `close`.
    static func contents(of path: String) -> [UInt8]? {
        guard let descriptor = try? FileDescriptor.open(path, .readOnly, options: [.closeOnExec]) else { return nil }
        defer { try? descriptor.close() }
        // `/proc` files are generated per read call, so one read may return less than all: `read`
        // repeats until the buffer is full or the file ends.
        return try? [UInt8](unsafeUninitializedCapacity: 4096) { buffer, initialised throws(Errno) in
            initialised = try descriptor.read(into: UnsafeMutableRawBufferPointer(buffer))
        }
    }
}
