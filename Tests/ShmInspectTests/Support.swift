// Shared helpers: temporary cache files, the built executables, running them with captured output.

#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ShmAlloc
import ShmFormat
import ShmInspect
import ShmSystem
/// A temporary path that is removed when the value goes away (use it with `defer { file.remove() }`).
struct TemporaryFile {
    let path: String

    init(_ name: String = "cache") {
        path = NSTemporaryDirectory() + "shminspect-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).shm"
    }

    func remove() { unlink(path) }

    /// Creates a cache file here with `geometry`, mapped read-write by this process.
    func createCache(_ geometry: Geometry) throws -> SharedCache {
        try SharedCache(path: path, policy: .require(geometry))
    }

    /// The file's bytes.
    func bytes() throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }
}

/// The executables the test target depends on, next to the test bundle.
enum Executable {
    static func path(_ name: String) -> String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name).path
    }
    static var shmtop: String { path("shmtop") }
    static var fixture: String { path("shm-inspect-fixture") }
}

/// What a finished child printed, and how it ended.
struct RunResult {
    let termination: ChildProcess.Termination
    let output: String
    let error: String
}

/// Runs `executable` to completion with stdout and stderr captured (posix_spawn, empty signal mask).
func run(_ executable: String, _ arguments: [String]) throws -> RunResult {
    let outputPipe = try ChildProcess.makePipe(), errorPipe = try ChildProcess.makePipe()
    let child = try ChildProcess.spawn(executable, arguments, standardOutput: outputPipe.write, standardError: errorPipe.write)
    close(outputPipe.write)
    close(errorPipe.write)
    // stderr is drained on another thread so that neither pipe can fill up while the other is read.
    let errorDescriptor = errorPipe.read
    let errorBytes = ResultBox<[UInt8]>()
    let drained = DispatchSemaphore(value: 0)
    DispatchQueue.global().async {
        errorBytes.value = ChildProcess.readAll(errorDescriptor)
        drained.signal()
    }
    let output = ChildProcess.readAll(outputPipe.read)
    close(outputPipe.read)
    let termination = child.wait()
    drained.wait()
    close(errorPipe.read)
    return RunResult(
        termination: termination, output: String(decoding: output, as: UTF8.self),
        error: String(decoding: errorBytes.value ?? [], as: UTF8.self))
}

/// A value handed from one thread to another across a semaphore.
final class ResultBox<T>: @unchecked Sendable {
    // Written once before the semaphore is signalled, read after it is waited for.
    var value: T?
}
