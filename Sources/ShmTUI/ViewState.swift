// What the person watching has chosen: screen, selection, zoom, modes. Changed by keys, read by views.

/// The state of the live view that is not data: which screen, what is selected, which modes.
public struct ViewState: Sendable {
    /// The two screens.
    public enum Screen: Hashable, Sendable {
        /// Heatmap and fragmentation panel.
        case main
        /// One block opened up.
        case drillDown
    }

    /// A message shown in the key line for a few seconds.
    public struct Flash: Sendable {
        public var text: String
        public var isError: Bool
        public var until: ContinuousClock.Instant
    }

    public var screen = Screen.main
    public var showHelp = false
    /// The picture is frozen; sampling goes on so rates and history have no gap.
    public var paused = false
    /// Cells whose blocks changed since the previous frame are highlighted.
    public var markChanges = true
    public var colorMode: ColorMode
    public var glyphs: GlyphSet
    /// The selected block (the first block of the selected cell).
    public var selectedBlock = 0
    /// Blocks per heatmap cell; `nil` fits the whole cache.
    public var zoom: Int?
    /// The first heatmap row shown when zoomed in.
    public var scrollRow = 0
    /// Time between samples.
    public var interval: Duration
    /// The selected allocation in the drill-down's list.
    public var selectedAllocation = 0
    /// The text typed after `/`, while the jump prompt is open.
    public var jumpInput: String?
    public var flash: Flash?

    public init(colorMode: ColorMode, glyphs: GlyphSet, interval: Duration) {
        self.colorMode = colorMode
        self.glyphs = glyphs
        self.interval = interval
    }

    /// The refresh intervals `r` cycles through: 10, 20, 1, 2 and 5 Hz.
    public static let refreshIntervals: [Duration] = [.milliseconds(100), .milliseconds(50), .seconds(1), .milliseconds(500), .milliseconds(200)]

    /// The next refresh interval after the current one.
    public var nextInterval: Duration {
        guard let index = Self.refreshIntervals.firstIndex(of: interval) else { return Self.refreshIntervals[0] }
        return Self.refreshIntervals[(index + 1) % Self.refreshIntervals.count]
    }
}
