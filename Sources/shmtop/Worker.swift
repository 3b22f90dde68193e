import ArgumentParser
import ShmAlloc
import ShmFormat
import ShmInspect
import ShmPathCache
import ShmWorkloads

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension Shmtop {
    /// `shmtop worker`: one writer process of `load` (hidden; `load` starts these).
    struct Worker: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One writer process of `shmtop load`.", shouldDisplay: false)

        @OptionGroup var file: CachePathArgument
        @Option(help: "This worker's number, 0-based.")
        var index = 0
        @OptionGroup var workload: WorkloadOptions

        func run() throws {
            StopSignals.install()
            let path = try file.resolved()
            let cache = try failingWithOneLine { () throws(CacheError) in try SharedCache(path: path, policy: .attach) }
            var pathChecks: PathChecks?
            if workload.paths {
                let pathCache: PathCache
                do { pathCache = try PathCache(cache: cache) } catch {
                    printError("shmtop: \(path): the cache's geometry holds no path cache (\(error))")
                    throw ExitCode.failure
                }
                let paths = SystemPaths(longest: pathCache.longestPath)
                pathChecks = PathChecks(pathCache: pathCache, paths: paths, writer: index)
            }
            var writer = Workload(cache: cache, index: index, parameters: workload.parameters, pathChecks: pathChecks)
            writer.run(seconds: workload.seconds, rate: workload.rate)
            print(writer.summary.line)
        }
    }
}

/// How `load` and its workers run: shared by both commands, passed on from one to the other.
struct WorkloadOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Writer processes.")
    var writers = 2
    @Option(parsing: .unconditional, help: "Run time in seconds; 0 runs until Ctrl-C (SIGINT) or SIGTERM.")
    var seconds: Double = 10
    @Option(parsing: .unconditional, help: "Peak share of the usable bytes the writers fill together (0...1).")
    var fill = 0.7
    @Option(
        parsing: .unconditional,
        help: "Operations (allocations + frees) per second per writer; 0 means as fast as possible.")
    var rate = 50_000
    @Option(parsing: .unconditional, help: "Seconds of one grow-and-shrink cycle.")
    var period: Double = 8
    @Flag(help: "Writers also check real paths in the shared path cache, as traced processes do, caching verdicts.")
    var paths = false

    func validate() throws {
        guard (1...256).contains(writers) else { throw ValidationError("--writers must be in 1...256") }
        guard seconds >= 0 else { throw ValidationError("--seconds must not be negative") }
        guard (0...1).contains(fill) else { throw ValidationError("--fill must be in 0...1") }
        guard rate >= 0 else { throw ValidationError("--rate must not be negative") }
        guard period > 0 else { throw ValidationError("--period must be positive") }
    }

    /// The writers' shape of the workload.
    var parameters: Workload.Parameters { Workload.Parameters(writers: writers, fill: fill, period: period) }

    /// The options as arguments, for starting a worker with the same settings.
    var arguments: [String] {
        [
            "--writers", "\(writers)", "--seconds", "\(seconds)", "--fill", "\(fill)", "--rate", "\(rate)", "--period",
            "\(period)",
        ]
            + (paths ? ["--paths"] : [])
    }
}
