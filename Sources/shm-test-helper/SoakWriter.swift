// One writer of the crash soak: allocates, fills, verifies and frees, journaling what it holds.

import ArgumentParser
import ShmAlloc
import ShmWorkloads

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// `shm-test-helper soak-writer`: one writer of `soak`.
struct SoakWriter: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "One writer of the crash soak.")

    @Argument var path: String
    @Option var journal: String
    @Option var window = 256
    @Option var seed: UInt64 = 1

    /// One allocation this writer holds.
    struct Held {
        let offset: ShmOffset
        let size: Int
        let nodeBytes: Int
        let tag: UInt64
    }

    func run() throws {
        StopSignals.install()
        let journal = try SoakJournal(path: self.journal, creating: false)
        let cache = try SharedCache(path: path, policy: .attach)
        let pid = getpid()
        journal[.pid] = UInt64(UInt32(bitPattern: pid))
        while journal[.go] == 0, !StopSignals.requested { usleep(1000) }
        var random = SplitMix64(seed: seed)
        var held: [Held] = []
        held.reserveCapacity(window)
        var heldBytes = 0
        var sequence: UInt64 = 0
        let geometry = cache.geometry

        func verify(_ item: Held) {
            journal.increment(.verifications)
            if !patternMatches(cache.pointer(to: item.offset)!, count: item.size, tag: item.tag) {
                journal.increment(.mismatches)
            }
        }
        func release(at index: Int) {
            held.swapAt(index, held.count - 1)
            journal[slot: index] = held[index].offset.rawValue
            let item = held.removeLast()
            journal[.heldCount] = UInt64(held.count)
            verify(item)
            journal.begin(.free, heldAfter: heldBytes - item.nodeBytes)
            do {
                try cache.free(item.offset)
                heldBytes -= item.nodeBytes
            } catch {
                journal.increment(.errors)
            }
            journal.commit(held: heldBytes)
            journal.increment(.operations)
        }

        while !StopSignals.requested {
            if held.count < window, held.isEmpty || random.below(2) == 0 {
                let size = mixedRequestSize(geometry, &random)
                let nodeBytes = geometry.nodeSize(forRequest: size)!
                journal.begin(.allocation, heldAfter: heldBytes + nodeBytes)
                if let offset = try? cache.allocate(size) {
                    heldBytes += nodeBytes
                    journal.commit(held: heldBytes)
                    sequence &+= 1
                    let tag = UInt64(UInt32(bitPattern: pid)) << 32 | sequence
                    fillPattern(cache.pointer(to: offset)!, count: size, tag: tag)
                    held.append(Held(offset: offset, size: size, nodeBytes: nodeBytes, tag: tag))
                    journal[slot: held.count - 1] = offset.rawValue
                    journal[.heldCount] = UInt64(held.count)
                } else {
                    journal.commit(held: heldBytes)
                    if !held.isEmpty { release(at: held.count - 1) }
                }
                journal.increment(.operations)
            } else {
                release(at: random.below(held.count))
            }
            if random.below(8) == 0, !held.isEmpty { verify(held[random.below(held.count)]) }
        }
        while !held.isEmpty { release(at: held.count - 1) }
        journal[.finished] = 1
        journal.unmap()
    }
}
