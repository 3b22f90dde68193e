// The crash soak in small: `shmtop soak` with 20 SIGKILLs (the full soak is 200 or more; see
// docs/reliability.md), and the inspector's JSON report of what the dead left behind.

#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ShmAlloc
import ShmFormat
import Testing

extension MultiProcessTests {
    @Test("crash soak: 20 SIGKILLs of 4 writers; every word valid after each; leaked bytes = what the dead held",
          .timeLimit(.minutes(3)))
    func crashSoak() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.file("soak.shm")
        let soak = try runToEnd(BuiltProducts.shmtop, ["soak", path, "--kills", "20", "--interval-ms", "100", "--keep"],
                                in: scratch, timeout: .seconds(120))
        #expect(soak.termination == .exited(0), "\(soak.outputTail)")
        #expect(soak.result("kills") == 20)
        #expect(soak.result("problems") == 0, "\(soak.outputTail)")
        #expect(soak.result("mismatches") == 0)
        #expect(soak.result("invalidWords") == 0)
        // A writer killed before it allocated anything leaves no owner (likelier on a loaded machine).
        #expect((1...20).contains(soak.result("deadOwners")), "killed writers held something: \(soak.outputTail)")
        #expect(soak.result("leakedBytes") > 0)
        #expect(soak.result("leakedBytes") == soak.result("deadHeldBytes"))
        #expect(soak.result("operations") > 1000, "the writers must actually have worked: \(soak.outputTail)")

        // The same figures from `shmtop snapshot --json`, and the writers' allocations are all gone.
        let report = try runToEnd(BuiltProducts.shmtop, ["snapshot", "--json", path], in: scratch)
        #expect(report.termination == .exited(0), "\(report.outputTail)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(report.output.utf8)) as? [String: Any])
        #expect(json["invalidWords"] as? Int == 0)
        #expect(json["leakedBytes"] as? Int == soak.result("leakedBytes"))
        #expect(json["allocatedBytes"] as? Int == soak.result("leakedBytes") + soak.result("unattributedBytes"))

        // What the dead left is leaked, not broken: a fresh writer works correctly around it.
        let survivor = try Self.startStress(1, path: path, seconds: 0.5, window: 256, in: scratch)[0]
        #expect(survivor.wait(timeout: .seconds(60)) == .exited(0), "\(survivor.outputTail)")
        #expect(survivor.result("mismatches") == 0)
        #expect(try SharedCache(path: path, policy: .attach).invalidBlocks == [])
    }
}
