// `mount.roset warmup`: told apart from a mount of a SPEC named `warmup` (any other flag), with
// --jobs checked.
import Testing
@testable import MountHelper

@Suite struct WarmupCommandLineTests {
    @Test func parsesPathsAndJobs() throws {
        #expect(try WarmupCommandLine.parse(["warmup", "/mnt/a", "/mnt/b"]) == WarmupRequest(paths: ["/mnt/a", "/mnt/b"], jobs: 8))
        #expect(try WarmupCommandLine.parse(["warmup", "--jobs", "3", "/mnt/a"]) == WarmupRequest(paths: ["/mnt/a"], jobs: 3))
        #expect(try WarmupCommandLine.parse(["warmup", "--jobs=16", "/mnt/a"])?.jobs == 16)
    }

    @Test func anythingElseIsAMount() throws {
        #expect(try WarmupCommandLine.parse(["warmup", "/mnt", "-o", "ro"]) == nil)
        #expect(try WarmupCommandLine.parse(["warmup"]) == nil)
        #expect(try WarmupCommandLine.parse(["status", "/mnt"]) == nil)
    }

    @Test func aBadJobCountIsRefusedByName() {
        for bad in [["warmup", "--jobs", "0", "/m"], ["warmup", "--jobs", "x", "/m"], ["warmup", "--jobs"]] {
            #expect(throws: MountHelperError.self) { _ = try WarmupCommandLine.parse(bad) }
        }
    }
}
