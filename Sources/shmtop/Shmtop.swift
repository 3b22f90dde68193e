// `shmtop`: create, load and inspect shared-memory caches.

import ArgumentParser
import Foundation
import ShmFormat

/// The root command: `shmtop <subcommand>`.
@main
struct Shmtop: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shmtop",
        abstract: "Create, load and inspect lock-free shared-memory caches.",
        discussion: "PATH defaults to the SHM_FILE environment variable wherever a command takes one.",
        version: "0.1.0",
        subcommands: [Create.self, Watch.self, Snapshot.self, Paths.self, Load.self, Demo.self, Worker.self]
    )

    /// Parses and runs a subcommand as ArgumentParser's own `main()` does, except for a
    /// `ValidationError` thrown by the subcommand's `run()` (a check that needs the file, such as
    /// a block number past the cache's last): ArgumentParser's `main()` reports those against
    /// the root command, with its `shmtop <subcommand>` usage; here they get the subcommand's.
    static func main() {
        var command: any ParsableCommand
        do { command = try parseAsRoot() } catch { exit(withError: error) }
        do {
            try command.run()
        } catch let error as ValidationError {
            let subcommand = type(of: command)
            printError("Error: \(error.message)")
            printError("Usage: \(usageString(for: subcommand))")
            printError("  See '\(configuration.commandName!) \(subcommand._commandName) --help' for more information.")
            exit(withError: ExitCode.validationFailure)
        } catch {
            exit(withError: error)
        }
    }
}

// Numeric options are parsed `.unconditional`ly: by default ArgumentParser takes a value such as
// `-1` for an option and answers "missing value", where the person needs to hear from the
// command's checks that -1 is negative or out of range.

/// A byte size on the command line: `4096`, `64KiB`, `512MiB`, `4GiB`.
struct ByteSizeArgument: ExpressibleByArgument, Sendable {
    let bytes: Int
    init(bytes: Int) { self.bytes = bytes }
    /// A size, or a negative one (`-1`, `-4KiB`): the geometry's checks then say what is out of
    /// range, where refusing to parse would only say that the value is invalid.
    init?(argument: String) {
        let negative = argument.hasPrefix("-")
        guard let parsed = ByteCount(parsing: String(argument.dropFirst(negative ? 1 : 0))) else { return nil }
        bytes = negative ? -parsed.bytes : parsed.bytes
    }
    var defaultValueDescription: String { ByteCount(bytes).description.replacingOccurrences(of: " ", with: "") }
}

/// The cache file a command works on: the argument, else `SHM_FILE`.
struct CachePathArgument: ParsableArguments {
    @Argument(help: ArgumentHelp("The cache file (default: $SHM_FILE).", valueName: "path"))
    var path: String?

    /// The path to use, or a validation error naming both ways to give one.
    func resolved() throws -> String {
        if let path { return path }
        if let fromEnvironment = ProcessInfo.processInfo.environment["SHM_FILE"], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        throw ValidationError("no cache file given: pass PATH or set SHM_FILE")
    }
}
