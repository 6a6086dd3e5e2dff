// A file larger than the spool's disk, through a real mount: the spool is a 128 MiB tmpfs with
// spool_max_mb=96, and a 1 GiB checkpoint (its first 4 KiB written again at the end, as zip and
// HDF5 writers do) goes through it; the stored file has the sha256 of what was written and the
// spool's disk never held more than the bound plus a part. A daemon killed (kill -9) right after
// such a file was closed, with parts released and others unsent, or dead just before complete
// (test crash point), completes it after remount; one dead while the file was still open with
// parts released leaves its unsent rest as a dead letter that `mount.roset status` names.
import Foundation
import RosetClient
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// sha256 of a byte stream, by the system's sha256sum (the tests do not link a hash library).
final class SHA256Pipe {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()

    init() throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        process.standardInput = input
        process.standardOutput = output
        try process.run()
    }

    func feed(_ bytes: [UInt8]) { input.fileHandleForWriting.write(Data(bytes)) }

    func finish() -> String {
        try? input.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(String(decoding: out, as: UTF8.self).prefix(64))
    }

    /// sha256 of a file, read by sha256sum itself.
    static func of(path: String) -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        p.arguments = [path]
        let out = Pipe()
        p.standardOutput = out
        guard (try? p.run()) != nil else { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return p.terminationStatus == 0 ? String(String(decoding: data, as: UTF8.self).prefix(64)) : nil
    }
}

@Suite(.serialized) struct SpoolStreamingTests {
    static let boundMB = 96
    static let tmpfsMB = 128

    /// A mount whose spool is a fresh tmpfs of `tmpfsMB`, with spool_max_mb=`boundMB`.
    static func smallSpoolMount() throws -> MountedRoset {
        let f = try MountedRoset()
        f.unmount()
        try FileManager.default.createDirectory(atPath: f.spoolDirectory, withIntermediateDirectories: true)
        let tmpfs = Process()
        tmpfs.executableURL = URL(fileURLWithPath: "/bin/mount")
        tmpfs.arguments = ["-t", "tmpfs", "-o", "size=\(tmpfsMB)m", "tmpfs", f.spoolDirectory]
        try tmpfs.run()
        tmpfs.waitUntilExit()
        try #require(tmpfs.terminationStatus == 0, "mount -t tmpfs")
        try f.mountAgain(options: ["spool_max_mb=\(boundMB)"])
        return f
    }

    static func release(_ f: MountedRoset) {
        f.unmount()
        let u = Process()
        u.executableURL = URL(fileURLWithPath: "/bin/umount")
        u.arguments = ["-l", f.spoolDirectory]
        try? u.run()
        u.waitUntilExit()
        f.close()
    }

    /// Samples the bytes in use on the spool's file system until stopped; `peak` is the largest.
    final class DiskSampler: @unchecked Sendable {
        private let lock = NSLock()
        private var done = false
        private var highest: Int64 = 0
        private let path: String

        init(path: String) {
            self.path = path
            let t = Thread { [self] in
                while !lock.withLock({ done }) {
                    var st = statvfs()
                    if statvfs(path, &st) == 0 {
                        let used = Int64(st.f_blocks - st.f_bfree) * Int64(st.f_frsize)
                        lock.withLock { highest = max(highest, used) }
                    }
                    usleep(10_000)
                }
            }
            t.start()
        }

        var peak: Int64 { lock.withLock { highest } }
        func stop() { lock.withLock { done = true } }
    }

    /// Writes `mib` MiB (chunk i is PatternBytes seed `seed + i`) to `path` in 1 MiB writes,
    /// feeding `sha` with what the file holds at the end: chunk 0 with `header` over its start
    /// (written again after the rest, when given). Returns the open descriptor.
    static func writeCheckpoint(_ path: String, mib: Int, seed: UInt64, header: [UInt8]?, sha: SHA256Pipe) throws -> Int32 {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        try #require(fd >= 0, "open \(path): errno \(errno)")
        for i in 0..<mib {
            let chunk = PatternBytes.make(count: 1 << 20, seed: seed + UInt64(i))
            let n = chunk.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            try #require(n == chunk.count, "write of MiB \(i): \(n), errno \(errno)")
            if i == 0, let header {
                sha.feed(header + chunk[header.count...])
            } else {
                sha.feed(chunk)
            }
        }
        if let header {
            let n = header.withUnsafeBytes { Glibc.pwrite(fd, $0.baseAddress, $0.count, 0) }
            try #require(n == header.count, "header rewrite: errno \(errno)")
        }
        return fd
    }

    @Test func aGigabyteCheckpointStreamsThroughA128MiBSpool() throws {
        if !MountedRoset.isAvailable { print("skipped: needs root, /dev/fuse, mount.roset and roset-server"); return }
        let f = try Self.smallSpoolMount()
        defer { Self.release(f) }
        let sampler = DiskSampler(path: f.spoolDirectory)
        let sha = try SHA256Pipe()
        let header = [UInt8](repeating: 0x5A, count: 4096)
        let started = Date()
        let fd = try Self.writeCheckpoint(f.path("ckpt.bin"), mib: 1024, seed: 7_000, header: header, sha: sha)
        let written = Date().timeIntervalSince(started)
        let fsyncResult = fsync(fd)
        let durable = Date().timeIntervalSince(started)
        #expect(fsyncResult == 0, "fsync: errno \(errno)")
        #expect(Glibc.close(fd) == 0)
        sampler.stop()
        let expected = sha.finish()
        let peak = sampler.peak
        print("SpoolStreamingTests: 1 GiB through a \(Self.tmpfsMB) MiB tmpfs spool (spool_max_mb=\(Self.boundMB)): "
              + "written in \(String(format: "%.1f", written)) s, durable in \(String(format: "%.1f", durable)) s, "
              + "spool disk peak \(peak >> 20) MiB")
        #expect(peak <= Int64(Self.boundMB + 16 + 4) << 20, "the spool's disk held at most the bound plus a part: \(peak)")
        #expect(SpoolCrash.waitForDrain(f, timeout: 120))
        // What the store holds, read through a fresh mount (no page cache, no spool).
        f.unmount()
        try f.mountAgain(options: ["spool_max_mb=\(Self.boundMB)"])
        #expect(SHA256Pipe.of(path: f.path("ckpt.bin")) == expected, "the stored file has the sha256 written, new header included")
    }

    @Test func aDaemonKilledAfterAStreamedCloseCompletesItAfterRemount() throws {
        if !MountedRoset.isAvailable { print("skipped: needs root, /dev/fuse, mount.roset and roset-server"); return }
        let f = try Self.smallSpoolMount()
        defer { Self.release(f) }
        // Slow part PUTs: at the close some parts are released, others still in the spool.
        try f.server.setFaults(#"{"latencyMs":{"upload":150}}"#)
        let sha = try SHA256Pipe()
        let fd = try Self.writeCheckpoint(f.path("killed.bin"), mib: 320, seed: 9_000, header: nil, sha: sha)
        #expect(Glibc.close(fd) == 0)
        let expected = sha.finish()
        let journal = SpoolCrash.pendingSpoolFiles(f)
        f.crash()
        print("SpoolStreamingTests: killed after the close of a 320 MiB file; spool files then: \(journal.count)")
        try f.server.clearFaults()
        try f.mountAgain(options: ["spool_max_mb=\(Self.boundMB)"])
        #expect(SpoolCrash.waitForDrain(f, timeout: 120))
        f.unmount()
        try f.mountAgain(options: ["spool_max_mb=\(Self.boundMB)"])
        #expect(SHA256Pipe.of(path: f.path("killed.bin")) == expected, "the closed file is in the store whole")
        let dead = (try? FileManager.default.contentsOfDirectory(atPath: f.spoolDirectory)).map { folders in
            folders.flatMap { (try? FileManager.default.contentsOfDirectory(atPath: f.spoolDirectory + "/" + $0 + "/dead")) ?? [] }
        } ?? []
        #expect(dead.isEmpty, "no dead letter: \(dead)")
    }
    /// Waits until the daemon `pid` is gone (or a zombie).
    static func died(_ f: MountedRoset, _ pid: pid_t) -> Bool {
        f.eventually(timeout: 120) {
            kill(pid, 0) != 0 || (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.contains(") Z ") == true
        }
    }

    @Test func aDaemonDeadJustBeforeCompleteFinishesTheStreamedFileAfterRemount() throws {
        if !MountedRoset.isAvailable { print("skipped: needs root, /dev/fuse, mount.roset and roset-server"); return }
        let f = try Self.smallSpoolMount()
        defer { Self.release(f) }
        f.unmount()
        try f.mountAgain(options: ["spool_max_mb=\(Self.boundMB)"], environment: ["ROSET_TEST_CRASH_POINT": "before-complete"])
        let pid = try #require(f.daemonPID)
        let sha = try SHA256Pipe()
        let fd = try Self.writeCheckpoint(f.path("complete.bin"), mib: 320, seed: 11_000, header: [UInt8](repeating: 7, count: 4096), sha: sha)
        #expect(Glibc.close(fd) == 0)
        let expected = sha.finish()
        #expect(Self.died(f, pid), "the daemon exits at the crash point")
        let report = try StatusCLI.run(f.mountpoint)
        print("SpoolStreamingTests: status at the crash point:\n\(report.1)")
        #expect(report.1.contains("complete.bin") && report.1.contains("B sent"), "status names the streaming file and its sent bytes")
        f.crash()
        try f.mountAgain(options: ["spool_max_mb=\(Self.boundMB)"])
        #expect(SpoolCrash.waitForDrain(f, timeout: 120))
        f.unmount()
        try f.mountAgain(options: ["spool_max_mb=\(Self.boundMB)"])
        #expect(SHA256Pipe.of(path: f.path("complete.bin")) == expected, "the closed file is in the store whole")
    }

    @Test func aDaemonDeadWhileAStreamedFileIsOpenLeavesADeadLetterNamedInStatus() throws {
        if !MountedRoset.isAvailable { print("skipped: needs root, /dev/fuse, mount.roset and roset-server"); return }
        let f = try Self.smallSpoolMount()
        defer { Self.release(f) }
        f.unmount()
        try f.mountAgain(options: ["spool_max_mb=\(Self.boundMB)"], environment: ["ROSET_TEST_CRASH_POINT": "parts-released"])
        let pid = try #require(f.daemonPID)
        let fd = Glibc.open(f.path("open.bin"), O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        try #require(fd >= 0)
        var written = 0
        for i in 0..<320 {
            let chunk = PatternBytes.make(count: 1 << 20, seed: 13_000 + UInt64(i))
            if chunk.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, $0.count) }) != chunk.count { break }
            written += 1
        }
        Glibc.close(fd)
        #expect(Self.died(f, pid), "the daemon exits at the crash point")
        #expect(written < 320, "the writer saw the daemon die: \(written) MiB written")
        f.crash()
        try f.mountAgain(options: ["spool_max_mb=\(Self.boundMB)"])
        let (status, out, _) = try StatusCLI.run(f.mountpoint)
        print("SpoolStreamingTests: after the remount, \(written) MiB written before the crash:\n\(out)")
        #expect(status == 0)
        #expect(out.contains("dead letters: 1") && out.contains("open.bin"), "status names the dead letter")
        #expect(f.remoteContentIfAny("open.bin") == nil || f.remoteContentIfAny("open.bin")?.isEmpty == true,
                "nothing is reported as stored under the name")
        let root = try #require(try f.remoteNode(""))
        let names = (try? f.api.children(of: root.id).map(\.name)) ?? []
        #expect(!names.contains { $0.hasPrefix("open.bin.recovered") }, "no partial file under a recovered name: \(names)")
    }
}
