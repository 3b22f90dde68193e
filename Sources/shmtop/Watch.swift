// `shmtop watch`: the live inspector (the view itself lives in ShmTUI).

import ArgumentParser
import Foundation
import ShmTUI

extension Shmtop {
    /// `shmtop watch`: a full-screen live view of a cache.
    struct Watch: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Watch a cache live: heatmap, fragmentation panel, block drill-down.",
            discussion: """
                Opens the file read-only, never writes to it, and is safe while writers run. Needs a terminal \
                (80×24 or larger); for text output use `shmtop snapshot`. Press ? inside for the keys. \
                NO_COLOR is respected; `c` cycles 256 colours / 8 colours / monochrome.
                """
        )

        @OptionGroup var file: CachePathArgument
        @Option(parsing: .unconditional, help: "Seconds between refreshes (0.1 = 10 Hz).")
        var interval: Double = 0.1
        @Flag(help: "Draw with ASCII characters only.")
        var ascii = false
        @Option(help: ArgumentHelp("Where `s` writes snapshot files.", valueName: "directory"))
        var snapshotDirectory = "."
        @Option(parsing: .unconditional, help: "Quit by itself after this many seconds; 0 runs until q or Ctrl-C.")
        var seconds: Double = 0

        func validate() throws {
            guard interval >= 0.01, interval <= 60 else {
                throw ValidationError("--interval must be in 0.01...60 seconds")
            }
            guard seconds >= 0 else { throw ValidationError("--seconds must not be negative") }
        }

        func run() throws {
            let options = WatchOptions(
                path: try file.resolved(), interval: .milliseconds(Int((interval * 1000).rounded())), ascii: ascii,
                snapshotDirectory: snapshotDirectory, duration: seconds > 0 ? .milliseconds(Int(seconds * 1000)) : nil)
            let exit = try failingWithOneLine { () throws(WatchError) in try LiveView.run(options) }
            if exit.status != 0 { throw ExitCode(exit.status) }
        }
    }
}
