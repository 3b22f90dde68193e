import ArgumentParser
import ShmAlloc
import ShmFormat

extension Shmtop {
    /// `shmtop create`: makes a new cache file with a chosen geometry.
    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a cache file with the given geometry.",
            discussion: """
                Sizes are powers of two with max-size / min-size ≤ 32; the capacity is a multiple of \
                max-size. The file is sparse: only touched pages use disk or memory. An existing file \
                is refused unless it already has exactly this geometry.
                """
        )

        @OptionGroup var file: CachePathArgument
        @Option(parsing: .unconditional, help: "The smallest allocation node in bytes.")
        var minSize = ByteSizeArgument(bytes: Geometry.default.minSize)
        @Option(parsing: .unconditional, help: "The largest allocation node, which is also the block size.")
        var maxSize = ByteSizeArgument(bytes: Geometry.default.maxSize)
        @Option(parsing: .unconditional, help: "The data region's size.")
        var capacity = ByteSizeArgument(bytes: Geometry.default.capacity)

        func run() throws {
            let path = try file.resolved()
            let geometry: Geometry
            do {
                geometry = try Geometry(minSize: minSize.bytes, maxSize: maxSize.bytes, capacity: capacity.bytes)
            } catch {
                throw ValidationError("\(error)")
            }
            let cache = try failingWithOneLine { () throws(CacheError) in
                try SharedCache(path: path, policy: .require(geometry))
            }
            print(
                "\(path): \(cache.geometry), \(ByteCount(cache.layout.fileSize)) file, format v\(cache.header.formatVersion)"
            )
        }
    }
}
