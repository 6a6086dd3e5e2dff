// The mount registry's file names stay what they were when it lived in RosetFS (the first 16 hex
// digits of the SHA-256 of the canonical mount point), so a status command finds the registration
// of a daemon started by an older build; canonical paths never touch the mount point itself.
import Foundation
import Testing
@testable import MountHelper

@Suite struct MountRegistryTests {
    @Test func aRegistrationFileIsNamedByTheMountPointsSHA256() {
        // python3 -c "import hashlib; print(hashlib.sha256(b'/mnt/data').hexdigest()[:16])"
        #expect(MountRegistry.file(for: "/mnt/data") == MountRegistry.folder + "/6faba07f33e642da.json")
        #expect(MountRegistry.sha256Hex("").hasPrefix("e3b0c44298fc1c14"))
    }

    @Test func canonicalPathsResolveDotsAndRelativeNames() {
        #expect(MountRegistry.canonical("/mnt/./x/../data") == "/mnt/data")
        #expect(MountRegistry.canonical("/") == "/")
        let cwd = FileManager.default.currentDirectoryPath
        let resolvedCwd = URL(fileURLWithPath: cwd).resolvingSymlinksInPath().path
        #expect(MountRegistry.canonical("relative-name") == (resolvedCwd == "/" ? "" : resolvedCwd) + "/relative-name")
    }
}
