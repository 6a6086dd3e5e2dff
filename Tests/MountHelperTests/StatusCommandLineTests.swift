// The rule that tells `mount.roset status DIR` from a mount of a SPEC named `status`: only the
// bare form (plus --json) is the status view; any mount flag makes it a mount.
import Testing
@testable import MountHelper

@Suite struct StatusCommandLineTests {
    @Test func theBareFormIsTheStatusView() {
        #expect(StatusCommandLine.parse(["status", "/mnt/a"]) == StatusRequest(directory: "/mnt/a", json: false))
        #expect(StatusCommandLine.parse(["status", "/mnt/a", "--json"]) == StatusRequest(directory: "/mnt/a", json: true))
        #expect(StatusCommandLine.parse(["status", "--json", "/mnt/a"]) == StatusRequest(directory: "/mnt/a", json: true))
    }

    @Test func aSpecNamedStatusWithOptionsStillMounts() {
        #expect(StatusCommandLine.parse(["status", "/mnt/a", "-o", "rw"]) == nil)
        #expect(StatusCommandLine.parse(["status", "/mnt/a", "-orw"]) == nil)
        #expect(StatusCommandLine.parse(["status", "/mnt/a", "-f"]) == nil)
        #expect(StatusCommandLine.parse(["status", "/mnt/a", "-t", "roset"]) == nil)
        #expect(StatusCommandLine.parse(["default", "/mnt/a"]) == nil)
        #expect(StatusCommandLine.parse(["status"]) == nil)
        #expect(StatusCommandLine.parse(["status", "/a", "/b"]) == nil)
    }
}
