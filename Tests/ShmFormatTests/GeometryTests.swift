// Geometry validation, request rounding and byte-count parsing.

import ShmFormat
import Testing

@Suite("Geometry")
struct GeometryTests {
    @Test("the default is the original library's 32 B .. 1 KiB in 512 MiB")
    func defaultGeometry() {
        let geometry = Geometry.default
        #expect(geometry.minSize == 32)
        #expect(geometry.maxSize == 1024)
        #expect(geometry.blockCount == (512 << 20) / 1024)
        #expect(geometry.orderCount == 6)
        #expect(geometry.tree.depth == 5)
        #expect(geometry.largestRequest == 1016)
        #expect(geometry.description == "32 B..1 KiB × 524288 blocks = 512 MiB")
    }

    @Test("capacities up to 1 TiB are accepted (the file is sparse)")
    func largeCapacity() throws {
        let geometry = try Geometry(minSize: 32, maxSize: 1024, capacity: 64 << 30)
        #expect(geometry.capacity == 64 << 30)
        #expect(throws: Never.self) { try Geometry(minSize: 16, maxSize: 16, capacity: 1 << 40) }
    }

    @Test(
        "every violation is refused with the values at fault",
        arguments: [(Int, Int, Int, GeometryError)]([
            (0, 1024, 4096, .minSizeNotAllowed(0)),
            (8, 128, 4096, .minSizeNotAllowed(8)),
            (48, 1024, 4096, .minSizeNotAllowed(48)),
            (32, 1000, 4000, .maxSizeNotAllowed(1000)),
            (32, 2 << 20, 2 << 20, .maxSizeNotAllowed(2 << 20)),
            (64, 32, 4096, .maxBelowMin(minSize: 64, maxSize: 32)),
            (16, 1024, 4096, .treeTooDeep(minSize: 16, maxSize: 1024)),
            (32, 1024, 0, .capacityOutOfRange(0)),
            (32, 1024, -1024, .capacityOutOfRange(-1024)),
            (32, 1024, (1 << 40) + 1024, .capacityOutOfRange((1 << 40) + 1024)),
            (32, 1024, 1536, .capacityNotMultiple(capacity: 1536, blockSize: 1024)),
        ]))
    func refused(minSize: Int, maxSize: Int, capacity: Int, expected: GeometryError) {
        #expect(throws: expected) { try Geometry(minSize: minSize, maxSize: maxSize, capacity: capacity) }
    }

    @Test("error messages name the values and the rule")
    func messages() {
        #expect(
            GeometryError.treeTooDeep(minSize: 16, maxSize: 1024).description
                == "max size / min size = 64 exceeds 32 (1024 / 16): a block's buddy tree must fit one 64-bit word")
        #expect(
            GeometryError.minSizeNotAllowed(48).description == "min size 48 must be a power of two of at least 16 bytes"
        )
        #expect(
            GeometryError.capacityNotMultiple(capacity: 1536, blockSize: 1024).description
                == "capacity 1536 is not a multiple of the block size 1024")
    }

    @Test(
        "order(forRequest:) picks the smallest node that holds request + header",
        arguments: [(Int, Int)]([(16, 16), (16, 512), (32, 1024), (64, 64), (4096, 1 << 17)]))
    func orderForRequest(minSize: Int, maxSize: Int) throws {
        let geometry = try Geometry(minSize: minSize, maxSize: maxSize, capacity: maxSize * 8)
        for request in 0...geometry.largestRequest {
            let expected = (0..<geometry.orderCount).first { geometry.nodeSize(ofOrder: $0) >= request + 8 }
            #expect(geometry.order(forRequest: request) == expected, "request \(request)")
        }
        #expect(geometry.order(forRequest: geometry.largestRequest) == geometry.orderCount - 1)
        #expect(geometry.order(forRequest: geometry.largestRequest + 1) == nil)
        #expect(geometry.order(forRequest: -1) == nil)
        #expect(geometry.order(forRequest: .max) == nil)
        #expect(geometry.order(forRequest: .min) == nil)
    }

    @Test("the default geometry's edges: 24 B fits 32, 25 B needs 64, 1016 B is the most")
    func defaultEdges() {
        let geometry = Geometry.default
        #expect(geometry.order(forRequest: 0) == 0)
        #expect(geometry.order(forRequest: 24) == 0)
        #expect(geometry.order(forRequest: 25) == 1)
        #expect(geometry.order(forRequest: 56) == 1)
        #expect(geometry.order(forRequest: 57) == 2)
        #expect(geometry.order(forRequest: 1016) == 5)
        #expect(geometry.order(forRequest: 1017) == nil)
    }
}

@Suite("ByteCount")
struct ByteCountTests {
    @Test(
        "parses sizes as people write them",
        arguments: [(String, Int)]([
            ("4096", 4096), ("0", 0), ("64KiB", 64 << 10), ("512MiB", 512 << 20), ("4 GiB", 4 << 30),
            ("1G", 1 << 30), ("2k", 2048), (" 8 kb ", 8192), ("3B", 3), ("1TiB", 1 << 40), ("16m", 16 << 20),
        ]))
    func parses(text: String, bytes: Int) {
        #expect(ByteCount(parsing: text)?.bytes == bytes)
    }

    @Test(
        "refuses what is not a size",
        arguments: ["", " ", "abc", "12x", "-1", "1.5G", "KiB", "4 PiB", "9999999999999T"])
    func refuses(text: String) {
        #expect(ByteCount(parsing: text) == nil)
    }

    @Test(
        "prints binary units, with one decimal only when needed",
        arguments: [(Int, String)]([
            (0, "0 B"), (32, "32 B"), (1023, "1023 B"), (1024, "1 KiB"), (1536, "1.5 KiB"), (512 << 20, "512 MiB"),
            (3 << 29, "1.5 GiB"), (1 << 40, "1 TiB"),
        ]))
    func prints(bytes: Int, text: String) {
        #expect(ByteCount(bytes).description == text)
    }
}
