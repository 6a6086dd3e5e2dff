// The original `roset-fuse` command line, `roset-fuse MOUNTPOINT --api-key-file FILE --api-url URL ...`, run
// through a `roset-fuse` link to the one binary: it daemonizes unless --foreground, --read-only
// gives EROFS, --mount-id and --allow-other reach the mount, and ROSET_API_URL, ROSET_API_KEY and
// ROSET_MOUNT_ID stand in for the flags.
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized, .timeLimit(.minutes(10)),
       .enabled(if: MountCommandEnvironment.isAvailable, "\(MountCommandEnvironment.requirement)"))
struct MountRosetFuseCommandTests {
    private func umountAndWait(_ f: MountCommandFixture, _ dir: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let u = Command.run("/bin/umount", [dir])
        #expect(u.status == 0, "\(u)", sourceLocation: sourceLocation)
        #expect(f.waitUntilNoDaemon(dir), sourceLocation: sourceLocation)
        #expect(f.waitUntilUnmounted(dir), sourceLocation: sourceLocation)
    }

    @Test func seedFormDaemonizesAndMounts() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        let dir = try f.mountpoint("seed-daemon")
        let r = try f.runBinary(as: "roset-fuse", [dir, "--api-key-file", f.keyFile, "--api-url", f.apiURL,
                                                   "--spool-dir", f.spoolDirectory(for: dir)])
        #expect(r.status == 0, "\(r)")
        #expect(f.isMounted(dir))
        let daemons = f.daemons(serving: dir)
        #expect(daemons.count == 1)
        for pid in daemons { #expect(ProcFS.status(pid)?.ppid != getpid()) }
        #expect(Posix.write(dir + "/seed.txt", Array("seed".utf8)) == .ok)
        #expect(Posix.read(dir + "/seed.txt").1 == Array("seed".utf8))
        umountAndWait(f, dir)
        #expect(try f.remoteContent("seed.txt") == Array("seed".utf8))
    }

    @Test func foregroundStaysAndMountIdAllowOtherReachTheMount() throws {
        let f = try MountCommandFixture(serverArguments: ["--mount", "datasets"])
        defer { f.close() }
        let dir = try f.mountpoint("seed-foreground")
        let m = try MountProcess(arguments: [dir, "--api-key-file", f.keyFile, "--api-url", f.apiURL, "--foreground",
                                             "--mount-id", "datasets", "--allow-other", "--cache-ttl", "5",
                                             "--cache-size-mb", "64", "--spool-dir", f.spoolDirectory(for: dir)],
                                 mountpoint: dir, environment: Command.baseEnvironment, binary: try f.alias("roset-fuse"))
        defer { m.stop() }
        try m.waitUntilMounted()
        // Mounted by the very process that was started: it did not fork away.
        #expect(m.isRunning)
        #expect(f.daemons(serving: dir) == [m.pid])
        let entry = try #require(procMountsEntry(dir))
        #expect(entry.source == "roset:datasets")
        #expect(entry.options.contains("allow_other"))
        #expect(m.stop() == 0, "exit status after SIGTERM; stderr: \(m.stderr.suffix(800))")
        #expect(MountProcess.fsType(of: dir) == nil)
    }

    @Test func readOnlyGivesEROFS() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        try f.createRemoteFolder("existing")
        let dir = try f.mountpoint("seed-ro")
        let r = try f.runBinary(as: "roset-fuse", [dir, "--api-key-file", f.keyFile, "--api-url", f.apiURL, "--read-only",
                                                   "--spool-dir", f.spoolDirectory(for: dir)])
        #expect(r.status == 0, "\(r)")
        #expect(procMountsEntry(dir)?.options.contains("ro") == true)
        #expect(Posix.stat(dir + "/existing").0 == .ok)
        #expect(Posix.write(dir + "/new.txt", [1]) == .failed(EROFS))
        #expect(Posix.mkdir(dir + "/newdir") == .failed(EROFS))
        #expect(Posix.rmdir(dir + "/existing") == .failed(EROFS))
        umountAndWait(f, dir)
    }

    @Test func environmentStandsInForTheFlags() throws {
        let f = try MountCommandFixture(serverArguments: ["--mount", "datasets"])
        defer { f.close() }
        let dir = try f.mountpoint("seed-env")
        let env = ["ROSET_API_URL": f.apiURL, "ROSET_API_KEY": f.key, "ROSET_MOUNT_ID": "datasets"]
        let r = try f.runBinary(as: "roset-fuse", [dir, "--spool-dir", f.spoolDirectory(for: dir)], environment: env)
        #expect(r.status == 0, "\(r)")
        #expect(!r.stderr.contains(f.key))
        // ROSET_MOUNT_ID picked the mount; ROSET_API_URL and ROSET_API_KEY reached the server.
        #expect(procMountsEntry(dir)?.source == "roset:datasets")
        #expect(Posix.mkdir(dir + "/via-env") == .ok)
        umountAndWait(f, dir)

        // The flags win over the environment: a wrong ROSET_API_URL is overridden by --api-url.
        let closed = "http://127.0.0.1:\(MountCommandFixture.closedLoopbackPort())"
        let flagsWin = try f.runBinary(as: "roset-fuse", [dir, "--api-url", f.apiURL, "--spool-dir", f.spoolDirectory(for: dir)],
                                       environment: env.merging(["ROSET_API_URL": closed]) { $1 })
        #expect(flagsWin.status == 0, "\(flagsWin)")
        umountAndWait(f, dir)

        // And an unknown ROSET_MOUNT_ID is used (and refused by the control plane), not ignored.
        let unknown = try f.runBinary(as: "roset-fuse", [dir, "--spool-dir", f.spoolDirectory(for: dir)],
                                      environment: env.merging(["ROSET_MOUNT_ID": "no-such-mount"]) { $1 })
        #expect(unknown.status == 32, "\(unknown)")
        #expect(unknown.stderr.contains("no-such-mount"), "\(unknown)")
        #expect(MountProcess.fsType(of: dir) == nil)
    }
}
