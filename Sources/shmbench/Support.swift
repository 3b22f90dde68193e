// Timing, randomness and the result table shared by every benchmark.

import Foundation
import ShmInspect
import ShmWorkloads

/// The median of some measurements.
func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/// The median over the runs of a ratio taken within each run (`numerator[run] / denominator[run]`):
/// the two figures of one run met the same load from elsewhere on the machine, which medians taken
/// apart would not cancel.
func medianRatio(_ numerator: [Double], _ denominator: [Double]) -> Double {
    median(zip(numerator, denominator).map { $0 / $1 })
}

/// Request sizes drawn once, so the measured loops only index an array.
func randomSizes(_ range: ClosedRange<Int>, count: Int = 4096, seed: UInt64 = 42) -> [Int] {
    var random = SplitMix64(seed: seed)
    return (0..<count).map { _ in random.uniform(range) }
}

/// One line of the results.
struct ResultRow: Codable {
    var section: String
    var workload: String
    var value: Double
    var unit: String
    /// The figure this one is compared with (glibc in the same run, or another row).
    var baseline: Double?
    var baselineName: String?
    /// `value / baseline` (or the reverse for throughputs, as `ratioName` says).
    var ratio: Double?
    var ratioName: String?
    /// The target, in words, and whether this run met it.
    var target: String?
    var met: Bool?
    /// The original C library's figure for the same workload, from the issue's reference table.
    var original: String?
}

/// All results of one run.
struct ResultTable {
    private(set) var rows: [ResultRow] = []

    mutating func add(_ row: ResultRow) { rows.append(row) }

    func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        struct Document: Codable {
            var machine: String
            var rows: [ResultRow]
        }
        let document = Document(machine: MachineDescription.current, rows: rows)
        return String(decoding: (try? encoder.encode(document)) ?? Data(), as: UTF8.self)
    }

    func text(machine: String) -> String {
        let header = ["workload", "value", "baseline", "ratio", "target", "", "original C"]
        var lines: [[String]] = []
        var sections: [(String, Int)] = []
        for row in rows {
            if sections.last?.0 != row.section { sections.append((row.section, lines.count)) }
            lines.append([
                row.workload,
                Self.format(row.value, row.unit),
                row.baseline.map { "\(Self.format($0, row.unit)) \(row.baselineName ?? "")" } ?? "",
                row.ratio.map { String(format: "%.2f×", $0) + (row.ratioName.map { " \($0)" } ?? "") } ?? "",
                row.target ?? "",
                row.met.map { $0 ? "ok" : "MISSED" } ?? "",
                row.original ?? "",
            ])
        }
        var widths = header.map(\.count)
        for line in lines {
            for (column, cell) in line.enumerated() { widths[column] = max(widths[column], cell.count) }
        }
        func render(_ cells: [String]) -> String {
            cells.enumerated().map { column, cell in
                column == 1
                    ? String(repeating: " ", count: widths[column] - cell.count) + cell
                    : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
        var output = ["shmbench on \(machine)", "", render(header)]
        var nextSection = 0
        for (index, line) in lines.enumerated() {
            if nextSection < sections.count, sections[nextSection].1 == index {
                output.append("")
                output.append("## \(sections[nextSection].0)")
                nextSection += 1
            }
            output.append(render(line))
        }
        return output.joined(separator: "\n")
    }

    static func format(_ value: Double, _ unit: String) -> String {
        switch unit {
        case "%": String(format: "%.2f %%", value)
        case "M/s": String(format: "%.1f M/s", value)
        case "ns": value >= 10_000 ? String(format: "%.1f µs", value / 1000) : String(format: "%.1f ns", value)
        default: String(format: "%.2f %@", value, unit)
        }
    }
}
