// The fuzz target: arbitrary bytes against the header parser and the inspector's statistics.
//
// Built two ways (see scripts/fuzz.sh):
// - `swift build --product shm-fuzz -Xswiftc -sanitize=fuzzer -Xswiftc -DSHM_FUZZ` links libFuzzer,
//   whose driver `main` below starts on `LLVMFuzzerTestOneInput`;
// - a plain build (part of `swift build`) gets the other half of `main`: it replays the files
//   given as arguments (a crash or a corpus), or with `--random N` runs N pseudo-random inputs.
//
// The first input byte picks what the rest feeds:
//   0  `FileHeader(decoding:fileSize:)` on the raw bytes;
//   1  the same on a valid header page with the bytes XORed into it (reaches the later checks);
//   2… a valid header of a tree depth the byte picks, whose words (and free-space index, and
//      allocation headers) are the bytes: `BuddyCensus` and `CacheStatistics` (full and
//      incremental), the rates, the index check, the JSON report, the text and block details must
//      not crash, and `invalidWords` must equal the words that break the buddy invariant.

import ShmFormat
import ShmInspect

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Stops the run with a message: libFuzzer records the input as a crash.
func violated(_ message: String) -> Never {
    let line = "shm-fuzz: invariant violated: \(message)\n"
    _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
    abort()
}

/// Runs one input. Returns normally unless an invariant is violated (then it aborts).
func fuzzOne(_ data: UnsafeRawBufferPointer) {
    guard let selector = data.first else { return }
    let rest = UnsafeRawBufferPointer(rebasing: data.dropFirst())
    switch selector % 8 {
    case 0: decodeRaw(rest)
    case 1: decodePatchedHeader(rest)
    default: inspectWords(rest, depthSelector: Int(selector / 8))
    }
}

// MARK: - Header

func decodeRaw(_ bytes: UnsafeRawBufferPointer) {
    // Both with and without the file-size check; the size comes from the input too.
    _ = try? FileHeader(decoding: bytes, fileSize: nil)
    if bytes.count >= 8 {
        _ = try? FileHeader(decoding: bytes, fileSize: Int(truncatingIfNeeded: bytes.loadUnaligned(as: UInt64.self)))
    }
}

/// A ready header page of a small cache, as the allocator writes it.
let validHeaderPage: [UInt8] = {
    let layout = try! FileLayout(geometry: try! Geometry(minSize: 32, maxSize: 1024, capacity: 1 << 20), pageSize: 4096)
    let header = FileHeader(layout: layout, creatorPID: 1234, createdAtNanoseconds: 1)
    var page = [UInt8](repeating: 0, count: FileHeader.Field.end)
    page.withUnsafeMutableBytes { header.encode(into: $0) }
    // `encode` writes the state `initialising`; the parser wants `ready` to look further.
    page.withUnsafeMutableBytes {
        $0.storeBytes(
            of: FileHeader.stateWord(.ready, pid: 1234).littleEndian, toByteOffset: FileHeader.Field.stateWord,
            as: UInt64.self)
    }
    return page
}()

func decodePatchedHeader(_ bytes: UnsafeRawBufferPointer) {
    var page = validHeaderPage
    for (index, byte) in bytes.prefix(page.count).enumerated() { page[index] ^= byte }
    // Past the page: extra bytes extend it (a longer read is allowed).
    page.append(contentsOf: bytes.dropFirst(page.count).prefix(64))
    page.withUnsafeBytes { page in
        guard let header = try? FileHeader(decoding: page, fileSize: nil) else { return }
        // Whatever the parser accepts must describe a layout that adds up.
        let layout = header.layout
        if layout.fileSize != layout.dataOffset + layout.dataLength || layout.dataLength != header.geometry.capacity {
            violated("accepted header with an inconsistent layout: \(layout)")
        }
        _ = try? FileHeader(decoding: page, fileSize: layout.fileSize)
    }
}

// MARK: - Statistics over arbitrary words

/// Reads little-endian words from `bytes` (the last one zero-padded).
func words(from bytes: UnsafeRawBufferPointer) -> [UInt64] {
    stride(from: 0, to: bytes.count, by: 8).map { start in
        var word: UInt64 = 0
        for index in start..<min(start + 8, bytes.count) { word |= UInt64(bytes[index]) << UInt64(8 * (index - start)) }
        return word
    }
}

func inspectWords(_ bytes: UnsafeRawBufferPointer, depthSelector: Int) {
    // Depth 0...5 (5, the default geometry's, is the byte-table pass: the likeliest choice).
    let depth = depthSelector % 8 >= 6 ? 5 : depthSelector % 8  // selector bits 3-5
    let maxSize = 1024
    let minSize = maxSize >> depth
    let nullBlocks = max(1, 4096 / maxSize)
    let fuzzWords = words(from: bytes)
    // At most 8192 usable blocks keeps one run short; at least one.
    let usable = max(1, min(fuzzWords.count, 8192))
    guard let geometry = try? Geometry(minSize: minSize, maxSize: maxSize, capacity: (nullBlocks + usable) * maxSize),
        let layout = try? FileLayout(geometry: geometry, pageSize: 4096)
    else { violated("geometry of depth \(depth) with \(usable) blocks refused") }
    let tree = geometry.tree
    let header = FileHeader(layout: layout, creatorPID: 1, createdAtNanoseconds: 0)

    var allWords = [UInt64](repeating: tree.fullWord, count: layout.nullBlockCount)
    allWords += fuzzWords.prefix(usable)
    if allWords.count < geometry.blockCount {
        allWords += [UInt64](repeating: 0, count: geometry.blockCount - allWords.count)
    }
    // The index: the words again, rotated, so listings disagree with the words in every way.
    let indexCount = layout.freeIndex.totalWords
    let indexWords = (0..<indexCount).map { fuzzWords.isEmpty ? 0 : fuzzWords[$0 % fuzzWords.count].byteSwapped }

    // Allocation headers: for every allocation node, a raw header from the input (garbage mostly,
    // a matching one when the input byte says so).
    var builder = AllocationCensus.Builder(geometry: geometry)
    var headerSource = 0
    for block in layout.nullBlockCount..<geometry.blockCount {
        geometry.forEachAllocation(inWord: allWords[block], ofBlock: block) { allocation in
            let raw = fuzzWords.isEmpty ? 0 : fuzzWords[headerSource % fuzzWords.count] &* 0x9E37_79B9_7F4A_7C15
            headerSource += 1
            let order = allocation.order
            if raw & 1 == 0 {
                builder.add(rawHeader: raw, order: order)
            } else {
                let size = Int(raw >> 8) % (geometry.nodeSize(ofOrder: order) - AllocationHeader.size + 1)
                builder.add(
                    rawHeader: AllocationHeader(
                        ownerPID: Int32(truncatingIfNeeded: raw >> 40), requestedSize: size, order: order
                    ).rawValue,
                    order: order)
            }
        }
    }
    let allocations = builder.census { pid in [ProcessState.alive, .zombie, .dead][Int(pid.magnitude % 3)] }

    let now = ContinuousClock.now
    let snapshot = CacheSnapshot(
        path: "fuzz", header: header, words: allWords, indexWords: indexWords,
        allocations: allocations, takenAt: now, wallClockNanoseconds: 0)
    let statistics = CacheStatistics(snapshot, threads: 1)

    // The oracle: invalid words counted one by one with the plain predicate.
    let expectedInvalid = snapshot.usableBlocks.reduce(0) { $0 + (tree.isValid(allWords[$1]) ? 0 : 1) }
    if statistics.invalidWords != expectedInvalid {
        violated("invalidWords \(statistics.invalidWords), expected \(expectedInvalid) (depth \(depth))")
    }
    let census = statistics.census
    if census.wordCount != snapshot.usableBlocks.count || census.emptyWords + census.fullWords > census.wordCount {
        violated("census word counts \(census.wordCount) / \(census.emptyWords) / \(census.fullWords)")
    }
    if expectedInvalid == 0 {
        // A healthy snapshot's bytes add up, and the census agrees with word-at-a-time sums.
        if statistics.allocatedBytes + statistics.freeBytes + statistics.reservedBytes != statistics.managedBytes {
            violated("bytes do not add up for valid words")
        }
        let leaves = snapshot.usableBlocks.reduce(0) { $0 + tree.takenLeafCount(allWords[$1]) }
        let allocationNodes = snapshot.usableBlocks.reduce(0) { $0 + tree.allocations(allWords[$1]).nonzeroBitCount }
        if census.takenLeaves != leaves || statistics.liveAllocations != allocationNodes {
            violated(
                "census \(census.takenLeaves) leaves / \(statistics.liveAllocations) allocations, expected \(leaves) / \(allocationNodes)"
            )
        }
    }

    // Incremental update from an empty cache must give the same census as the full pass; so must
    // a pass split into two parts.
    var emptyWords = [UInt64](repeating: 0, count: geometry.blockCount)
    for block in 0..<layout.nullBlockCount { emptyWords[block] = tree.fullWord }
    let empty = CacheSnapshot(
        path: "fuzz", header: header, words: emptyWords, indexWords: indexWords,
        allocations: nil, takenAt: now, wallClockNanoseconds: 0)
    let emptyStatistics = CacheStatistics(empty, threads: 1)
    let updated = CacheStatistics(snapshot, updating: emptyStatistics, of: empty)
    if updated.census != census { violated("incremental census differs from the full pass (depth \(depth))") }
    let split = usable / 2
    let parts =
        allWords[layout.nullBlockCount..<(layout.nullBlockCount + split)].withUnsafeBufferPointer {
            BuddyCensus(tree: tree, words: $0)
        }
        + allWords[(layout.nullBlockCount + split)...].withUnsafeBufferPointer { BuddyCensus(tree: tree, words: $0) }
    if parts != census { violated("census of two parts differs from the whole (depth \(depth), split \(split))") }

    _ = SnapshotRates(from: empty, to: snapshot)
    _ = FreeIndexStatistics(snapshot)
    // The reports cost far more than the statistics: one input in four renders them.
    guard depthSelector & 0x18 == 0 else { return }
    _ = SnapshotReport(snapshot: snapshot, statistics: statistics).jsonText()

    // Block details over blocks whose bytes are the input (garbage allocation headers).
    var blockBytes = [UInt8](repeating: 0, count: geometry.blockSize)
    for index in blockBytes.indices where !bytes.isEmpty { blockBytes[index] = bytes[(index * 7) % bytes.count] }
    let details = blockBytes.withUnsafeBytes { raw in
        [layout.nullBlockCount, geometry.blockCount - 1].map {
            BlockDetail(
                block: $0, word: allWords[$0], layout: layout, blockBytes: raw, previewLength: 32,
                advertisedOrders: [depth])
        }
    }
    for detail in details where detail.isValid != tree.isValid(detail.word) {
        violated("BlockDetail.isValid disagrees")
    }
    _ = SnapshotText(ascii: true, width: 16).render(snapshot, statistics, blocks: details)
}

// MARK: - Entry points

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    fuzzOne(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if SHM_FUZZ
    /// libFuzzer's driver (in libclang_rt.fuzzer, linked by `-sanitize=fuzzer`). SwiftPM links an
    /// executable's own `main`, so this one hands the command line to the driver itself.
    @_silgen_name("LLVMFuzzerRunDriver")
    func runFuzzerDriver(
        _ argc: UnsafeMutablePointer<Int32>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
    ) -> Int32
#endif

/// With libFuzzer: its driver. Without: replay files, or run pseudo-random inputs.
@main
enum FuzzMain {
    static func main() {
        #if SHM_FUZZ
            var argc = CommandLine.argc
            var argv = CommandLine.unsafeArgv
            exit(runFuzzerDriver(&argc, &argv) { data, size in fuzzerTestOneInput(data, size) })
        #else
            let arguments = Array(CommandLine.arguments.dropFirst())
            if arguments.first == "--random" {
                let count = arguments.count > 1 ? Int(arguments[1]) ?? 1000 : 1000
                var state: UInt64 = 0x5EED_F00D
                func next() -> UInt64 {
                    state ^= state << 13
                    state ^= state >> 7
                    state ^= state << 17
                    return state
                }
                for _ in 0..<count {
                    let length = Int(next() % 2048)
                    let input = (0..<length).map { _ in UInt8(truncatingIfNeeded: next()) }
                    input.withUnsafeBytes { fuzzOne($0) }
                }
                print("inputs=\(count) failures=0")
                return
            }
            for path in arguments {
                guard let file = fopen(path, "rb") else {
                    print("shm-fuzz: cannot open \(path)")
                    exit(2)
                }
                var input: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 65536)
                while true {
                    let count = fread(&chunk, 1, chunk.count, file)
                    if count <= 0 { break }
                    input += chunk[..<count]
                }
                fclose(file)
                input.withUnsafeBytes { fuzzOne($0) }
            }
            print("inputs=\(arguments.count) failures=0")
        #endif
    }
}
