// The API key stays secret while mounted: in no process's /proc/PID/cmdline (mount(8), the
// helper, the daemon, anything), not in /proc/mounts, not in the daemon's log_file, and, in the
// roset-fuse form `--api-key KEY`, scrubbed from the daemon's own command line.
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized, .timeLimit(.minutes(10)),
       .enabled(if: MountCommandEnvironment.isAvailable, "\(MountCommandEnvironment.requirement)"))
struct MountKeySecrecyTests {
    private func expectKeyNowhere(_ key: String, mountpoint: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let leaks = ProcFS.commandLinesContaining(key)
        #expect(leaks.isEmpty, "the key is in the command line of \(leaks.map(\.0))", sourceLocation: sourceLocation)
        let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
        #expect(mounts.contains(mountpoint), "not mounted: \(mountpoint)", sourceLocation: sourceLocation)
        #expect(!mounts.contains(key), "the key is in /proc/mounts", sourceLocation: sourceLocation)
        let mountinfo = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        #expect(!mountinfo.contains(key), "the key is in mountinfo", sourceLocation: sourceLocation)
    }

    @Test func keyIsAbsentFromCommandLinesMountsAndTheLog() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        try f.sbin.link("mount.fuse.roset", to: f.binary)
        let dir = try f.mountpoint("secret")
        let log = f.scratch.path + "/daemon.log"
        let r = f.mount(["-v", "-t", "fuse.roset", "default", dir, "-o", f.options(for: dir, ["log_file=\(log)"])])
        #expect(r.status == 0, "\(r)")
        #expect(!r.stderr.contains(f.key) && !r.stdout.contains(f.key))
        // Work that makes the daemon talk to the control plane and log.
        #expect(Posix.mkdir(dir + "/folder") == .ok)
        #expect(Posix.write(dir + "/folder/file.txt", Array("content".utf8)) == .ok)
        #expect(Posix.read(dir + "/folder/file.txt").1 == Array("content".utf8))
        _ = Posix.stat(dir + "/missing")
        expectKeyNowhere(f.key, mountpoint: dir)
        #expect(Command.run("/bin/umount", [dir]).status == 0)
        #expect(f.waitUntilNoDaemon(dir))
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(text.contains("mounted"), "the log_file is empty: \(text)")
        #expect(!text.contains(f.key), "the key is in the log_file")
    }

    @Test func debugLogOfTheForegroundDaemonHasNoKey() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        let dir = try f.mountpoint("debug")
        let m = try MountProcess.start(mountpoint: dir, apiURL: f.apiURL, apiKeyFile: f.keyFile,
                                       options: ["debug", "spool_dir=\(f.spoolDirectory(for: dir))"], binary: f.binary)
        defer { m.stop() }
        #expect(Posix.write(dir + "/d.txt", Array("debug".utf8)) == .ok)
        _ = Posix.listDirectory(dir)
        expectKeyNowhere(f.key, mountpoint: dir)
        #expect(m.stop() == 0)
        #expect(m.stderr.contains("debug"), "no debug lines: \(m.stderr.suffix(500))")
        #expect(!m.stderr.contains(f.key), "the key is in the debug log")
    }

    @Test func rosetFuseApiKeyIsScrubbedFromTheDaemonsCommandLine() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        let dir = try f.mountpoint("seed-key")
        let seed = try f.alias("roset-fuse")
        let m = try MountProcess(arguments: [dir, "--api-key", f.key, "--api-url", f.apiURL, "--foreground",
                                             "--spool-dir", f.spoolDirectory(for: dir)],
                                 mountpoint: dir, environment: Command.baseEnvironment, binary: seed)
        defer { m.stop() }
        try m.waitUntilMounted()
        let argv = ProcFS.commandLine(m.pid) ?? []
        #expect(argv.contains("--api-key"), "unexpected argv \(argv)")
        #expect(!argv.joined(separator: " ").contains(f.key), "the key is still in /proc/\(m.pid)/cmdline")
        expectKeyNowhere(f.key, mountpoint: dir)
        #expect(Posix.write(dir + "/seed.txt", [1]) == .ok)
        #expect(m.stop() == 0)
        #expect(!m.stderr.contains(f.key))

        // Daemon mode with --api-key=KEY: the detached daemon's argv is scrubbed too.
        let r = Command.run(seed, [dir, "--api-key=\(f.key)", "--api-url", f.apiURL, "--spool-dir", f.spoolDirectory(for: dir)])
        #expect(r.status == 0, "\(r)")
        let daemons = f.daemons(serving: dir)
        #expect(daemons.count == 1)
        for pid in daemons {
            #expect(!(ProcFS.commandLine(pid) ?? []).joined(separator: " ").contains(f.key))
        }
        expectKeyNowhere(f.key, mountpoint: dir)
        #expect(Command.run("/bin/umount", [dir]).status == 0)
        #expect(f.waitUntilNoDaemon(dir))
    }
}
