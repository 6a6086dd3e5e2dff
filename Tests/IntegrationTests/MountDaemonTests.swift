// The daemon mount.roset leaves behind: live as soon as the helper returned 0, detached by double
// fork (not a child of the caller, not a session leader), cwd "/", stdio on /dev/null, and ended
// by `umount DIR`, `fusermount3 -u DIR` and SIGTERM alike, each time with the mount gone too.
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized, .timeLimit(.minutes(10)),
       .enabled(if: MountCommandEnvironment.isAvailable, "\(MountCommandEnvironment.requirement)"))
struct MountDaemonTests {
    /// `mount.roset default DIR -o …` (daemon mode); returns the daemon's PID.
    private func mountDaemon(_ f: MountCommandFixture, _ dir: String, _ extra: [String] = []) throws -> pid_t {
        let r = try f.runBinary(["default", dir, "-o", f.options(for: dir, extra)])
        try #require(r.status == 0, "mount.roset: \(r)")
        let daemons = f.daemons(serving: dir)
        try #require(daemons.count == 1, "daemons serving \(dir): \(daemons)")
        return daemons[0]
    }

    @Test func mountIsLiveWhenTheHelperReturnsAndTheDaemonIsDetached() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        let dir = try f.mountpoint("daemon")
        try f.createRemoteFolder("made-before-mount")
        let pid = try mountDaemon(f, dir)
        // No waiting: the helper returned only once the mount answered.
        let (st, info) = Posix.stat(dir + "/made-before-mount")
        #expect(st == .ok)
        #expect(info.st_mode & S_IFMT == S_IFDIR)
        #expect(f.isMounted(dir))

        #expect(ProcFS.link("/proc/\(pid)/cwd") == "/")
        for fd in 0...2 {
            #expect(ProcFS.link("/proc/\(pid)/fd/\(fd)") == "/dev/null", "fd \(fd) of the daemon")
        }
        let status = try #require(ProcFS.status(pid))
        #expect(status.ppid != getpid(), "the daemon is a child of the test")
        #expect(status.ppid == 1 || ProcFS.status(status.ppid).map { $0.sessionId != status.sessionId } ?? true,
                "the daemon's parent \(status.ppid) is not init or a subreaper outside its session")
        // Second fork: in its own session, but not its leader, so it can never get a terminal.
        #expect(status.sessionId != pid)
        #expect(status.sessionId != getsid(0))

        let u = Command.run("/bin/umount", [dir])
        #expect(u.status == 0, "\(u)")
        #expect(ProcFS.waitUntilGone(pid), "umount did not end the daemon")
        #expect(f.waitUntilUnmounted(dir))
    }

    @Test func daemonKeepsNoDescriptorItInherited() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        let dir = try f.mountpoint("inherit")
        let marker = f.scratch.path + "/inherited-marker"
        try Data("m".utf8).write(to: URL(fileURLWithPath: marker))
        // The shell hands fd 7 (no close-on-exec) to mount.roset, as any caller may do by accident.
        let r = Command.run("/bin/sh", ["-c", #"exec 7<"$1"; exec "$2" default "$3" -o "$4""#, "sh",
                                        marker, f.binary, dir, f.options(for: dir)], timeout: 90)
        #expect(r.status == 0, "\(r)")
        #expect(!r.timedOut, "the caller never saw the helper end: the daemon holds its lifetime descriptor")
        let pid = try #require(f.daemons(serving: dir).first)
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        let targets = fds.compactMap { ProcFS.link("/proc/\(pid)/fd/\($0)") }
        #expect(!targets.contains(MountCommandFixture.resolved(marker)), "the daemon kept the inherited fd: \(targets)")
        #expect(Command.run("/bin/umount", [dir]).status == 0)
        #expect(ProcFS.waitUntilGone(pid))
    }

    @Test func fusermount3UnmountEndsTheDaemon() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        let dir = try f.mountpoint("fusermount")
        let pid = try mountDaemon(f, dir)
        let u = Command.run("/bin/fusermount3", ["-u", dir])
        #expect(u.status == 0, "fusermount3 -u: \(u)")
        #expect(ProcFS.waitUntilGone(pid), "fusermount3 -u did not end the daemon")
        #expect(f.waitUntilUnmounted(dir))
    }

    @Test func sigtermUnmountsGracefullyAfterUploading() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        let dir = try f.mountpoint("sigterm")
        let pid = try mountDaemon(f, dir)
        let bytes = PatternBytes.make(count: 300_000, seed: 42)
        #expect(Posix.write(dir + "/before-term.bin", bytes) == .ok)
        kill(pid, SIGTERM)
        #expect(ProcFS.waitUntilGone(pid), "SIGTERM did not end the daemon")
        #expect(f.waitUntilUnmounted(dir), "SIGTERM left the mount behind")
        // Graceful: the file closed before the signal reached the store during the grace time.
        #expect(try f.remoteContent("before-term.bin") == bytes)
    }

    @Test func sigintUnmountsToo() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        let dir = try f.mountpoint("sigint")
        let pid = try mountDaemon(f, dir)
        kill(pid, SIGINT)
        #expect(ProcFS.waitUntilGone(pid), "SIGINT did not end the daemon")
        #expect(f.waitUntilUnmounted(dir), "SIGINT left the mount behind")
    }

    @Test func namespaceFlagMountsInsideThatMountNamespace() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        let dir = try f.mountpoint("namespace")
        // A process that only holds a private mount namespace of its own.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        holder.arguments = ["--mount", "--propagation", "private", "/bin/sleep", "600"]
        holder.standardOutput = FileHandle.nullDevice
        holder.standardError = FileHandle.nullDevice
        try holder.run()
        // Ended at once: it holds nothing but the namespace.
        defer {
            kill(holder.processIdentifier, SIGKILL)
            ProcFS.waitUntilGone(holder.processIdentifier, timeout: 10)
        }
        let ns = "/proc/\(holder.processIdentifier)/ns/mnt"
        let deadline = Date().addingTimeInterval(20)
        while ProcFS.link(ns) == ProcFS.link("/proc/self/ns/mnt") && Date() < deadline { usleep(20_000) }
        try #require(ProcFS.link(ns) != ProcFS.link("/proc/self/ns/mnt"), "unshare did not make a namespace")

        let r = try f.runBinary(["default", dir, "-N", ns, "-o", f.options(for: dir)])
        #expect(r.status == 0, "\(r)")
        let inside = (try? String(contentsOfFile: "/proc/\(holder.processIdentifier)/mountinfo", encoding: .utf8)) ?? ""
        #expect(inside.contains(" \(dir) ") && inside.contains("fuse.roset"), "not mounted inside the namespace")
        #expect(MountProcess.fsType(of: dir) == nil, "mounted in the test's own namespace instead")
        let pid = try #require(f.daemons(serving: dir).first)
        #expect(ProcFS.link("/proc/\(pid)/ns/mnt") == ProcFS.link(ns))
        let u = Command.run("/usr/bin/nsenter", ["--target", String(holder.processIdentifier), "--mount", "/bin/umount", dir])
        #expect(u.status == 0, "umount inside the namespace: \(u)")
        #expect(ProcFS.waitUntilGone(pid), "umount inside the namespace did not end the daemon")
    }

    @Test func logFileGetsTheDaemonsLines() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        let dir = try f.mountpoint("logfile")
        let log = f.scratch.path + "/daemon.log"
        let pid = try mountDaemon(f, dir, ["log_file=\(log)"])
        _ = Posix.listDirectory(dir)
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(text.contains("mounted"), "log_file: \(text)")
        #expect(Command.run("/bin/umount", [dir]).status == 0)
        #expect(ProcFS.waitUntilGone(pid))
    }
}
