// The comparison of two copies of the words (what every refresh of a live view does first): its
// span, group and word tests against a comparison of every word.

import ShmWorkloads
import Testing

@testable import ShmInspect

@Suite("Changed words")
struct ChangedWordsTests {
    /// Where the compared words start in their arrays: at the start (16-byte aligned, the vector
    /// operations read memory directly), one word in (both 8 bytes off), or only the old words one
    /// word in (the copies aligned differently).
    static let offsets = [(old: 0, new: 0), (old: 1, new: 1), (old: 1, new: 0)]

    @Test(
        "changes in scattered, clustered and emptied groups: the blocks and words of a word-by-word comparison",
        arguments: offsets.indices)
    func matchesWordByWord(offsetIndex: Int) {
        let offsets = Self.offsets[offsetIndex]
        var random = SplitMix64(seed: 0xC4A1_6ED)
        // 8 spans of 64 groups and a tail of 3 words, so that the last group is short.
        let count = 8 * ChangedWords.spanWords + 3
        var old = [UInt64](repeating: 0, count: count)
        // Half the spans start with words, so that spans all empty, all not and mixed are compared.
        for index in 0..<(count / 2) where Bool.random(using: &random) { old[index] = random.next() }
        var emptyGroups = [UInt64](repeating: 0, count: (count / ChangedWords.chunkWords + 64) / 64)
        old.withUnsafeBufferPointer { old in
            emptyGroups.withUnsafeMutableBufferPointer { ChangedWords.markEmptyGroups(of: old, in: $0) }
        }
        for round in 0..<60 {
            var new = old
            // A few scattered words, a cluster in one span, and now and then a whole group emptied
            // or filled, some spans left as they were.
            for _ in 0..<Int.random(in: 0...12, using: &random) {
                new[Int.random(in: 0..<count, using: &random)] = random.next() & 0xFFFF
            }
            let cluster = Int.random(in: 0..<(count - 64), using: &random)
            for index in cluster..<(cluster + 64) where Bool.random(using: &random) { new[index] = random.next() }
            if round % 3 == 0 {
                let group = Int.random(in: 0..<(count / ChangedWords.chunkWords), using: &random)
                let words = (group * ChangedWords.chunkWords)..<((group + 1) * ChangedWords.chunkWords)
                let value: UInt64 = Bool.random(using: &random) ? 0 : 1
                for index in words { new[index] = value }
            }
            var changed = ChangedWords()
            let oldCopy = [UInt64](repeating: 7, count: offsets.old) + old
            let newCopy = [UInt64](repeating: 9, count: offsets.new) + new
            oldCopy.withUnsafeBufferPointer { old in
                newCopy.withUnsafeBufferPointer { new in
                    emptyGroups.withUnsafeMutableBufferPointer { groups in
                        changed.record(
                            UnsafeBufferPointer(rebasing: old[offsets.old...]),
                            UnsafeBufferPointer(rebasing: new[offsets.new...]), firstBlock: 100, emptyGroups: groups)
                    }
                }
            }
            let expected = old.indices.filter { old[$0] != new[$0] }
            #expect(changed.blocks == expected.map { $0 + 100 }, "round \(round)")
            #expect(changed.earlierWords == expected.map { old[$0] })
            #expect(changed.laterWords == expected.map { new[$0] })
            // A group is marked empty when, and only when, it is all zero.
            for group in 0..<((count + ChangedWords.chunkWords - 1) / ChangedWords.chunkWords) {
                let words = (group * ChangedWords.chunkWords)..<min(count, (group + 1) * ChangedWords.chunkWords)
                #expect(
                    new[words].allSatisfy { $0 == 0 } == (emptyGroups[group / 64] & (1 << UInt64(group % 64)) != 0),
                    "round \(round), group \(group)")
            }
            old = new
        }
        #expect(emptyGroups.contains { $0 != 0 }, "empty groups were marked")
    }
}
