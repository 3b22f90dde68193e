// Process control for the tools (the command line, the benchmarks, the tests): not part of the C
// library's core, which links ShmSystem/Core alone, so this folder may use Glibc and the standard
// library's full runtime.
//
// Starting helper processes the way this project needs them: posix_spawn with an empty signal mask.
//
// Why not Foundation.Process: a child that outlives its parent's wait (a daemon) keeps a descriptor
// Foundation watches, so `waitUntilExit()` can hang. Why the empty mask: a child inherits its
// parent's blocked signals, and test runners (Swift Testing) block most of them, which would make
// workers deaf to SIGINT and SIGTERM. posix_spawn with POSIX_SPAWN_SETSIGMASK avoids both.

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A process started with `posix_spawn`, its signal mask empty (or as chosen) and its signal
/// dispositions reset.
public struct ChildProcess: Hashable, Sendable {
    /// The child's pid.
    public let pid: pid_t

    /// How a child ended.
    public enum Termination: Hashable, Sendable, CustomStringConvertible {
        /// It called `exit` with this status.
        case exited(Int32)
        /// A signal ended it.
        case signalled(Int32)

        /// True for `exit(0)`.
        public var isSuccess: Bool { self == .exited(0) }

        public var description: String {
            switch self {
            case .exited(let status): "exit status \(status)"
            case .signalled(let signal): "killed by signal \(signal)"
            }
        }
    }

    /// Starts `executable` (a path) with `arguments` (not including argv[0]).
    ///
    /// - Parameters:
    ///   - standardOutput: a descriptor to become the child's stdout; `nil` keeps this process's.
    ///   - standardError: a descriptor to become the child's stderr; `nil` keeps this process's.
    ///   - standardInput: a descriptor to become the child's stdin; `nil` keeps this process's.
    ///   - closing: descriptors the child must not inherit (e.g. the other end of a pipe).
    ///   - blocking: signals the child starts with blocked (all others unblocked). A child that
    ///     installs handlers and then unblocks them cannot be killed by a signal that arrives while
    ///     it starts up: the signal waits, pending, for its handler.
    public static func spawn(
        _ executable: String, _ arguments: [String], standardOutput: Int32? = nil, standardError: Int32? = nil,
        standardInput: Int32? = nil, closing: [Int32] = [], blocking: [Int32] = []
    ) throws(Errno) -> ChildProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let standardOutput { posix_spawn_file_actions_adddup2(&actions, standardOutput, STDOUT_FILENO) }
        if let standardError { posix_spawn_file_actions_adddup2(&actions, standardError, STDERR_FILENO) }
        if let standardInput { posix_spawn_file_actions_adddup2(&actions, standardInput, STDIN_FILENO) }
        for descriptor in closing { posix_spawn_file_actions_addclose(&actions, descriptor) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in blocking { sigaddset(&mask, signal) }
        posix_spawnattr_setsigmask(&attributes, &mask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGALRM, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard result == 0 else { throw Errno(rawValue: result) }
        return ChildProcess(pid: pid)
    }

    /// Sends `signal` to the child (ignoring a child that is already gone).
    public func send(_ signal: Int32) {
        _ = kill(pid, signal)
    }

    /// Waits for the child to end.
    public func wait() -> Termination {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        return Self.termination(status)
    }

    /// The termination of the child if it has ended, without waiting; `nil` while it runs.
    public func poll() -> Termination? {
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        return result == pid ? Self.termination(status) : nil
    }

    /// Decodes a `waitpid` status (the W* macros are not imported into Swift).
    private static func termination(_ status: Int32) -> Termination {
        let signal = status & 0x7F
        return signal == 0 ? .exited((status >> 8) & 0xFF) : .signalled(signal)
    }

    /// The absolute path of the running executable, for re-executing it as a worker.
    public static var currentExecutable: String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return CommandLine.arguments[0] }
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A pipe whose ends close on `exec`, so that children spawned meanwhile (by other threads) do not
    /// inherit them and keep the pipe open; `spawn`'s `dup2` makes the chosen end survive in its child.
    /// (`pipe2` is not imported from Glibc, hence `pipe` and `fcntl`.)
    public static func makePipe() throws(Errno) -> (read: Int32, write: Int32) {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw Errno(rawValue: errno) }
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        return (ends[0], ends[1])
    }

    /// Reads everything from `descriptor` until end of file.
    public static func readAll(_ descriptor: Int32) -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(descriptor, &chunk, chunk.count)
            if count < 0, errno == EINTR { continue }
            if count <= 0 { return result }
            result += chunk[..<count]
        }
    }
}
