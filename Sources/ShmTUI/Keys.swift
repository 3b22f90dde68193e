// Keys to commands, per screen. Pure, so the key map is tested without a terminal.

import Foundation
import ShmInspect

/// What a key asks the live view to do.
enum Command: Hashable, Sendable {
    case quit
    /// Move the selection by cells (main view).
    case moveCells(Int)
    /// Move the selection by rows of cells (main view).
    case moveRows(Int)
    /// Move the selection by screens of rows (main view).
    case movePages(Int)
    case first, last
    case zoomIn, zoomOut
    case startJump
    case drillDown, back
    /// Select the next (+1) or previous (−1) allocation in the drill-down.
    case moveAllocation(Int)
    /// Open the next (+1) or previous (−1) block in the drill-down.
    case neighbourBlock(Int)
    case togglePause, writeSnapshot, cycleRefreshRate, cycleColorMode, toggleChangeMarks, toggleHelp
    case click(row: Int, column: Int)
    case redraw
    /// Open (or close) the owner table.
    case toggleOwners
    /// Select the next (+1) or previous (−1) owner row.
    case moveOwner(Int)
    /// Sort the owner table by the column right (+1) or left (−1) of the current one.
    case sortColumn(Int)
    /// Reverse the owner table's order.
    case invertSort
    /// Highlight the selected owner's allocations in the heatmap.
    case highlightOwner
    /// Stop highlighting an owner.
    case clearHighlight
}

/// The key map of both screens.
enum KeyMap {
    /// The command of `key` on `screen`, or `nil` for an unbound key.
    static func command(for key: KeyPress, on screen: ViewState.Screen) -> Command? {
        if let shared = sharedCommand(key) { return shared }
        switch screen {
        case .main: return mainCommand(key)
        case .drillDown: return drillDownCommand(key)
        case .owners: return ownersCommand(key)
        }
    }

    private static func sharedCommand(_ key: KeyPress) -> Command? {
        switch key {
        case .character("q"), .character("Q"): .quit
        case .character(" "): .togglePause
        case .character("s"): .writeSnapshot
        case .character("r"): .cycleRefreshRate
        case .character("c"): .cycleColorMode
        case .character("f"): .toggleChangeMarks
        case .character("?"), .character("H"): .toggleHelp
        case .character("\u{0C}"), .resize: .redraw
        case .click(let row, let column): .click(row: row, column: column)
        default: nil
        }
    }

    private static func mainCommand(_ key: KeyPress) -> Command? {
        switch key {
        case .left, .character("h"): .moveCells(-1)
        case .right, .character("l"): .moveCells(1)
        case .up, .character("k"): .moveRows(-1)
        case .down, .character("j"): .moveRows(1)
        case .pageUp: .movePages(-1)
        case .pageDown: .movePages(1)
        case .home, .character("g"): .first
        case .end, .character("G"): .last
        case .character("+"), .character("="): .zoomIn
        case .character("-"), .character("_"): .zoomOut
        case .character("/"): .startJump
        case .enter: .drillDown
        case .character("o"): .toggleOwners
        case .escape: .clearHighlight
        default: nil
        }
    }

    /// htop's sort keys: `<` and `>` move the sort column, F6 moves it right, `I` inverts.
    private static func ownersCommand(_ key: KeyPress) -> Command? {
        switch key {
        case .character("o"), .escape, .backspace: .toggleOwners
        case .down, .character("j"), .tab: .moveOwner(1)
        case .up, .character("k"), .backTab: .moveOwner(-1)
        case .character("<"), .character(","): .sortColumn(-1)
        case .character(">"), .character("."), .function(6): .sortColumn(1)
        case .character("I"): .invertSort
        case .enter: .highlightOwner
        default: nil
        }
    }

    private static func drillDownCommand(_ key: KeyPress) -> Command? {
        switch key {
        case .escape, .backspace: .back
        case .tab, .down, .character("j"): .moveAllocation(1)
        case .backTab, .up, .character("k"): .moveAllocation(-1)
        case .left, .character("h"), .character("["): .neighbourBlock(-1)
        case .right, .character("l"), .character("]"): .neighbourBlock(1)
        default: nil
        }
    }

    /// The block a jump text names: a block number (`1234`, `#1234`), or an offset in hex
    /// (`0x1f400`) or with a unit (`64MiB`, `12k`). `nil` when the text names no block of the cache.
    static func jumpTarget(_ text: String, blockSize: Int, blockCount: Int) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        let block: Int?
        if trimmed.hasPrefix("0x") {
            block = Int(trimmed.dropFirst(2), radix: 16).map { $0 / blockSize }
        } else if trimmed.hasPrefix("#") {
            block = Int(trimmed.dropFirst())
        } else if let number = Int(trimmed) {
            block = number
        } else {
            block = Format.bytes(parsing: trimmed).map { $0 / blockSize }
        }
        guard let block, (0..<blockCount).contains(block) else { return nil }
        return block
    }
}
