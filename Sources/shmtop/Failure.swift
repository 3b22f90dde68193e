import ArgumentParser
import Foundation

/// Runs `body`; an error becomes one line on standard error (`shmtop: <path>: <what is wrong>`)
/// and exit status 1, instead of a stack trace.
func failingWithOneLine<Result, Failure: Error & CustomStringConvertible>(
    _ body: () throws(Failure) -> Result
) throws -> Result {
    do {
        return try body()
    } catch {
        FileHandle.standardError.write(Data("shmtop: \(error)\n".utf8))
        throw ExitCode.failure
    }
}
