import ArgumentParser
import Foundation
import ShmAlloc
import ShmFormat
import ShmInspect
import ShmSystem
import ShmTUI
import ShmWorkloads

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension Shmtop {
    /// `shmtop demo`: a cache, writers on it, and the live view.
    struct Demo: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a cache, run `load` on it, and show it live.",
            discussion: """
                The writers allocate and free as `load` does and check real paths in the shared path cache \
                (`load --paths`). Without --file the cache is a temporary file (default geometry) removed at \
                the end. Opens the live view (`shmtop watch`), refreshed every --interval seconds; without a \
                terminal, prints a snapshot every --interval seconds instead. q or Ctrl-C stops the writers \
                and exits (Ctrl-C with status 130, SIGTERM with 143).
                """
        )

        @Option(help: ArgumentHelp("The cache file to create or reuse (default: a temporary file).", valueName: "path"))
        var file: String?
        @Option(parsing: .unconditional, help: "Writer processes.")
        var writers = 2
        @Option(parsing: .unconditional, help: "Seconds between refreshes.")
        var interval: Double = 0.1
        @Option(parsing: .unconditional, help: "Stop after this many seconds; 0 runs until Ctrl-C or q.")
        var seconds: Double = 0
        @Flag(help: "Draw with ASCII characters only.")
        var ascii = false

        func validate() throws {
            guard (1...256).contains(writers) else { throw ValidationError("--writers must be in 1...256") }
            guard interval > 0 else { throw ValidationError("--interval must be positive") }
        }

        func run() throws {
            StopSignals.install()
            let temporary = file == nil
            let path = file ?? NSTemporaryDirectory() + "shmtop-demo-\(getpid()).shm"
            _ = try failingWithOneLine { () throws(CacheError) in
                try SharedCache(path: path, policy: .createIfNeeded(.default))
            }
            defer { if temporary { unlink(path) } }

            // In the live view, the writers' lines would land on the screen ncurses draws (a line at
            // the bottom scrolls the whole picture by one row): they go to a log, shown afterwards.
            let interactive = isatty(STDIN_FILENO) == 1 && isatty(STDOUT_FILENO) == 1
            let log = interactive ? Self.openUnlinkedLog() : nil
            let load: ChildProcess
            do {
                load = try ChildProcess.spawn(
                    ChildProcess.currentExecutable,
                    ["load", path, "--writers", "\(writers)", "--seconds", "0", "--paths"],
                    standardOutput: log, standardError: log, blocking: StopSignals.signals)
            } catch {
                if let log { close(log) }
                printError("shmtop: \(path): cannot start the load: \(error)")
                throw ExitCode.failure
            }
            defer {
                load.send(SIGINT)
                _ = load.wait()
                if let log { Self.copyToStandardOutput(log) }
            }
            if interactive {
                let options = WatchOptions(
                    path: path, interval: .milliseconds(Int(interval * 1000)), ascii: ascii,
                    duration: seconds > 0 ? .milliseconds(Int(seconds * 1000)) : nil)
                let exit = try failingWithOneLine { () throws(WatchError) in try LiveView.run(options) }
                if exit.status != 0 { throw ExitCode(exit.status) }
                return
            }
            let inspector = try failingWithOneLine { () throws(InspectError) in try CacheInspector(path: path) }
            let text = SnapshotText(ascii: ascii || !SnapshotText.localeIsUTF8(), width: 64, maxRows: 8)
            let start = ContinuousClock.now
            var previous: CacheSnapshot?
            while !StopSignals.requested, !quitTyped(), load.poll() == nil {
                if seconds > 0, ContinuousClock.now - start >= .milliseconds(Int(seconds * 1000)) { break }
                let snapshot = try failingWithOneLine { () throws(InspectError) in try inspector.snapshot() }
                let statistics = CacheStatistics(snapshot)
                var frame =
                    "\u{1B}[H\u{1B}[2J" + text.title(snapshot) + text.memory(statistics) + text.sizeClasses(statistics)
                frame += text.owners(statistics) + text.health(statistics)
                if let previous {
                    let rates = SnapshotRates(from: previous, to: snapshot)
                    frame += String(
                        format: "Rates: %.0f allocations/s · %.0f frees/s · net %@/s · %d blocks changed\n",
                        rates.allocationsPerSecond, rates.freesPerSecond,
                        "\(ByteCount(Int(rates.netBytesPerSecond)))", rates.blocksChanged)
                }
                frame += text.heatmap(snapshot) + "Ctrl-C or q+Enter stops.\n"
                print(frame, terminator: "")
                fflush(nil)  // all streams: `stdout` itself is shared mutable state to Swift 6
                previous = snapshot
                StopSignals.sleep(seconds: interval)
            }
            try StopSignals.exitIfRequested()
        }

        /// A temporary file already unlinked (it vanishes with its last descriptor), for the load's
        /// output while the live view owns the terminal; `nil` when none can be made (the lines
        /// then go to the terminal as before).
        private static func openUnlinkedLog() -> Int32? {
            // A fresh name (`mkstemps` creates it exclusively), so no file planted at a path is touched.
            var template = Array((NSTemporaryDirectory() + "shmtop-demo-XXXXXX.log").utf8CString)
            let descriptor = mkstemps(&template, 4)
            guard descriptor >= 0 else { return nil }
            unlink(template)
            // Only the writers get it, as their standard output; nothing else this process starts.
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
            return descriptor
        }

        /// Writes what `log` holds to standard output and closes it.
        private static func copyToStandardOutput(_ log: Int32) {
            defer { close(log) }
            // The writers shared this descriptor's offset, which they left at the end.
            guard lseek(log, 0, SEEK_SET) == 0 else { return }
            let text = String(decoding: ChildProcess.readAll(log), as: UTF8.self)
            if !text.isEmpty {
                FileDescriptor.standardOutput.writeLine(String(text.dropLast(text.hasSuffix("\n") ? 1 : 0)))
            }
        }

        /// True when a line starting with `q` is waiting on standard input (checked without blocking).
        private func quitTyped() -> Bool {
            var descriptor = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 0) == 1, descriptor.revents & Int16(POLLIN) != 0 else { return false }
            var byte: UInt8 = 0
            guard read(STDIN_FILENO, &byte, 1) == 1 else { return false }
            return byte == UInt8(ascii: "q")
        }
    }
}
