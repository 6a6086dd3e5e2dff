// What an admin meets beyond a plain mount, each through the real mount.roset and a real server:
// a mount point that already carries a mount (refused unless it is an automount point, and
// `mount -f` says the same), a real autofs automount where the kernel has autofs, subdir= (and
// the SPEC form ID:/path), log_level= in daemon mode, and SIGHUP reopening log_file= the way
// contrib/logrotate/mount.roset uses it, without unmounting.
// Invariant: every test unmounts what it mounted and ends its daemons by PID (the fixture's close).
import Foundation
import RosetClient
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized, .timeLimit(.minutes(10)),
       .enabled(if: MountCommandEnvironment.isAvailable, "\(MountCommandEnvironment.requirement)"))
struct MountAdminTests {
    private func mountDaemon(_ f: MountCommandFixture, _ dir: String, _ extra: [String] = [],
                             spec: String = "default") throws -> pid_t {
        let r = try f.runBinary([spec, dir, "-o", f.options(for: dir, extra)])
        try #require(r.status == 0, "mount.roset: \(r)")
        let daemons = f.daemons(serving: dir)
        try #require(daemons.count == 1, "daemons serving \(dir): \(daemons)")
        return daemons[0]
    }

    private func unmount(_ f: MountCommandFixture, _ dir: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(Command.run("/bin/umount", [dir]).status == 0, sourceLocation: sourceLocation)
        #expect(f.waitUntilNoDaemon(dir), sourceLocation: sourceLocation)
        #expect(f.waitUntilUnmounted(dir), sourceLocation: sourceLocation)
    }

    /// Waits until `path` holds `needle` (log lines are written by another process).
    private func waitFor(_ needle: String, in path: String, timeout: Double = 20) -> String {
        let deadline = Date().addingTimeInterval(timeout)
        var text = ""
        repeat {
            text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            if text.contains(needle) { return text }
            usleep(50_000)
        } while Date() < deadline
        return text
    }

    // MARK: - Mount points that already carry a mount

    /// A tmpfs (any mount but autofs) on the mount point is refused, by a real mount and by
    /// `mount -f` alike, with the same message; nothing is stacked on it.
    @Test func mountOverAnotherMountIsRefusedAndFakeSaysTheSame() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        let dir = try f.mountpoint("over-tmpfs")
        let t = Command.run("/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "roset-test-tmpfs", dir])
        try #require(t.status == 0, "mount tmpfs: \(t)")
        defer { _ = umount2(dir, Int32(MNT_DETACH)) }

        let fake = try f.runBinary(["default", dir, "-f", "-o", f.options(for: dir)])
        #expect(fake.status == 32, "\(fake)")
        #expect(fake.stderr.contains("is already mounted"), "\(fake)")
        let real = try f.runBinary(["default", dir, "-o", f.options(for: dir)])
        #expect(real.status == 32, "\(real)")
        #expect(real.stderr.contains("is already mounted"), "\(real)")
        #expect(MountProcess.fsType(of: dir) == "tmpfs", "something was stacked on the tmpfs")
        #expect(f.waitUntilNoDaemon(dir, timeout: 10))
    }

    /// Real autofs: automount(8) with a direct map whose entry mounts fuse.roset; the first access
    /// mounts it, the data is there, and unmounting leaves only the autofs trigger, which goes
    /// away with the automount daemon. Skipped, saying why, where the kernel has no autofs.
    @Test func realAutofsDirectMapMountsOnAccess() throws {
        let filesystems = (try? String(contentsOfFile: "/proc/filesystems", encoding: .utf8)) ?? ""
        guard filesystems.split(separator: "\n").contains(where: { $0.hasSuffix("\tautofs") }) else {
            print("skipped realAutofsDirectMapMountsOnAccess: this kernel has no autofs (not in /proc/filesystems; modprobe autofs4 where it is a module)")
            return
        }
        guard let automount = ["/usr/sbin/automount", "/sbin/automount"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            print("skipped realAutofsDirectMapMountsOnAccess: automount(8) is not installed (Debian package autofs; contrib/install-deps.sh installs it)")
            return
        }
        let f = try MountCommandFixture()
        defer { f.close() }
        // mount(8) looks for the helper as /sbin/mount.fuse.roset for -fstype=fuse.roset.
        try f.sbin.link("mount.fuse.roset", to: f.binary)
        let dir = try f.mountpoint("automounted")
        try f.createRemoteFolder("seen-through-autofs")
        let master = f.scratch.path + "/auto.master", map = f.scratch.path + "/auto.direct"
        try "/- \(map) --timeout=0\n".write(toFile: master, atomically: true, encoding: .utf8)
        try "\(dir) -fstype=fuse.roset,\(f.options(for: dir)) :default\n".write(toFile: map, atomically: true, encoding: .utf8)
        let pidFile = f.scratch.path + "/automount.pid"
        let started = Command.run(automount, ["-p", pidFile, master])
        try #require(started.status == 0, "automount: \(started)")
        let automountPID = pid_t((try? String(contentsOfFile: pidFile, encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
        try #require(automountPID > 0, "automount wrote no pid file")
        f.track(pid: automountPID)
        defer {
            kill(automountPID, SIGTERM)
            ProcFS.waitUntilGone(automountPID, timeout: 20)
        }
        #expect(MountProcess.fsType(of: dir) == "autofs", "automount put no trigger on \(dir)")

        // The first access mounts it.
        let (listed, names) = Posix.listDirectory(dir)
        #expect(listed == .ok && names.contains("seen-through-autofs"), "\(listed) \(names)")
        #expect(MountProcess.fsType(of: dir) == "fuse.roset")
        #expect(Posix.write(dir + "/written-through-autofs", [7, 7, 7]) == .ok)

        unmount(f, dir)
        #expect(MountProcess.fsType(of: dir) == "autofs", "unmounting the roset mount took the trigger too")
        kill(automountPID, SIGTERM)
        #expect(ProcFS.waitUntilGone(automountPID, timeout: 20))
        #expect(MountProcess.fsType(of: dir) == nil, "the autofs trigger outlived automount")
        #expect(try f.remoteContent("written-through-autofs") == [7, 7, 7])
    }

    // MARK: - subdir=

    /// subdir= serves one folder as the root: the folder's children show, its parent's do not,
    /// a new file lands inside the folder, /proc/mounts and `mount.roset status` name it, and a
    /// folder that does not exist fails the mount with a message naming it.
    @Test func subdirServesOneFolderAsTheRoot() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        let root = try f.api.resolveRoot()
        let outer = try f.api.createFolder(name: "tenant-a", parentId: root.id, metadata: nil)
        _ = try f.api.createFolder(name: "inner", parentId: outer.id, metadata: nil)
        _ = try f.api.createFolder(name: "tenant-b", parentId: root.id, metadata: nil)

        let dir = try f.mountpoint("subdir")
        let pid = try mountDaemon(f, dir, spec: "default:/tenant-a")
        let (listed, names) = Posix.listDirectory(dir)
        #expect(listed == .ok && names.filter { $0 != "." && $0 != ".." }.sorted() == ["inner"], "\(listed) \(names)")
        #expect(Posix.stat(dir + "/tenant-b").0 != .ok, "a sibling of the subdir is visible")
        // `..` never leaves it: the root's `..` inside the mount is the root itself.
        #expect(Posix.stat(dir + "/inner/..").1.st_ino == Posix.stat(dir).1.st_ino)
        #expect(Posix.write(dir + "/inner/made-here", [1, 2, 3]) == .ok)
        #expect(Posix.stat(dir + "/inner/made-here").1.st_blksize == 4096, "blksize= default of mount.roset(8)")
        #expect(procMountsEntry(dir)?.source == "default:/tenant-a", "\(String(describing: procMountsEntry(dir)))")
        let status = try f.runBinary(["status", dir])
        #expect(status.status == 0 && status.stdout.contains("(subdir /tenant-a)"), "\(status)")
        let json = try f.runBinary(["status", dir, "--json"])
        #expect(json.stdout.contains("\"subdir\" : \"tenant-a\""), "\(json)")
        unmount(f, dir)
        #expect(!ProcFS.isAlive(pid))
        let inner = try #require(try f.api.resolve(name: "inner", in: outer.id))
        #expect(try f.api.resolve(name: "made-here", in: inner.id) != nil, "the file did not land inside the subdir")

        // The option form, and a folder that is not there.
        let missing = try f.runBinary(["default", dir, "-o", f.options(for: dir, ["subdir=tenant-a/nope"])])
        #expect(missing.status == 32, "\(missing)")
        #expect(missing.stderr.contains("subdir=tenant-a/nope") && missing.stderr.contains("no folder /tenant-a/nope"), "\(missing)")
        #expect(MountProcess.fsType(of: dir) == nil)
        #expect(f.waitUntilNoDaemon(dir, timeout: 10))
    }

    /// The roset-fuse command line's --subdir: /proc/mounts shows roset:<mount>:/<subdir>.
    @Test func rosetFuseSubdirFlag() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        try f.createRemoteFolder("only-this")
        let dir = try f.mountpoint("seed-subdir")
        let r = try f.runBinary(as: "roset-fuse", [dir, "--api-url", f.apiURL, "--api-key-file", f.keyFile,
                                                   "--spool-dir", f.spoolDirectory(for: dir), "--subdir", "only-this"])
        try #require(r.status == 0, "\(r)")
        #expect(procMountsEntry(dir)?.source == "roset:default:/only-this", "\(String(describing: procMountsEntry(dir)))")
        #expect(Posix.listDirectory(dir).1.filter { $0 != "." && $0 != ".." }.isEmpty)
        unmount(f, dir)
    }

    // MARK: - Logs for daemons

    /// `debug` (= log_level=debug) no longer keeps the helper in the foreground: mount.roset
    /// returns, the daemon logs debug lines (each control-plane request) to log_file=; at the
    /// default level (info) the same accesses log none.
    @Test func debugLevelInDaemonMode() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        let dir = try f.mountpoint("debug-daemon")
        let log = f.scratch.path + "/debug.log"
        _ = try mountDaemon(f, dir, ["debug", "log_file=\(log)"])
        _ = Posix.stat(dir + "/no-such-file")
        let text = waitFor(" debug [roset.client] ", in: log)
        #expect(text.contains(" debug [roset.client] "), "no debug line in \(log): \(text)")
        #expect(!text.contains(f.key), "the key is in the log")
        unmount(f, dir)

        let quiet = f.scratch.path + "/info.log"
        _ = try mountDaemon(f, dir, ["log_level=info", "log_file=\(quiet)"])
        _ = Posix.stat(dir + "/no-such-file-either")
        unmount(f, dir)
        let infoText = (try? String(contentsOfFile: quiet, encoding: .utf8)) ?? ""
        #expect(infoText.contains("mounted"), "\(infoText)")
        #expect(!infoText.contains(" debug "), "log_level=info logged debug lines: \(infoText)")
    }

    /// What contrib/logrotate/mount.roset does: rename the log, SIGHUP the daemon. The daemon
    /// keeps serving (SIGHUP no longer unmounts), later lines go to a new file at the old path,
    /// and the renamed file keeps what was written before.
    @Test func sighupReopensTheLogFileAndKeepsTheMount() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        let dir = try f.mountpoint("logrotate")
        let log = f.scratch.path + "/roset.log"
        let pid = try mountDaemon(f, dir, ["log_file=\(log)"])
        #expect(waitFor("mounted", in: log).contains("mounted"))
        #expect(Posix.rename(log, log + ".1") == .ok)
        #expect(kill(pid, SIGHUP) == 0)
        let fresh = waitFor("log file reopened", in: log)
        #expect(fresh.contains("SIGHUP: log file reopened"), "new log: \(fresh)")
        #expect(!fresh.contains("mounted"), "the new file holds the old lines: \(fresh)")
        let rotated = (try? String(contentsOfFile: log + ".1", encoding: .utf8)) ?? ""
        #expect(rotated.contains("mounted") && !rotated.contains("reopened"), "rotated log: \(rotated)")
        // Still mounted and serving, by the same daemon.
        #expect(ProcFS.isAlive(pid))
        #expect(f.isMounted(dir))
        #expect(Posix.write(dir + "/after-sighup", [4, 2]) == .ok)
        #expect(Posix.read(dir + "/after-sighup").1 == [4, 2])
        // SIGTERM keeps its meaning: a graceful stop that unmounts, logged in the new file.
        #expect(kill(pid, SIGTERM) == 0)
        #expect(ProcFS.waitUntilGone(pid))
        #expect(f.waitUntilUnmounted(dir))
        #expect(((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("stopping"))
        #expect(try f.remoteContent("after-sighup") == [4, 2])
    }

    /// contrib/logrotate/mount.roset itself, run by logrotate(8) on this test's log: the log is
    /// rotated and the daemon goes on in a new file. Its `pkill -HUP` would reach every roset
    /// daemon on the machine, so here the postrotate signals this test's daemon by PID, and
    /// pgrep(1) shows that the example's pattern selects that daemon.
    @Test func contribLogrotateExampleRotatesALiveMountsLog() throws {
        guard let logrotate = ["/usr/sbin/logrotate", "/sbin/logrotate"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            print("skipped contribLogrotateExampleRotatesALiveMountsLog: logrotate is not installed (contrib/install-deps.sh installs it)")
            return
        }
        let f = try MountCommandFixture()
        defer { f.close() }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let example = try String(contentsOf: root.appendingPathComponent("contrib/logrotate/mount.roset"), encoding: .utf8)
        let pkill = try #require(example.split(separator: "\n").first { $0.contains("pkill -HUP") }.map(String.init))
        let pattern = try #require(pkill.split(separator: "'").dropFirst().first.map(String.init), "no quoted pattern in: \(pkill)")

        let dir = try f.mountpoint("rotated")
        let logs = f.scratch.path + "/log"
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        let log = logs + "/tenant.log"
        let pid = try mountDaemon(f, dir, ["log_file=\(log)"])
        #expect(waitFor("mounted", in: log).contains("mounted"))

        let selected = Command.run("/usr/bin/pgrep", ["-x", pattern]).stdout.split(separator: "\n").compactMap { pid_t($0) }
        #expect(selected.contains(pid), "pgrep -x '\(pattern)' does not select the daemon \(pid): \(selected)")

        let config = f.scratch.path + "/logrotate.conf"
        try example.replacingOccurrences(of: "/var/log/roset/*.log", with: logs + "/*.log")
            .replacingOccurrences(of: pkill.trimmingCharacters(in: .whitespaces), with: "kill -HUP \(pid)")
            .write(toFile: config, atomically: true, encoding: .utf8)
        let r = Command.run(logrotate, ["-f", "-s", f.scratch.path + "/logrotate.state", config])
        #expect(r.status == 0, "logrotate: \(r)")
        #expect(Posix.exists(log + ".1"), "logrotate did not rotate \(log)")
        let fresh = waitFor("log file reopened", in: log)
        #expect(fresh.contains("SIGHUP: log file reopened"), "new log: \(fresh)")
        #expect(ProcFS.isAlive(pid) && f.isMounted(dir))
        #expect(Posix.write(dir + "/after-logrotate", [9]) == .ok)
        unmount(f, dir)
    }

    /// In the foreground too, SIGHUP is not a stop: the mount stays; SIGTERM still stops it.
    @Test func sighupDoesNotStopAForegroundMount() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        let dir = try f.mountpoint("foreground-hup")
        let m = try MountProcess.start(mountpoint: dir, apiURL: f.apiURL, apiKeyFile: f.keyFile,
                                       options: ["spool_dir=\(f.spoolDirectory(for: dir))"], binary: f.binary)
        defer { m.stop() }
        #expect(kill(m.pid, SIGHUP) == 0)
        usleep(500_000)
        #expect(ProcFS.isAlive(m.pid) && f.isMounted(dir), "SIGHUP stopped the foreground mount")
        #expect(Posix.write(dir + "/after-hup", [1]) == .ok)
        #expect(m.stop() == 0)
        #expect(f.waitUntilUnmounted(dir))
    }
}
