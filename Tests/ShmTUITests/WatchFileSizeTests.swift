// `shmtop watch` on a file that grows and shrinks under it (the delete and re-attach case is in
// WatchTmuxTests).

import Foundation
import ShmFormat
import ShmInspect
import ShmTUI
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension WatchTmuxTests {
    @Test(
        "the file grows while watching: no banner; shrinks: a banner, TRUNCATED in the title, the last frame stays; back to its size: re-attached, LIVE"
    )
    func fileGrowsAndShrinks() throws {
        let cache = try KnownCache()
        let size = try #require(try FileManager.default.attributesOfItem(atPath: cache.path)[.size] as? Int)
        let session = try cache.watchMainView()

        #expect(truncate(cache.path, off_t(size * 2)) == 0)
        usleep(1_500_000)  // many refreshes at the default rate
        let grown = try session.capture()
        #expect(
            grown.contains("LIVE") && !grown.contains("while attached"),
            "a longer file is still the same cache:\n\(grown)")
        #expect(grown.contains("owners  0 alive  1 dead"))

        #expect(truncate(cache.path, off_t(size / 2)) == 0)
        let shrunk = try session.waitForScreen("the banner") {
            $0.contains("truncated to \(size / 2) bytes while attached")
        }
        #expect(shrunk.contains("showing the last good frame"))
        #expect(shrunk.lines.first?.hasSuffix("● TRUNCATED") == true, "the title says so too:\n\(shrunk)")
        #expect(shrunk.contains("Heatmap") && shrunk.contains("owners  0 alive  1 dead"), "the last frame stays")

        #expect(truncate(cache.path, off_t(size)) == 0)
        let back = try session.waitForScreen("re-attached") { $0.contains("re-attached to") }
        #expect(!back.contains("while attached"))
        #expect(back.lines.first?.hasSuffix("● LIVE") == true, "\(back)")
        #expect(try session.quit() == 0)
    }
}
