// Every way a real mount can be refused, against a real server: the exit status mount(8)
// expects (32 = the mount failed, 1 = bad usage), a message that says what is wrong, no mount and
// no daemon left afterwards, and never the key in the message.
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized, .timeLimit(.minutes(10)),
       .enabled(if: MountCommandEnvironment.isAvailable, "\(MountCommandEnvironment.requirement)"))
struct MountFailureTests {
    /// The refusal left nothing behind and did not show the key.
    private func expectNothingLeft(_ f: MountCommandFixture, _ dir: String, _ r: CommandResult,
                                   secrets: [String] = [], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(MountProcess.fsType(of: dir) == nil, "a mount remained on \(dir)", sourceLocation: sourceLocation)
        #expect(f.waitUntilNoDaemon(dir, timeout: 10), "a daemon remained for \(dir)", sourceLocation: sourceLocation)
        for secret in [f.key] + secrets {
            #expect(!r.stderr.contains(secret) && !r.stdout.contains(secret), "the key leaked: \(r)",
                    sourceLocation: sourceLocation)
        }
    }

    @Test func wrongKeyFailsWith32AndNoMount() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        let dir = try f.mountpoint("wrong-key")
        let bogusKey = "rk_bogus_\(UUID().uuidString)"
        let badKeyFile = f.scratch.path + "/bogus-key"
        try f.writeKeyFile(badKeyFile, key: bogusKey)
        let options = "api_url=\(f.apiURL),apikey_file=\(badKeyFile),spool_dir=\(f.spoolDirectory(for: dir))"
        let r = try f.runBinary(["default", dir, "-o", options])
        #expect(r.status == 32, "\(r)")
        #expect(r.stderr.hasPrefix("mount.roset: "), "\(r)")
        #expect(r.stderr.contains("refused the API key"), "\(r)")
        expectNothingLeft(f, dir, r, secrets: [bogusKey])

        // The same through mount(8): its status and the helper's words reach the user.
        try f.sbin.link("mount.fuse.roset", to: f.binary)
        let m = f.mount(["-t", "fuse.roset", "default", dir, "-o", options])
        #expect(m.status == 32, "\(m)")
        #expect(m.stderr.contains("refused the API key"), "\(m)")
        expectNothingLeft(f, dir, m, secrets: [bogusKey])
    }

    @Test func unreachableControlPlaneHasItsOwnMessage() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        let dir = try f.mountpoint("unreachable")
        let url = "http://127.0.0.1:\(MountCommandFixture.closedLoopbackPort())"
        let r = try f.runBinary(["default", dir, "-o", "api_url=\(url),apikey_file=\(f.keyFile),spool_dir=\(f.spoolDirectory(for: dir))"])
        #expect(r.status == 32, "\(r)")
        #expect(r.stderr.contains("cannot reach the control plane at \(url)"), "\(r)")
        #expect(!r.stderr.contains("refused the API key"))
        expectNothingLeft(f, dir, r)
    }

    @Test func missingMountPoint() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        let dir = f.scratch.path + "/no-such-folder"
        f.track(dir)
        let r = try f.runBinary(["default", dir, "-o", f.options(for: dir)])
        #expect(r.status == 32, "\(r)")
        #expect(r.stderr.contains("mount point \(dir) does not exist"), "\(r)")
        expectNothingLeft(f, dir, r)
    }

    @Test func mountPointThatIsAFile() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        let file = f.scratch.path + "/a-file"
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        f.track(file)
        let r = try f.runBinary(["default", file, "-o", f.options(for: file)])
        #expect(r.status == 32, "\(r)")
        #expect(r.stderr.contains("is not a folder"), "\(r)")
        expectNothingLeft(f, file, r)
    }

    @Test func mountPointAlreadyMounted() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        let dir = try f.mountpoint("twice")
        let first = try f.runBinary(["default", dir, "-o", f.options(for: dir)])
        try #require(first.status == 0, "\(first)")
        let daemons = f.daemons(serving: dir)
        #expect(daemons.count == 1)
        // Same mount point, same spool: the mount point is what is wrong, and the message says so.
        let second = try f.runBinary(["default", dir, "-o", f.options(for: dir)])
        #expect(second.status == 32, "\(second)")
        #expect(second.stderr.contains("is already mounted"), "\(second)")
        #expect(!second.stderr.contains(f.key))
        // The first mount is untouched and still the only one.
        #expect(f.daemons(serving: dir) == daemons)
        #expect(Posix.write(dir + "/still-works", [1, 2, 3]) == .ok)
        #expect(Command.run("/bin/umount", [dir]).status == 0)
        #expect(f.waitUntilNoDaemon(dir))
        #expect(MountProcess.fsType(of: dir) == nil, "two mounts were stacked on \(dir)")
    }

    @Test func mountPointWhoseDaemonWasKilledSaysSoAndWhereItsSpoolIs() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        let dir = try f.mountpoint("dead")
        let first = try f.runBinary(["default", dir, "-o", f.options(for: dir)])
        try #require(first.status == 0, "\(first)")
        let daemons = f.daemons(serving: dir)
        try #require(daemons.count == 1)
        kill(daemons[0], SIGKILL)
        #expect(ProcFS.waitUntilGone(daemons[0]))
        // The kernel keeps the dead mount: a stat of its root may still come from the attribute
        // cache, anything that reaches the daemon fails with ENOTCONN.
        #expect(f.isMounted(dir))
        let second = try f.runBinary(["default", dir, "-o", f.options(for: dir)])
        #expect(second.status == 32, "\(second)")
        #expect(second.stderr.contains("its daemon is gone"), "\(second)")
        #expect(second.stderr.contains("umount \(dir)"), "\(second)")
        #expect(second.stderr.contains("mount.roset status \(dir)"), "\(second)")
        #expect(f.daemons(serving: dir).isEmpty, "a refused mount left a daemon behind")
        // Following the message works: unmount, then mount again.
        #expect(Command.run("/bin/umount", [dir]).status == 0)
        let third = try f.runBinary(["default", dir, "-o", f.options(for: dir)])
        #expect(third.status == 0, "\(third)")
        #expect(Posix.write(dir + "/after-the-crash", [4, 5, 6]) == .ok)
        #expect(Command.run("/bin/umount", [dir]).status == 0)
        #expect(f.waitUntilNoDaemon(dir))
    }

    @Test func keyFileReadableByOthersIsRefusedWithTheChmodHint() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        let dir = try f.mountpoint("open-key")
        let open = f.scratch.path + "/world-readable-key"
        try f.writeKeyFile(open, key: f.key, mode: 0o644)
        let r = try f.runBinary(["default", dir, "-o", "api_url=\(f.apiURL),apikey_file=\(open)"])
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr.contains("chmod 600 \(open)"), "\(r)")
        expectNothingLeft(f, dir, r)
        // Group-writable too.
        try FileManager.default.setAttributes([.posixPermissions: 0o620], ofItemAtPath: open)
        let g = try f.runBinary(["default", dir, "-o", "api_url=\(f.apiURL),apikey_file=\(open)"])
        #expect(g.status == 1 && g.stderr.contains("chmod 600"), "\(g)")
        expectNothingLeft(f, dir, g)
    }

    @Test func literalKeyOptionIsRefusedWithAPointerToTheKeyFile() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        let dir = try f.mountpoint("literal-key")
        let r = try f.runBinary(["default", dir, "-o", "api_url=\(f.apiURL),apikey=\(f.key)"])
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr.contains("apikey_file"), "\(r)")
        expectNothingLeft(f, dir, r)
    }

    @Test func fakeValidatesAgainstTheRealSetupAndDoesNotMount() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        let dir = try f.mountpoint("fake")
        let r = try f.runBinary(["default", dir, "-f", "-v", "-o", f.options(for: dir)])
        #expect(r.status == 0, "\(r)")
        #expect(r.stderr.contains("not mounting"), "\(r)")
        expectNothingLeft(f, dir, r)
        // Fake mode still refuses what a real mount would refuse before starting.
        let file = f.scratch.path + "/plain-file"
        try Data().write(to: URL(fileURLWithPath: file))
        let notFolder = try f.runBinary(["default", file, "-f", "-o", f.options(for: dir)])
        #expect(notFolder.status == 32 && notFolder.stderr.contains("is not a folder"), "\(notFolder)")
    }
}
