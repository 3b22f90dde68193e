// Colour modes and what each colour role looks like in them.

/// How many colours the view uses. `c` cycles through the modes the terminal supports.
enum ColorMode: String, CaseIterable, Hashable, Sendable {
    /// xterm's 256-colour palette: smooth ramps.
    case full256 = "256 colours"
    /// The eight ANSI colours.
    case basic8 = "8 colours"
    /// No colour: glyphs and bold / reverse carry the meaning.
    case monochrome = "monochrome"

    /// The modes a terminal with `colors` colours can show, richest first; `noColor` (the
    /// `NO_COLOR` convention) leaves only monochrome.
    static func available(colors: Int, noColor: Bool) -> [ColorMode] {
        if noColor { return [.monochrome] }
        if colors >= 256 { return [.full256, .basic8, .monochrome] }
        if colors >= 8 { return [.basic8, .monochrome] }
        return [.monochrome]
    }
}

/// The colours and attributes of every ``ColorRole`` in one ``ColorMode``.
struct Palette: Hashable, Sendable {
    /// Heat levels of the heatmap ramp.
    static let heatLevels = 8
    /// Distinct owner colours in the drill-down.
    static let ownerColors = 6

    /// One role's look: foreground and background colour numbers (−1 = the terminal's default)
    /// and whether the role adds bold, dim or reverse.
    struct Look: Hashable, Sendable {
        var foreground: Int16
        var background: Int16
        var bold = false
        var dim = false
        var reverse = false
    }

    /// The mode this palette draws in.
    let mode: ColorMode

    /// Every role that has a colour pair, in pair order (pair n + 1 is `roles[n]`).
    static let roles: [ColorRole] =
        [.plain, .muted, .accent, .title, .titleLive, .titlePaused, .banner, .selection, .good, .warning, .bad]
        + (0..<heatLevels).map(ColorRole.heat) + (0..<ownerColors).map(ColorRole.owner)

    /// The colour pair number of a role (1-based; 0 is the terminal default).
    static func pairNumber(_ role: ColorRole) -> Int16 { Int16(role.code + 1) }

    // ANSI colour numbers.
    private static let black: Int16 = 0, red: Int16 = 1, green: Int16 = 2, yellow: Int16 = 3
    private static let blue: Int16 = 4, magenta: Int16 = 5, cyan: Int16 = 6, white: Int16 = 7

    /// Green through yellow and orange to red: xterm-256 colour numbers.
    private static let heat256: [Int16] = [28, 34, 70, 106, 142, 178, 208, 196]
    private static let heat8: [(Int16, Bool)] = [
        (blue, false), (blue, true), (cyan, false), (green, false), (green, true), (yellow, false), (red, false),
        (red, true),
    ]
    private static let owners256: [Int16] = [39, 208, 170, 114, 221, 45]
    private static let owners8: [Int16] = [cyan, magenta, yellow, green, blue, red]

    /// The look of `role` in this palette's mode.
    func look(_ role: ColorRole) -> Look {
        let none: Int16 = -1
        switch mode {
        case .monochrome:
            switch role {
            case .title, .selection: return Look(foreground: none, background: none, reverse: true)
            case .titleLive, .titlePaused, .banner:
                return Look(foreground: none, background: none, bold: true, reverse: true)
            case .muted: return Look(foreground: none, background: none, dim: true)
            case .accent, .bad: return Look(foreground: none, background: none, bold: true)
            case .heat(let level): return Look(foreground: none, background: none, bold: level == Self.heatLevels - 1)
            case .plain, .good, .warning, .owner: return Look(foreground: none, background: none)
            }
        case .full256:
            switch role {
            case .plain: return Look(foreground: none, background: none)
            case .muted: return Look(foreground: 244, background: none)
            case .accent: return Look(foreground: 81, background: none, bold: true)
            case .title: return Look(foreground: 255, background: 24)
            case .titleLive: return Look(foreground: 120, background: 24, bold: true)
            case .titlePaused: return Look(foreground: 220, background: 24, bold: true)
            case .banner: return Look(foreground: 231, background: 124, bold: true)
            case .selection: return Look(foreground: 16, background: 153)
            case .good: return Look(foreground: 114, background: none)
            case .warning: return Look(foreground: 214, background: none)
            case .bad: return Look(foreground: 203, background: none, bold: true)
            case .heat(let level):
                return Look(foreground: Self.heat256[min(max(level, 0), Self.heatLevels - 1)], background: none)
            case .owner(let index): return Look(foreground: Self.owners256[index % Self.ownerColors], background: none)
            }
        case .basic8:
            switch role {
            case .plain: return Look(foreground: none, background: none)
            case .muted: return Look(foreground: none, background: none, dim: true)
            case .accent: return Look(foreground: Self.cyan, background: none, bold: true)
            case .title: return Look(foreground: Self.white, background: Self.blue)
            case .titleLive: return Look(foreground: Self.green, background: Self.blue, bold: true)
            case .titlePaused: return Look(foreground: Self.yellow, background: Self.blue, bold: true)
            case .banner: return Look(foreground: Self.white, background: Self.red, bold: true)
            case .selection: return Look(foreground: Self.black, background: Self.cyan)
            case .good: return Look(foreground: Self.green, background: none)
            case .warning: return Look(foreground: Self.yellow, background: none)
            case .bad: return Look(foreground: Self.red, background: none, bold: true)
            case .heat(let level):
                let (color, bold) = Self.heat8[min(max(level, 0), Self.heatLevels - 1)]
                return Look(foreground: color, background: none, bold: bold)
            case .owner(let index): return Look(foreground: Self.owners8[index % Self.ownerColors], background: none)
            }
        }
    }
}
