// What the ShmAlloc tests share: scratch files, child processes, and whole-cache checks.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Foundation
import ShmAlloc
import ShmFormat
import ShmInspect
import Testing
import ShmSystem

// MARK: - Scratch files

/// A fresh directory under the system's temporary directory, removed when the value goes away.
final class ScratchDirectory: Sendable {
    let path: String

    init() throws {
        var template = Array((NSTemporaryDirectory() + "/shmtop-test-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        path = String(cString: made)
    }

    /// A path inside the directory (nothing is created).
    func file(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Creates a cache file with `geometry` and returns it opened read-write.
func makeCache(at path: String, geometry: Geometry) throws -> SharedCache {
    try SharedCache(path: path, policy: .require(geometry))
}

// MARK: - Where the built products are

enum BuiltProducts {
    /// The directory SwiftPM built the test bundle into; executables and libraries of the package
    /// that the test target depends on sit next to it.
    static let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
    static let helper = directory + "/shm-test-helper"
    static let shmtop = directory + "/shmtop"
    /// The package root, from this file's location (Tests/ShmAllocTests/Support/).
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
}

// MARK: - Child processes

/// How a child process ended.
enum Termination: Equatable, CustomStringConvertible {
    case exited(Int32)
    case signalled(Int32)
    /// It did not finish before the deadline and was killed.
    case timedOut

    var description: String {
        switch self {
        case .exited(let status): "exit \(status)"
        case .signalled(let signal): "signal \(signal)"
        case .timedOut: "timed out (killed)"
        }
    }
}

/// A helper process of a test, its output (stdout and stderr) going to a file. Started with the
/// project's spawner (`ShmSystem.ChildProcess`: empty signal mask, default dispositions), which
/// Swift Testing needs, as its threads block most signals and children would inherit that.
final class ChildProcess {
    private let process: ShmSystem.ChildProcess
    let outputPath: String
    private(set) var termination: Termination?
    var pid: pid_t { process.pid }

    init(_ executable: String, _ arguments: [String], outputPath: String) throws {
        self.outputPath = outputPath
        let output = open(outputPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        let input = open("/dev/null", O_RDONLY | O_CLOEXEC)
        guard output >= 0, input >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(output); close(input) }
        process = try ShmSystem.ChildProcess.spawn(
            executable, arguments, standardOutput: output, standardError: output, standardInput: input)
    }

    /// Reaps the child if it has ended; never blocks.
    @discardableResult
    func poll() -> Termination? {
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
    func wait(timeout: Duration) -> Termination {
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

    /// Sends SIGKILL without reaping: until `poll` or `wait`, the child is a zombie.
    func killLeavingZombie() { process.send(SIGKILL) }

    /// Sends SIGKILL and reaps the child.
    func killNow() {
        guard termination == nil else { return }
        process.send(SIGKILL)
        _ = process.wait()
        termination = .signalled(SIGKILL)
    }

    /// Everything the child wrote to stdout and stderr.
    var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    /// The last lines of the output, for failure messages (a failing worker can print thousands).
    var outputTail: String { output.split(separator: "\n").suffix(20).joined(separator: "\n") }

    /// The `key=value` words of the child's last output line that has any.
    var results: [String: String] {
        let line = output.split(separator: "\n").last { $0.contains("=") } ?? ""
        return Dictionary(line.split(separator: " ").compactMap { word in
            let parts = word.split(separator: "=", maxSplits: 1)
            return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
        }, uniquingKeysWith: { _, last in last })
    }

    /// An integer result, or -1 when the child did not report it.
    func result(_ key: String) -> Int { results[key].flatMap { Int($0) } ?? -1 }
}

/// Runs `executable` to the end (or to `timeout`) and returns how it ended and what it printed.
func runToEnd(
    _ executable: String, _ arguments: [String], in scratch: ScratchDirectory, timeout: Duration = .seconds(60)
) throws -> ChildProcess {
    let child = try ChildProcess(executable, arguments, outputPath: scratch.file("output-\(UUID().uuidString)"))
    child.wait(timeout: timeout)
    return child
}

// MARK: - Whole-cache checks

extension SharedCache {
    /// Every block's buddy word, in block order.
    var allWords: [UInt64] { (0..<geometry.blockCount).map { word(ofBlock: $0) } }

    /// The blocks whose word breaks the buddy invariant (or, in the null region, is not full).
    var invalidBlocks: [Int] {
        let tree = geometry.tree
        return allWords.indices.filter { block in
            let word = word(ofBlock: block)
            return block < layout.nullBlockCount ? word != tree.fullWord : !tree.isValid(word)
        }
    }

    /// The blocks past the null region that still hold any allocation.
    var usedBlocks: [Int] {
        (layout.nullBlockCount..<geometry.blockCount).filter { word(ofBlock: $0) != 0 }
    }
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
func poll(timeout: Duration, interval: Duration = .milliseconds(2), _ condition: () -> Bool) -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        usleep(UInt32(interval.components.attoseconds / 1_000_000_000_000))
    }
    return condition()
}
