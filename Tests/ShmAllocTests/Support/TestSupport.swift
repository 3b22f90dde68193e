// What the ShmAlloc tests share beyond ShmTestSupport: whole-cache checks.

import ShmAlloc
import ShmFormat

// MARK: - Whole-cache checks

extension SharedCache {
    /// Every block's buddy word, in block order.
    var allWords: [UInt64] { (0..<geometry.blockCount).map { word(ofBlock: $0) } }

    /// The blocks whose word breaks the buddy invariant (or, in the null region, is not full).
    var invalidBlocks: [Int] {
        let tree = geometry.tree
        return allWords.indices.filter { block in
            let word = word(ofBlock: block)
            return block < layout.nullBlockCount ? word != tree.fullWord : !tree.isValid(word)
        }
    }

    /// The blocks past the null region that still hold any allocation.
    var usedBlocks: [Int] {
        (layout.nullBlockCount..<geometry.blockCount).filter { word(ofBlock: $0) != 0 }
    }
}
