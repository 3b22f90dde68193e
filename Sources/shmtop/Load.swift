import ArgumentParser
import ShmAlloc
import ShmInspect
import ShmPathCache
import ShmSystem
import ShmWorkloads

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension Shmtop {
    /// `shmtop load`: the demo workload, N writer processes growing and shrinking the cache.
    struct Load: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run writer processes that insert, keep, verify and free path names.",
            discussion: """
                Each writer is a separate process (this program re-executed as a hidden `worker`). Writers \
                store realistic file paths (8 B to 1016 B, skewed like real paths), verify their bytes \
                before freeing them, and follow a grow-and-shrink cycle between 20 % and 100 % of --fill, \
                so a watched heatmap moves. On exit or Ctrl-C every writer frees what it holds and the \
                totals are printed; any verification error makes the exit status 1, else Ctrl-C (SIGINT) \
                makes it 130 and SIGTERM 143, as for `demo` and `watch`. With --paths, each writer also checks \
                real paths of this system in the cache's shared path cache before each allocation, as a traced \
                process does before opening a file, and caches a verdict on a miss; at the end it verifies every \
                verdict it inserted, and the totals include the searches, the hit rate and the cached entries.
                """
        )

        @OptionGroup var file: CachePathArgument
        @OptionGroup var workload: WorkloadOptions

        func run() throws {
            StopSignals.install()
            let path = try file.resolved()
            // Refuse a bad file with one line before starting anyone.
            _ = try failingWithOneLine { () throws(InspectError) in try CacheInspector(path: path) }
            let executable = ChildProcess.currentExecutable
            var workers: [(process: ChildProcess, output: Int32)] = []
            let writers = workload.writers
            for index in 0..<writers {
                let pipeEnds: (read: Int32, write: Int32)
                do { pipeEnds = try ChildProcess.makePipe() } catch { throw failure(path, "pipe: \(error)") }
                let arguments = ["worker", path, "--index", "\(index)"] + workload.arguments
                let process: ChildProcess
                do {
                    process = try ChildProcess.spawn(
                        executable, arguments, standardOutput: pipeEnds.write, blocking: StopSignals.signals)
                } catch {
                    for worker in workers { worker.process.send(SIGTERM) }
                    throw failure(path, "cannot start a writer: \(error)")
                }
                close(pipeEnds.write)
                workers.append((process, pipeEnds.read))
            }
            let pids = workers.map { String($0.process.pid) }.joined(separator: " ")
            FileDescriptor.standardOutput.writeLine(
                "load: \(Format.counted(writers, "writer")) on \(path) (pids \(pids)); Ctrl-C stops")

            // Wait; pass a stop on to writers that did not get the terminal's SIGINT themselves.
            var endings: [Int32: ChildProcess.Termination] = [:]
            var forwarded = false
            while endings.count < workers.count {
                for worker in workers where endings[worker.process.pid] == nil {
                    if let ending = worker.process.poll() { endings[worker.process.pid] = ending }
                }
                if StopSignals.requested, !forwarded {
                    for worker in workers { worker.process.send(SIGINT) }
                    forwarded = true
                }
                var pause = timespec(tv_sec: 0, tv_nsec: 20_000_000)
                nanosleep(&pause, nil)
            }

            var total = WorkloadSummary()
            var problems: [String] = []
            for worker in workers {
                let output = String(decoding: ChildProcess.readAll(worker.output), as: UTF8.self)
                close(worker.output)
                let ending = endings[worker.process.pid]!
                if let summary = output.split(separator: "\n").last.flatMap({ WorkloadSummary(line: String($0)) }) {
                    total = total + summary
                } else {
                    problems.append("writer \(worker.process.pid) reported nothing (\(ending))")
                }
                if !ending.isSuccess { problems.append("writer \(worker.process.pid): \(ending)") }
            }
            FileDescriptor.standardOutput.writeLine("load: \(total.line)")
            if workload.paths {
                let figures = pathFigures(total.paths, path: path, problems: &problems)
                FileDescriptor.standardOutput.writeLine("load: \(figures)")
            }
            for problem in problems { printError("shmtop: \(path): \(problem)") }
            if total.verificationErrors > 0 || total.invalidFrees > 0 || total.paths.errors > 0 || !problems.isEmpty {
                throw ExitCode.failure
            }
            try StopSignals.exitIfRequested()
        }

        /// The path checks' totals in words, with the entries the path cache holds now; a path
        /// cache that cannot be read or walks to invalid slots is a problem.
        private func pathFigures(_ figures: PathCheckSummary, path: String, problems: inout [String]) -> String {
            let hitRate = Format.percent(figures.searches > 0 ? Double(figures.hits) / Double(figures.searches) : 0)
            var entries = "?"
            do {
                let census = try PathCache(cache: SharedCache(path: path, policy: .attach)).census()
                entries = "\(census.entries)"
                if census.invalidSlots > 0 { problems.append("path cache: \(census.invalidSlots) invalid slots") }
            } catch {
                problems.append("path cache: \(error)")
            }
            let verified = "\(figures.verified) of \(figures.verdicts) verdicts inserted found with their flags"
            let searched = "\(figures.searches) searches, \(figures.hits) hits (hit rate \(hitRate))"
            return "path cache: \(searched), \(entries) entries; \(verified)"
        }

        private func failure(_ path: String, _ what: String) -> ExitCode {
            printError("shmtop: \(path): \(what)")
            return .failure
        }
    }
}

/// Writes one line to standard error, unbuffered (see `FileDescriptor.writeLine`).
func printError(_ line: String) { FileDescriptor.standardError.writeLine(line) }
