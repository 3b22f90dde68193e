// The command line's own answers: the version, and mistakes reported with the subcommand's usage.

import Foundation
import ShmFormat
import ShmTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("shmtop command line")
struct CommandLineTests {
    /// `shmtop ARGUMENTS` without `SHM_FILE` (a default path would hide a missing one).
    func shmtop(_ arguments: [String]) throws -> TestProcess {
        try runToEnd("/usr/bin/env", ["-u", "SHM_FILE", BuiltProducts.shmtop] + arguments)
    }

    /// Checks that `result` is a usage error: exit status 64, `message` on standard error, then
    /// the usage line of `subcommand` (not the root's `shmtop <subcommand>`).
    func expectUsageError(
        _ result: TestProcess, _ message: String, subcommand: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(result.termination == .exited(64), "\(result.error)", sourceLocation: sourceLocation)
        let lines = result.error.split(separator: "\n")
        #expect(lines.first == "Error: \(message)"[...], "\(result.error)", sourceLocation: sourceLocation)
        #expect(
            lines.contains { $0.hasPrefix("Usage: shmtop \(subcommand) ") }, "\(result.error)",
            sourceLocation: sourceLocation)
        #expect(
            result.error.contains("See 'shmtop \(subcommand) --help'"), "\(result.error)",
            sourceLocation: sourceLocation)
        #expect(!result.error.contains("<subcommand>"), "\(result.error)", sourceLocation: sourceLocation)
        #expect(result.output.isEmpty, sourceLocation: sourceLocation)
    }

    @Test("--version prints the version and nothing else")
    func version() throws {
        let result = try shmtop(["--version"])
        #expect(result.termination == .exited(0))
        #expect(result.output.range(of: #"^\d+\.\d+\.\d+\n$"#, options: .regularExpression) != nil, "\(result.output)")
        #expect(result.error.isEmpty)
    }

    @Test("checks made while running report the subcommand's usage: an impossible geometry, a missing path")
    func subcommandUsage() throws {
        let file = TemporaryFile("usage")
        defer { file.remove() }
        expectUsageError(
            try shmtop(["create", file.path, "--min-size", "3"]),
            "min size 3 must be a power of two of at least 16 bytes",
            subcommand: "create")
        #expect(access(file.path, F_OK) != 0, "nothing created")
        expectUsageError(
            try shmtop(["snapshot"]), "no cache file given: pass PATH or set SHM_FILE", subcommand: "snapshot")
    }

    @Test("negative and out-of-range numbers are named as such, with the subcommand's usage")
    func numbersOutOfRange() throws {
        let file = TemporaryFile("range")
        defer { file.remove() }
        let geometry = try Geometry(minSize: 32, maxSize: 1024, capacity: 1 << 20)
        _ = try file.createCache(geometry)
        expectUsageError(
            try shmtop(["snapshot", "--block", "999999999", file.path]), "block 999999999 is out of range (0..<1024)",
            subcommand: "snapshot")
        expectUsageError(
            try shmtop(["snapshot", file.path, "--block", "1024"]), "block 1024 is out of range (0..<1024)",
            subcommand: "snapshot")
        expectUsageError(
            try shmtop(["snapshot", file.path, "--block", "-1"]), "block -1 is negative: blocks are numbered from 0",
            subcommand: "snapshot")
        expectUsageError(
            try shmtop(["watch", file.path, "--seconds", "-1"]), "--seconds must not be negative", subcommand: "watch")
        expectUsageError(
            try shmtop(["load", file.path, "--writers", "-2"]), "--writers must be in 1...256", subcommand: "load")
        expectUsageError(
            try shmtop(["create", file.path, "--capacity", "-4KiB"]),
            "capacity -4096 must be positive and at most 1 TiB",
            subcommand: "create")
        // The last block is in range.
        let last = try shmtop(["snapshot", file.path, "--block", "1023"])
        #expect(last.termination == .exited(0), "\(last.error)")
        #expect(last.output.contains("Block 1023"), "\(last.output.suffix(500))")
    }
}
