// Realistic file paths, reproducible from a number: what the load workers store and verify.

/// Paths like the ones a file cache keeps: a common prefix, a few directories, a file name.
///
/// Lengths are skewed like real paths: most between 30 and 120 bytes, a tail of deep ones, and
/// a few very long (generated, hashed) names, always within `lengths`.
public enum PathNames {
    /// The lengths a path may have: what one allocation of the default geometry holds.
    public static let lengths = 8...1016

    private static let prefixes = [
        "/usr/lib/x86_64-linux-gnu/", "/usr/share/doc/", "/usr/include/", "/usr/lib/python3/dist-packages/",
        "/home/ada/.cache/", "/var/lib/dpkg/info/", "/etc/", "/opt/toolchains/swift/usr/lib/swift/linux/",
        "/home/ada/src/project/Sources/", "/usr/share/locale/", "/var/log/", "/srv/www/static/",
    ]
    private static let directories = [
        "gconv", "perl5", "gtk-3.0", "modules", "site-packages", "include", "bin", "lib", "share", "icons",
        "hicolor", "48x48", "apps", "fonts", "truetype", "dejavu", "node_modules", "@types", "dist", "build",
        "Release", "debug", "x86_64", "aarch64", "config", "cache", "tmp", "locale", "LC_MESSAGES", "man",
    ]
    private static let stems = [
        "libc", "libssl", "libcrypto", "libz", "README", "index", "main", "config", "__init__", "util",
        "package", "Makefile", "CMakeLists", "copyright", "changelog", "LICENSE", "module", "core", "test",
    ]
    private static let extensions = [
        ".so.6", ".so.3", ".h", ".py", ".json", ".gz", ".md", ".txt", ".swift", ".conf", ".mo", "",
    ]

    /// The path with this seed.
    public static func path(seed: UInt64) -> [UInt8] {
        var random = SplitMix64(seed: seed)
        var text = prefixes.randomElement(using: &random)!
        // Depth: mostly 1–4 directories, sometimes deep.
        let depth = random.next() % 10 < 8 ? Int(random.next() % 4) + 1 : Int(random.next() % 20) + 5
        for _ in 0..<depth { text += directories.randomElement(using: &random)! + "/" }
        text += stems.randomElement(using: &random)!
        if random.next() % 50 == 0 {
            // A generated name: a long hex run, as content-addressed caches make.
            let extra = Int(random.next() % 700)
            for _ in 0..<(extra / 16 + 1) { text += String(random.next(), radix: 16) }
        }
        text += extensions.randomElement(using: &random)!
        var bytes = Array(text.utf8)
        if bytes.count > lengths.upperBound { bytes.removeLast(bytes.count - lengths.upperBound) }
        while bytes.count < lengths.lowerBound { bytes.append(UInt8(ascii: "_")) }
        return bytes
    }
}
