// Mount modes through a real mount: `ro` refuses every mutation with EROFS and writes nothing to
// the spool; SIGTERM with an upload pending exits, unmounts, and leaves the data either uploaded
// or sealed in the spool for the next mount, which uploads it; request_timeout= and retries=
// bound how long a call to an unresponsive control plane keeps an application waiting.
import Foundation
import RosetClient
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized, .timeLimit(.minutes(10)))
struct FSMountModesTests {
    @Test func readOnlyRefusesEveryMutation() throws {
        try MountedRoset.with(options: ["ro"]) { f in
            let root = try f.rootId
            let dir = try f.api.createFolder(name: "dir", parentId: root, metadata: nil)
            _ = try f.api.createFolder(name: "empty", parentId: root, metadata: nil)
            let file = try f.uploadRemote(name: "file", bytes: [1, 2, 3])
            _ = try f.api.updateNode(id: file.id, parentId: nil, name: nil, metadata: ["xattr.user.k": .string("v")])
            _ = dir

            #expect(Posix.read(f.path("file")).1 == [1, 2, 3])
            #expect(Posix.getxattr(f.path("file"), "user.k").1 == Array("v".utf8))
            let erofs = Sys.failed(EROFS)
            #expect(Posix.write(f.path("new"), [1]) == erofs)
            #expect(Posix.write(f.path("file"), [1], flags: O_WRONLY) == erofs)
            #expect(Posix.write(f.path("file"), [1], flags: O_WRONLY | O_TRUNC) == erofs)
            #expect(Posix.write(f.path("file"), [1], flags: O_WRONLY | O_APPEND) == erofs)
            #expect(Posix.mkdir(f.path("newdir")) == erofs)
            #expect(Posix.rmdir(f.path("empty")) == erofs)
            #expect(Posix.unlink(f.path("file")) == erofs)
            #expect(Posix.rename(f.path("file"), f.path("dir/file")) == erofs)
            #expect(Posix.truncate(f.path("file"), 0) == erofs)
            #expect(Posix.chmod(f.path("file"), 0o600) == erofs)
            #expect(Posix.chown(f.path("file"), 1, 1) == erofs)
            #expect(Posix.utimens(f.path("file"), atime: (1, 0), mtime: (1, 0)) == erofs)
            #expect(Posix.setxattr(f.path("file"), "user.x", [1]) == erofs)
            #expect(Posix.removexattr(f.path("file"), "user.k") == erofs)
            #expect(Posix.symlink("t", f.path("link")) == erofs)
            #expect(Posix.link(f.path("file"), f.path("hard")) == erofs)
            #expect(Posix.mknodRegular(f.path("node")) == erofs)
            #expect(Posix.mknodFIFO(f.path("fifo")) == erofs)
            #expect(Posix.touch(f.path("file")) == erofs)

            #expect(f.spoolEntryFiles().isEmpty, "\(f.spoolEntryFiles())")
            #expect(f.remoteContentIfAny("file") == [1, 2, 3])
            #expect(Set(try f.api.children(of: root).map(\.name)) == ["dir", "empty", "file"])
            #expect(Posix.mountOptions(MountProcess_resolved(f.mountpoint)).contains("ro"))
        }
    }

    @Test func sigtermWithAPendingUploadKeepsTheData() throws {
        try MountedRoset.with(options: ["shutdown_grace=1"]) { f in
            try f.server.setFaults(#"{"latencyMs":{"upload":8000}}"#)
            let bytes = PatternBytes.make(count: 300_000, seed: 16)
            #expect(Posix.write(f.path("pending"), bytes) == .ok)
            let status = f.unmount()
            #expect(status != nil, "the daemon did not exit by itself after SIGTERM")
            #expect(!MountProcess.isRosetMount(f.mountpoint))
            let uploaded = (try? f.remoteContent("pending")) == bytes
            let sealed = f.spoolEntryFiles().contains { $0.contains("data/") }
            #expect(uploaded || sealed, "neither uploaded nor left in the spool: \(f.spoolFiles())")
            print("FSMountModesTests: after SIGTERM the file was \(uploaded ? "uploaded" : "left sealed in the spool")")

            try f.server.clearFaults()
            try f.mountAgain()
            #expect(Posix.read(f.path("pending")).1 == bytes)
            #expect(f.eventually { (try? f.remoteContent("pending")) == bytes })
            #expect(f.eventually { f.spoolEntryFiles().isEmpty })
        }
    }

    @Test func secondSignalExitsAtOnceWithTheSpoolIntact() throws {
        try MountedRoset.with(options: ["shutdown_grace=600"]) { f in
            // Uploads hang far longer than anyone waits: only the second signal can end the daemon.
            try f.server.setFaults(#"{"latencyMs":{"upload":300000}}"#)
            let bytes = PatternBytes.make(count: 50_000, seed: 19)
            #expect(Posix.write(f.path("kept"), bytes) == .ok)
            let pid = try #require(f.daemonPID)
            kill(pid, SIGTERM)
            usleep(300_000)
            #expect(f.daemonIsAlive, "the first signal should wait for the pending upload")
            kill(pid, SIGTERM)
            #expect(f.mount?.waitForExit(timeout: 60) != nil, "the second signal did not end the daemon")
            f.unmount()
            #expect(!MountProcess.isRosetMount(f.mountpoint))
            #expect(f.spoolEntryFiles().contains { $0.contains("data/") }, "\(f.spoolFiles())")
            try f.server.clearFaults()
            try f.mountAgain()
            #expect(Posix.read(f.path("kept")).1 == bytes)
            #expect(f.eventually { (try? f.remoteContent("kept")) == bytes })
        }
    }

    @Test func umountWithAPendingUploadKeepsTheData() throws {
        try MountedRoset.with(options: ["shutdown_grace=1"]) { f in
            try f.server.setFaults(#"{"latencyMs":{"upload":8000}}"#)
            let bytes = PatternBytes.make(count: 200_000, seed: 17)
            #expect(Posix.write(f.path("pending"), bytes) == .ok)
            let umount = Process()
            umount.executableURL = URL(fileURLWithPath: "/bin/umount")
            umount.arguments = [f.mountpoint]
            try umount.run()
            umount.waitUntilExit()
            #expect(umount.terminationStatus == 0)
            #expect(f.mount?.waitForExit(timeout: 60) != nil, "the daemon did not exit after umount")
            #expect(!MountProcess.isRosetMount(f.mountpoint))
            let uploaded = (try? f.remoteContent("pending")) == bytes
            let sealed = f.spoolEntryFiles().contains { $0.contains("data/") }
            #expect(uploaded || sealed)
            f.unmount()
            try f.server.clearFaults()
            try f.mountAgain()
            #expect(f.eventually { (try? f.remoteContent("pending")) == bytes })
        }
    }

    @Test func anUnresponsiveControlPlaneFailsWithEIOWithinRequestTimeoutTimesAttempts() throws {
        try MountedRoset.with(options: ["request_timeout=1", "retries=1"]) { f in
            #expect(Posix.write(f.path("before"), [7]) == .ok)
            // SIGSTOP: the server's socket still accepts connections, but nothing answers,
            // which is what a hung control plane looks like from here.
            let serverPID = f.server.pid
            #expect(kill(serverPID, SIGSTOP) == 0)
            var resumed = false
            defer { if !resumed { kill(serverPID, SIGCONT) } }
            let started = Date()
            let (result, _) = Posix.stat(f.path("never-looked-up"))
            let waited = Date().timeIntervalSince(started)
            #expect(result == .failed(EIO))
            // Two attempts of 1 s each, plus a backoff of at most 0.1 s; the default would be
            // 10 attempts of 30 s.
            #expect(waited >= 1.5 && waited < 15, "waited \(waited) s")
            kill(serverPID, SIGCONT)
            resumed = true
            #expect(Posix.stat(f.path("before")).1.st_size == 1)
            #expect(Posix.write(f.path("after"), [8]) == .ok)
            #expect(Posix.read(f.path("after")).1 == [8])
        }
    }
}
