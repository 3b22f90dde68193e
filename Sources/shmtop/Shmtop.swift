// `shmtop`: create, load and inspect shared-memory caches.

import ArgumentParser
import Foundation
import ShmFormat

@main
struct Shmtop: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shmtop",
        abstract: "Create, load and inspect lock-free shared-memory caches.",
        discussion: "PATH defaults to the SHM_FILE environment variable wherever a command takes one.",
        subcommands: [Create.self, Watch.self, Snapshot.self, Load.self, Demo.self, Worker.self, BenchStats.self, Soak.self, SoakWriter.self]
    )
}

/// A byte size on the command line: `4096`, `64KiB`, `512MiB`, `4GiB`.
struct ByteSizeArgument: ExpressibleByArgument, Sendable {
    let bytes: Int
    init(bytes: Int) { self.bytes = bytes }
    init?(argument: String) {
        guard let parsed = ByteCount(parsing: argument) else { return nil }
        bytes = parsed.bytes
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
