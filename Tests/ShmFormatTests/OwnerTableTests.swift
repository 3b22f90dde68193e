// The owner table's identity and intent words, and the /proc/<pid>/stat parser both sides share.

import ShmFormat
import Testing

@Suite("Owner table")
struct OwnerTableTests {
    /// Parses `text` as the contents of a stat file.
    static func parse(_ text: String) -> ProcessStatLine? {
        Array(text.utf8).withUnsafeBytes { ProcessStatLine(parsing: $0) }
    }

    /// A stat line with `comm`, `state` and `startTime` (field 22).
    static func statLine(comm: String, state: String, startTime: String = "987654") -> String {
        "4242 (\(comm)) \(state) 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \(startTime) 1000 10 18446744073709551615\n"
    }

    @Test("a stat line gives its state and start time, whatever the command name holds")
    func parsesStatLines() throws {
        for comm in ["cc", "my prog", "a) b (c", "))", ""] {
            let line = try #require(Self.parse(Self.statLine(comm: comm, state: "S")), "comm \(comm)")
            #expect(line.state == UInt8(ascii: "S") && line.startTime == 987_654 && !line.hasExited)
        }
        #expect(try #require(Self.parse(Self.statLine(comm: "z", state: "Z"))).hasExited)
        #expect(try #require(Self.parse(Self.statLine(comm: "x", state: "X"))).hasExited)
        #expect(Self.parse("") == nil)
        #expect(Self.parse("4242 (cc) S 1 2 3") == nil, "too few fields")
        #expect(Self.parse(Self.statLine(comm: "cc", state: "SS")) == nil)
        #expect(Self.parse(Self.statLine(comm: "cc", state: "S", startTime: "98x654")) == nil)
    }

    @Test("identity words keep pid and start time apart; intents round-trip and are never 0")
    func words() {
        let identity = OwnerTable.identity(pid: 123_456, startTime: 0x1_2345_6789)
        #expect(OwnerTable.pid(ofIdentity: identity) == 123_456)
        #expect(OwnerTable.matches(identity, startTime: 0x1_2345_6789))
        #expect(OwnerTable.matches(identity, startTime: 0x2345_6789), "compared on the low 32 bits, as stored")
        #expect(!OwnerTable.matches(identity, startTime: 0x2345_6788))
        for (block, node) in [(4, 1), (1 << 30, 63), (0, 1)] {
            let intent = OwnerTable.intent(block: block, node: node)
            #expect(intent != 0)
            #expect(OwnerTable.target(ofIntent: intent)! == (block, node))
        }
        #expect(OwnerTable.target(ofIntent: 0) == nil)
        #expect(OwnerTable.intentsOffset + OwnerTable.intentSlots * 8 <= OwnerTable.entrySize)
        // Every slot has a word of its own; the first eight each a cache line of their own.
        let words = (0..<OwnerTable.intentSlots).map(OwnerTable.intentWord(slot:))
        #expect(
            Set(words).count == OwnerTable.intentSlots && words.allSatisfy { (0..<OwnerTable.intentSlots).contains($0) }
        )
        #expect(Set(words.prefix(8).map { $0 / 8 }).count == 8)
    }
}
