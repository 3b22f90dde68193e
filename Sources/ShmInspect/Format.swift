// Numbers as the live view and the command line print them: short, fixed-width friendly, and exact
// where it matters. Here, beside the format, so that the views print sizes as the format spells
// them without reading the format themselves.

import Foundation
import ShmFormat
import ShmSystem

/// Number formatting for the live view and the command line.
public enum Format {
    /// A byte count: `0 B`, `32 B`, `1.5 KiB`, `512 MiB`.
    public static func bytes(_ bytes: Int) -> String { ByteCount(bytes).description }

    /// The bytes a size written as ``bytes(_:)`` writes it (`64 KiB`, `1.5 MiB`, `4096`), or
    /// `nil` when `text` is not one.
    public static func bytes(parsing text: String) -> Int? { ByteCount(parsing: text)?.bytes }

    /// A count with a metric suffix past four digits: `999`, `1234`, `12.3k`, `1.2M`.
    public static func count(_ value: Double) -> String {
        let magnitude = abs(value)
        let sign = value < 0 ? "-" : ""
        switch magnitude {
        case ..<10:
            return sign + (magnitude == magnitude.rounded() ? "\(Int(magnitude))" : fixed(magnitude, digits: 1))
        case ..<10_000: return sign + "\(Int(magnitude.rounded()))"
        case ..<1_000_000: return sign + fixed(magnitude / 1e3, digits: 1) + "k"
        case ..<1_000_000_000: return sign + fixed(magnitude / 1e6, digits: 1) + "M"
        default: return sign + fixed(magnitude / 1e9, digits: 1) + "G"
        }
    }

    /// A byte rate: `0 B/s`, `1.5 MiB/s`, with a sign when `signed` (`+12 KiB/s`, `-3 MiB/s`).
    public static func byteRate(_ bytesPerSecond: Double, signed: Bool = false) -> String {
        let rounded = Int(bytesPerSecond.rounded())
        let sign = signed ? (rounded > 0 ? "+" : rounded < 0 ? "-" : "±") : ""
        return sign + bytes(abs(rounded)) + "/s"
    }

    /// A fraction as a percentage with one decimal: `53.1%`.
    public static func percent(_ fraction: Double) -> String { fixed(fraction * 100, digits: 1) + "%" }

    /// `value` with `digits` decimals, exactly as C's `%.*f` prints it (rounded to the nearest,
    /// a tie in the binary value to the even digit; `-0.0` for a negative value that rounds to
    /// zero), without Foundation's `String(format:)`, which builds a C format string and runs
    /// vfprintf for each number: the live view prints about thirty such numbers a frame.
    /// (The kernel's indices, −1 or 0...1, are printed this way.)
    public static func fixed(_ value: Double, digits: Int) -> String {
        let scale = Double(tenToThe[min(max(digits, 0), tenToThe.count - 1)])
        let magnitude = value.magnitude
        let product = magnitude * scale
        // Beyond 2^52 the product has no fraction left to round; NaN and infinities are spelled by C.
        guard digits >= 0, digits < tenToThe.count, product < 0x1p52 else {
            return String(format: "%.\(digits)f", value)
        }
        // magnitude × scale exactly is product + error (a fused multiply-add rounds only once).
        let error = (-product).addingProduct(magnitude, scale)
        let whole = product.rounded(.down)
        let fraction = product - whole
        // `fraction` is a multiple of the product's ulp and |error| is at most half an ulp, so
        // only a fraction of exactly one half needs the error (or, with none, the even rule).
        var units = UInt64(whole)
        if fraction > 0.5 || (fraction == 0.5 && (error > 0 || (error == 0 && units & 1 == 1))) { units += 1 }
        let sign = value.sign == .minus ? "-" : ""
        guard digits > 0 else { return sign + String(units) }
        let decimals = String(units % tenToThe[digits])
        return sign + String(units / tenToThe[digits]) + "."
            + String(repeating: "0", count: digits - decimals.count) + decimals
    }

    /// Powers of ten for ``fixed(_:digits:)``: exact as doubles, and their products below 2^52
    /// fit the integer that holds the rounded digits.
    private static let tenToThe: [UInt64] = [1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000]

    /// A user offset in hex, at least 8 digits: `0x00134808`.
    public static func offset(_ offset: Int) -> String {
        let digits = String(offset, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
    }

    /// A word as 16 hex digits in groups of four: `0x0000_0000_dead_beef`.
    public static func hexWord(_ word: UInt64) -> String {
        let digits = String(word, radix: 16)
        let full = String(repeating: "0", count: 16 - digits.count) + digits
        return "0x"
            + stride(from: 0, to: 16, by: 4).map { start in
                String(full.dropFirst(start).prefix(4))
            }.joined(separator: "_")
    }

    /// A word as 64 binary digits in groups of eight, most significant first.
    public static func binaryWord(_ word: UInt64) -> String {
        let digits = String(word, radix: 2)
        let full = String(repeating: "0", count: 64 - digits.count) + digits
        return stride(from: 0, to: 64, by: 8).map { String(full.dropFirst($0).prefix(8)) }.joined(separator: " ")
    }

    /// Bytes as text: printable ASCII as is, anything else as `.`.
    public static func printable(_ bytes: some Sequence<UInt8>) -> String {
        String(String.UnicodeScalarView(bytes.map { (0x20..<0x7F).contains($0) ? Unicode.Scalar($0) : "." }))
    }

    /// Bytes as two-digit hex separated by spaces.
    public static func hexBytes(_ bytes: some Sequence<UInt8>) -> String {
        bytes.map { $0 < 16 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined(separator: " ")
    }

    /// A refresh rate: `10 Hz`, `2 Hz`, `0.5 Hz`.
    public static func hertz(interval: Duration) -> String {
        let seconds = interval.inSeconds
        let hertz = 1 / seconds
        return hertz == hertz.rounded() ? "\(Int(hertz)) Hz" : fixed(hertz, digits: 1) + " Hz"
    }

    /// A period in seconds with the decimals it needs, down to milliseconds: `0.05 s`, `0.5 s`,
    /// `1 s`. Unlike ``age(_:)``, never rounded to a tenth: the refresh period must match its rate.
    public static func seconds(_ duration: Duration) -> String {
        let milliseconds = Int((duration / .milliseconds(1)).rounded())
        var text = String(format: "%d.%03d", milliseconds / 1000, milliseconds % 1000)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text + " s"
    }

    /// A count and its noun, in the plural unless the count is one: `1 allocation`, `0 blocks`,
    /// `7 free chunks`.
    public static func counted(_ count: Int, _ noun: String) -> String {
        "\(count) \(noun)\(count == 1 ? "" : "s")"
    }

    /// A duration in seconds for "n s ago" texts: `0.4 s`, `12 s`, `3 min`.
    public static func age(_ duration: Duration) -> String {
        let seconds = duration.inSeconds
        if seconds < 10 { return fixed(seconds, digits: 1) + " s" }
        if seconds < 120 { return "\(Int(seconds)) s" }
        return "\(Int(seconds / 60)) min"
    }

    /// `text` padded on the left to `width` characters (right-aligned).
    public static func right(_ text: String, _ width: Int) -> String {
        String(repeating: " ", count: max(0, width - text.unicodeScalars.count)) + text
    }

    /// `text` padded on the right to `width` characters (left-aligned).
    public static func left(_ text: String, _ width: Int) -> String {
        text + String(repeating: " ", count: max(0, width - text.unicodeScalars.count))
    }
}
