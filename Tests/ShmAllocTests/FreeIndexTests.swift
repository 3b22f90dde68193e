// The free-space index against a model: a set of listed blocks per class.

import Foundation
import ShmFormat
import ShmInspect
import ShmWorkloads
import Synchronization
import Testing

@testable import ShmAlloc

/// A free-space index over zeroed process memory, for tests.
private final class IndexUnderTest: @unchecked Sendable {  // shared by test threads only through atomics
    let layout: FreeIndexLayout
    let storage: UnsafeMutablePointer<Atomic<UInt64>>
    let index: FreeSpaceIndex

    init(blockCount: Int, classes: Int = 6) throws {
        let geometry = try Geometry(
            minSize: 32, maxSize: 32 << (classes - 1), capacity: blockCount * (32 << (classes - 1)))
        layout = FreeIndexLayout(geometry: geometry)
        storage = .allocate(capacity: layout.totalWords)
        for word in 0..<layout.totalWords { (storage + word).initialize(to: Atomic(0)) }
        index = FreeSpaceIndex(layout: layout, words: storage)
    }

    deinit {
        storage.deinitialize(count: layout.totalWords)
        storage.deallocate()
    }

    /// True when the index lists `block` under `blockClass`, read as the inspector reads it.
    func lists(_ block: Int, class blockClass: Int) -> Bool {
        let words = UnsafeBufferPointer(
            start: UnsafeRawPointer(storage).assumingMemoryBound(to: UInt64.self), count: layout.totalWords)
        return layout.lists(words, block: block, class: blockClass)
    }

    /// Every non-zero word has its summary bit set (true whenever no operation is running); with
    /// `exact`, also no summary bit is set over a zero word (true once searches have stepped over
    /// every stale one).
    func summariesAreComplete(exact: Bool = false, classes: Range<Int>? = nil) -> Bool {
        for blockClass in classes ?? 0..<layout.classCount {
            for level in 1..<max(layout.levelCount, 1) {
                for bit in 0..<layout.bitCount(level: level) {
                    let child = storage[layout.wordIndex(class: blockClass, level: level - 1, bit: bit << 6)].load(
                        ordering: .relaxed)
                    let summary = storage[layout.wordIndex(class: blockClass, level: level, bit: bit)].load(
                        ordering: .relaxed)
                    let isSet = summary & (1 << UInt64(bit & 63)) != 0
                    if child != 0 && !isSet || exact && child == 0 && isSet { return false }
                }
            }
        }
        return true
    }
}

@Suite("Free-space index")
struct FreeIndexTests {
    @Test("layout: levels shrink by 64 to one word", arguments: [1, 63, 64, 65, 4096, 4097, 262_145])
    func layoutLevels(blockCount: Int) throws {
        let under = try IndexUnderTest(blockCount: blockCount)
        let layout = under.layout
        #expect(layout.wordCount(level: 0) == (blockCount + 63) / 64)
        #expect(layout.wordCount(level: layout.levelCount - 1) == 1)
        for level in 1..<layout.levelCount {
            #expect(layout.wordCount(level: level) == (layout.wordCount(level: level - 1) + 63) / 64)
        }
    }

    @Test("insert, remove and first agree with a set model", arguments: [1, 64, 65, 4097, 262_145])
    func modelAgreement(blockCount: Int) throws {
        let under = try IndexUnderTest(blockCount: blockCount)
        var model = Array(repeating: Set<Int>(), count: under.layout.classCount)
        var random = SplitMix64(seed: 0x5EED_000C)
        for step in 0..<3000 {
            let blockClass = Int.random(in: 0..<under.layout.classCount, using: &random)
            // Cluster blocks so words fill up and empty out again, exercising the summaries.
            let block = Int.random(in: 0..<min(blockCount, 200), using: &random) * max(1, blockCount / 200)
            if Bool.random(using: &random) {
                under.index.insert(block, class: blockClass)
                model[blockClass].insert(block)
            } else {
                under.index.remove(block, class: blockClass)
                model[blockClass].remove(block)
            }
            #expect(under.lists(block, class: blockClass) == model[blockClass].contains(block), "step \(step)")
            let start = Int.random(in: 0..<blockCount, using: &random)
            let expected = model[blockClass].filter { $0 >= start }.min() ?? model[blockClass].min()
            #expect(under.index.first(class: blockClass, from: start) == expected, "step \(step): first from \(start)")
        }
        #expect(under.summariesAreComplete())
    }

    @Test("a remove leaves its summary bits stale; the search that steps over them clears them")
    func staleSummariesClearedBySearch() throws {
        let under = try IndexUnderTest(blockCount: 64 * 64 * 3)
        under.index.insert(5000, class: 1)
        under.index.insert(9000, class: 1)
        under.index.remove(5000, class: 1)
        #expect(under.summariesAreComplete(classes: 1..<2) && !under.summariesAreComplete(exact: true, classes: 1..<2))
        #expect(under.index.first(class: 1, from: 0) == 9000)
        #expect(under.summariesAreComplete(exact: true, classes: 1..<2))
        under.index.remove(9000, class: 1)
        #expect(under.index.first(class: 1, from: 100) == nil)
        #expect(under.summariesAreComplete(exact: true, classes: 1..<2))
    }

    @Test("a new cache lists every block but the null region under the top class")
    func initialListing() throws {
        let under = try IndexUnderTest(blockCount: 5000)
        let words = UnsafeMutableBufferPointer(
            start: UnsafeMutableRawPointer(under.storage).assumingMemoryBound(to: UInt64.self),
            count: under.layout.totalWords)
        under.layout.initialise(words, firstBlock: 4)
        let top = under.layout.classCount - 1
        for block in [0, 3] { #expect(!under.lists(block, class: top)) }
        for block in [4, 63, 64, 4999] { #expect(under.lists(block, class: top)) }
        for blockClass in 0..<top { #expect(under.index.first(class: blockClass, from: 0) == nil) }
        #expect(under.index.first(class: top, from: 0) == 4)
        #expect(under.summariesAreComplete(exact: true))
    }

    @Test("threads inserting and removing at once leave exact summaries and their own bits")
    func concurrentUpdates() async throws {
        let under = try IndexUnderTest(blockCount: 64 * 64 * 3)
        let threads = 4
        // Each thread owns the blocks ≡ its number (mod threads), so the final bits are known, while
        // all threads share every word and every summary word.
        await withTaskGroup(of: Void.self) { group in
            for thread in 0..<threads {
                group.addTask {
                    var random = SplitMix64(seed: 0x5EED_000D &+ UInt64(thread))
                    for _ in 0..<20_000 {
                        let block =
                            Int.random(in: 0..<(under.layout.blockCount / threads), using: &random) * threads + thread
                        if Bool.random(using: &random) {
                            under.index.insert(block, class: 2)
                        } else {
                            under.index.remove(block, class: 2)
                        }
                    }
                    // Leave exactly the blocks of this thread that are multiples of 7 listed.
                    for block in stride(from: thread, to: under.layout.blockCount, by: threads) {
                        if block % 7 == 0 {
                            under.index.insert(block, class: 2)
                        } else {
                            under.index.remove(block, class: 2)
                        }
                    }
                }
            }
        }
        #expect(under.summariesAreComplete())
        var found: [Int] = []
        var start = 0
        while let block = under.index.first(class: 2, from: start), block >= start {
            found.append(block)
            start = block + 1
            if start == under.layout.blockCount { break }
        }
        #expect(found == Array(stride(from: 0, to: under.layout.blockCount, by: 7)))
        #expect(under.summariesAreComplete(exact: true, classes: 2..<3), "the sweep cleared every stale summary")
    }
}

@Suite("Index and words together")
struct IndexConsistencyTests {
    @Test("every block with free space is listed under a class at least as large, through random allocate/free")
    func neverUnderAdvertised() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("index-\(UUID()).shm").path
        defer { unlink(path) }
        let cache = try SharedCache(
            path: path, policy: .require(try Geometry(minSize: 32, maxSize: 1024, capacity: 256 << 10)))
        let tree = cache.geometry.tree
        let indexWords = UnsafeBufferPointer(
            start: (cache.fileBase + cache.layout.indexOffset).assumingMemoryBound(to: UInt64.self),
            count: cache.layout.freeIndex.totalWords)
        var live: [ShmOffset] = []
        var random = SplitMix64(seed: 0x5EED_000E)
        for step in 0..<6000 {
            if live.isEmpty || Int.random(in: 0..<5, using: &random) < 3 {
                if let offset = try? cache.allocate(Int.random(in: 1...1016, using: &random)) { live.append(offset) }
            } else {
                try cache.free(live.swapRemove(at: Int.random(in: 0..<live.count, using: &random)))
            }
            guard step % 50 == 0 else { continue }
            for block in cache.layout.nullBlockCount..<cache.geometry.blockCount {
                let word = cache.word(ofBlock: block)
                #expect(tree.isValid(word))
                guard let blockClass = tree.largestFreeOrder(word) else { continue }
                let listed = (blockClass..<cache.geometry.orderCount).contains {
                    cache.layout.freeIndex.lists(indexWords, block: block, class: $0)
                }
                #expect(listed, "step \(step): block \(block) of class \(blockClass) is not findable")
            }
        }
        for offset in live { try cache.free(offset) }
        #expect((cache.layout.nullBlockCount..<cache.geometry.blockCount).allSatisfy { cache.word(ofBlock: $0) == 0 })
    }

    @Test("threads racing on a small cache leave every block findable and every word valid")
    func concurrentAllocateAndFree() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("race-\(UUID()).shm").path
        defer { unlink(path) }
        // 60 usable blocks for 4 threads keep them on the same words and the same index words.
        let cache = try SharedCache(
            path: path, policy: .require(try Geometry(minSize: 32, maxSize: 1024, capacity: 64 << 10)))
        let failures = await withTaskGroup(of: Int.self) { group in
            for task in 0..<4 {
                group.addTask {
                    var random = SplitMix64(seed: 0x5EED_000F &+ UInt64(task))
                    var live: [ShmOffset] = []
                    var failed = 0
                    for _ in 0..<40_000 {
                        if live.count < 12, let offset = try? cache.allocate(Int.random(in: 1...600, using: &random)) {
                            live.append(offset)
                        } else if live.isEmpty {
                            failed += 1
                        } else {
                            try? cache.free(live.swapRemove(at: Int.random(in: 0..<live.count, using: &random)))
                        }
                    }
                    for offset in live { try? cache.free(offset) }
                    return failed
                }
            }
            return await group.reduce(0, +)
        }
        // 4 threads × 12 live × at most 1 KiB fit 60 blocks: no request could ever have failed.
        #expect(failures == 0)
        #expect(cache.invalidFrees == 0)
        let indexWords = UnsafeBufferPointer(
            start: (cache.fileBase + cache.layout.indexOffset).assumingMemoryBound(to: UInt64.self),
            count: cache.layout.freeIndex.totalWords)
        for block in cache.layout.nullBlockCount..<cache.geometry.blockCount {
            #expect(cache.word(ofBlock: block) == 0)
            #expect(cache.layout.freeIndex.lists(indexWords, block: block, class: cache.geometry.orderCount - 1))
        }
    }

    @Test("a search places each request in a block whose largest free chunk is the smallest that fits")
    func bestFitAcrossBlocks() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("fit-\(UUID()).shm").path
        defer { unlink(path) }
        let geometry = try Geometry(minSize: 32, maxSize: 1024, capacity: 256 << 10)
        let owner = try SharedCache(path: path, policy: .require(geometry))
        let tree = geometry.tree
        let blocks = owner.layout.nullBlockCount..<geometry.blockCount
        var live: [ShmOffset] = []
        var random = SplitMix64(seed: 0x5EED_0010)
        var placements = 0
        for step in 0..<2500 {
            if live.isEmpty || Int.random(in: 0..<5, using: &random) < 3 {
                let size = Int.random(in: 1...1016, using: &random)
                let order = try #require(geometry.order(forRequest: size))
                let before = blocks.map { owner.word(ofBlock: $0) }
                // The model: the smallest class at or above the request's order that any block has.
                let classes = before.compactMap { tree.largestFreeOrder($0) }
                let bestClass = classes.filter { $0 >= order }.min()
                // A fresh mapping has no cursor, so the request goes through the index search.
                let fresh = try SharedCache(path: path, policy: .attach)
                guard let offset = try? fresh.allocate(size) else {
                    #expect(
                        bestClass == nil,
                        "step \(step): \(size) B refused, but a block of class \(bestClass ?? -1) fits it")
                    continue
                }
                live.append(offset)
                let block = Int(offset.rawValue - 8) >> geometry.maxShift
                let chosenClass = tree.largestFreeOrder(before[block - blocks.lowerBound])
                #expect(
                    chosenClass == bestClass,
                    "step \(step): \(size) B went to a block of class \(chosenClass ?? -1), best was \(bestClass ?? -1)"
                )
                placements += 1
            } else {
                try owner.free(live.swapRemove(at: Int.random(in: 0..<live.count, using: &random)))
            }
        }
        #expect(placements > 1000)
    }

    @Test("allocation fails fast and only when no block can hold the request")
    func failsOnlyWhenFull() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("full-\(UUID()).shm").path
        defer { unlink(path) }
        let cache = try SharedCache(
            path: path, policy: .require(try Geometry(minSize: 32, maxSize: 1024, capacity: 64 << 10)))
        var whole: [ShmOffset] = []
        while let offset = try? cache.allocate(1000) { whole.append(offset) }
        #expect(whole.count == cache.geometry.blockCount - cache.layout.nullBlockCount)
        #expect(throws: AllocationError.outOfSpace(requested: 1)) { try cache.allocate(1) }
        // One 32 B hole anywhere must be found, whichever block it is in.
        let victim = whole.remove(at: whole.count / 2)
        try cache.free(victim)
        let small = try cache.allocate(20)
        #expect(small == victim)
        #expect(cache.failedAllocations == 2)  // the fill loop's last attempt, and the 1-byte request
    }
}

extension Array {
    /// Removes and returns element `index` in O(1), moving the last element into its place.
    mutating func swapRemove(at index: Int) -> Element {
        swapAt(index, count - 1)
        return removeLast()
    }
}
