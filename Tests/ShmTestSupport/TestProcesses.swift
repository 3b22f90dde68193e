// Child processes of tests: the package's executables found, started, waited for and read.

import Foundation
import ShmSystem

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Where the built products are.
public enum BuiltProducts {
    /// The directory SwiftPM built the test bundle into; the executables and libraries of the
    /// package that a test target depends on sit next to it.
    public static let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
    /// The built executable or library called `name`.
    public static func path(_ name: String) -> String { directory + "/" + name }
    /// The multi-process tests' worker (`shm-test-helper`).
    public static let helper = path("shm-test-helper")
    /// The command line.
    public static let shmtop = path("shmtop")
    /// Allocates a given sequence and exits without freeing (`shm-inspect-fixture`).
    public static let fixture = path("shm-inspect-fixture")
    /// The package root, from this file's location (Tests/ShmTestSupport/).
    public static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
}

/// How a test's child process ended.
public enum Termination: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signalled(Int32)
    /// It did not finish before the deadline and was killed.
    case timedOut

    public var description: String {
        switch self {
        case .exited(let status): "exit \(status)"
        case .signalled(let signal): "signal \(signal)"
        case .timedOut: "timed out (killed)"
        }
    }
}

/// A child process of a test, its standard output and standard error each going to a file of a
/// scratch directory, its input from /dev/null. Started with the project's spawner
/// (`ShmSystem.ChildProcess`: empty signal mask, default dispositions), which Swift Testing needs,
/// as its threads block most signals and children would inherit that.
public final class TestProcess {
    private let process: ChildProcess
    private let scratch: ScratchDirectory
    private let outputPath: String, errorPath: String
    /// How it ended, once `poll` or `wait` saw it end.
    public private(set) var termination: Termination?
    /// The child's pid.
    public var pid: pid_t { process.pid }

    /// Starts `executable` with `arguments`; its output goes to files in `scratch` (a fresh scratch
    /// directory when `nil`, kept as long as this value).
    public init(_ executable: String, _ arguments: [String], in scratch: ScratchDirectory? = nil) throws {
        self.scratch = try scratch ?? ScratchDirectory()
        let name = UUID().uuidString
        outputPath = self.scratch.file("output-" + name)
        errorPath = self.scratch.file("error-" + name)
        let output = open(outputPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        let error = open(errorPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        let input = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { for descriptor in [output, error, input] where descriptor >= 0 { close(descriptor) } }
        guard output >= 0, error >= 0, input >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        process = try ChildProcess.spawn(
            executable, arguments, standardOutput: output, standardError: error, standardInput: input)
    }

    /// Reaps the child if it has ended; never blocks.
    @discardableResult
    public func poll() -> Termination? {
        if let termination { return termination }
        switch process.poll() {
        case .exited(let status)?: termination = .exited(status)
        case .signalled(let signal)?: termination = .signalled(signal)
        case nil: return nil
        }
        return termination
    }

    /// Waits until the child ends or `timeout` passes; a child still running then is killed.
    @discardableResult
    public func wait(timeout: Duration) -> Termination {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let termination = poll() { return termination }
            usleep(2_000)
        }
        if let termination = poll() { return termination }
        process.send(SIGKILL)
        _ = process.wait()
        termination = .timedOut
        return .timedOut
    }

    /// Sends `signal` to the child.
    public func send(_ signal: Int32) { process.send(signal) }

    /// Sends SIGKILL without reaping: until `poll` or `wait`, the child is a zombie.
    public func killLeavingZombie() { process.send(SIGKILL) }

    /// Sends SIGKILL and reaps the child.
    public func killNow() {
        guard termination == nil else { return }
        process.send(SIGKILL)
        _ = process.wait()
        termination = .signalled(SIGKILL)
    }

    /// What the child wrote to its standard output.
    public var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    /// What the child wrote to its standard error.
    public var error: String { (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "" }

    /// The last lines of both, for failure messages (a failing worker can print thousands).
    public var outputTail: String { (output + error).split(separator: "\n").suffix(20).joined(separator: "\n") }

    /// The `key=value` words of the last line of standard output that has any.
    public var results: [String: String] {
        let line = output.split(separator: "\n").last { $0.contains("=") } ?? ""
        return Dictionary(
            line.split(separator: " ").compactMap { word in
                let parts = word.split(separator: "=", maxSplits: 1)
                return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
            }, uniquingKeysWith: { _, last in last })
    }

    /// An integer result, or -1 when the child did not report it.
    public func result(_ key: String) -> Int { results[key].flatMap { Int($0) } ?? -1 }
}

/// Runs `executable` to its end (or to `timeout`, when it is killed) and returns how it ended and
/// what it printed. Its output files go to `scratch`, or to a scratch directory of its own.
@discardableResult
public func runToEnd(
    _ executable: String, _ arguments: [String], in scratch: ScratchDirectory? = nil, timeout: Duration = .seconds(60)
) throws -> TestProcess {
    let child = try TestProcess(executable, arguments, in: scratch)
    child.wait(timeout: timeout)
    return child
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
public func poll(timeout: Duration, interval: Duration = .milliseconds(2), _ condition: () -> Bool) -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        usleep(UInt32(interval.components.attoseconds / 1_000_000_000_000))
    }
    return condition()
}
