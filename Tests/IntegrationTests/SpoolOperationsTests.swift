// The spool as an operator meets it, on real mounts: `mount.roset status DIR` (live, and after
// the daemon died), a torn journal record found between a crash and the next mount, `umount`
// with pending uploads (shutdown_grace, then a log of what stays), mounting again right after
// umount while the old daemon drains, a second mount of a spool in use refused, back-pressure
// through spool_max_mb, and a full spool disk (tmpfs) giving ENOSPC without harming sealed files.
import Foundation
import RosetClient
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

enum StatusCLI {
    /// Runs `mount.roset status DIR [--json]`; returns (exit status, stdout, stderr).
    static func run(_ dir: String, json: Bool = false) throws -> (Int32, String, String) {
        let r = try CapturedRun.run(TestBinaries.path("mount.roset"), ["status", dir] + (json ? ["--json"] : []))
        return (r.status, r.stdout, r.stderr)
    }

    static func json(_ dir: String) throws -> [String: Any] {
        let (status, out, _) = try run(dir, json: true)
        guard status == 0, let obj = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any] else { return [:] }
        return obj
    }
}

@Suite(.serialized, .timeLimit(.minutes(10)))
struct SpoolOperationsTests {
    static func skipReason() -> String? { SpoolCrashTests.skipReason() }

    @Test func statusShowsPendingFailuresAndATornRecordKeptAsADeadLetter() throws {
        if let why = Self.skipReason() { print("skipped: \(why)"); return }
        let f = try MountedRoset()
        defer { f.close() }
        try f.server.setFaults(#"{"errorRate":{"upload":1.0},"errorStatuses":[500]}"#)
        let sizes = [1000, 2000, 300_000]
        for (i, size) in sizes.enumerated() {
            #expect(Posix.write(f.path("pending-\(i).bin"), SpoolCrash.content(i, size: size)) == .ok)
        }
        // The daemon publishes failures as they happen (STATUS, rewritten every second).
        #expect(f.eventually(timeout: 60) { ((try? StatusCLI.json(f.mountpoint))?["uploadFailures"] as? Int ?? 0) > 0 })
        let (status, text, _) = try StatusCLI.run(f.mountpoint)
        print("status while mounted:\n\(text)")
        #expect(status == 0)
        #expect(text.contains("pending:      3 file(s), \(sizes.reduce(0, +)) bytes; oldest pending"))
        #expect(text.contains("pending-2.bin"))
        #expect(text.contains("daemon:       pid \(f.daemonPID ?? -1), mounted"))
        #expect(text.contains("failed upload attempt(s); last"))
        #expect(text.contains("dead letters: 0"))

        // The daemon dies; status still lists the spool and says the daemon is gone.
        f.crash()
        let (crashedStatus, crashedText, _) = try StatusCLI.run(f.mountpoint)
        print("status after the crash:\n\(crashedText)")
        #expect(crashedStatus == 0)
        #expect(crashedText.contains("not running"))
        #expect(crashedText.contains("pending:      3 file(s)"))

        // A journal record is torn between the crash and the next mount.
        let records = SpoolCrash.pendingSpoolFiles(f).filter { $0.hasSuffix(".rec") }.sorted()
        let victim = try #require(records.first { path in
            ((try? String(contentsOfFile: f.spoolDirectory + "/" + path, encoding: .utf8)) ?? "").contains("pending-2.bin")
        })
        let victimPath = f.spoolDirectory + "/" + victim
        let entryId = String((victimPath as NSString).lastPathComponent.split(separator: ".")[0])
        #expect(Glibc.truncate(victimPath, 40) == 0)
        let (_, tornText, _) = try StatusCLI.run(f.mountpoint)
        #expect(tornText.contains("torn records: 1"), "status reports the torn record before the next mount")

        try f.server.clearFaults()
        try f.mountAgain()
        #expect(SpoolCrash.waitForDrain(f), "the two intact entries upload")
        for i in 0..<2 { #expect(try f.remoteContent("pending-\(i).bin") == SpoolCrash.content(i, size: sizes[i])) }
        // The torn entry's data is kept as a dead letter with a reason, and the log names it.
        let dead = f.spoolFiles().filter { $0.contains("/dead/\(entryId)/") }
        let deadData = try #require(dead.first { $0.hasSuffix("/data") })
        #expect(FileManager.default.contents(atPath: f.spoolDirectory + "/" + deadData).map(Array.init) == SpoolCrash.content(2, size: sizes[2]))
        let reason = try #require(dead.first { $0.hasSuffix("/reason") })
        #expect(((try? String(contentsOfFile: f.spoolDirectory + "/" + reason, encoding: .utf8)) ?? "").contains("no valid journal record"))
        let log = f.mount?.stderr ?? ""
        #expect(log.contains("torn journal record") && log.contains(victim.components(separatedBy: "/").last!))
        #expect(log.contains("dead/\(entryId)"), "the log names the dead letter's path")
        let (_, afterText, _) = try StatusCLI.run(f.mountpoint)
        print("status after the remount:\n\(afterText)")
        #expect(afterText.contains("dead letters: 1"))
        #expect(afterText.contains("no valid journal record"))
        print("SpoolOperationsTests.statusShowsPendingFailuresAndATornRecord: recovered 2, lost 0 (torn entry kept in dead/), duplicated 0")
    }

    @Test func umountWaitsForUploadsUpToTheGraceThenLogsWhatStays() throws {
        if let why = Self.skipReason() { print("skipped: \(why)"); return }
        let f = try MountedRoset()
        defer { f.close() }
        let log = f.scratch.url.appendingPathComponent("mount.log").path
        f.unmount()
        try f.mountAgain(options: ["shutdown_grace=3", "log_file=\(log)"])
        try f.server.setFaults(#"{"errorRate":{"upload":1.0},"errorStatuses":[503]}"#)
        for i in 0..<3 { #expect(Posix.write(f.path("late-\(i).bin"), SpoolCrash.content(i, size: 5000 + i)) == .ok) }
        let daemon = try #require(f.mount)
        let umount = Process()
        umount.executableURL = URL(fileURLWithPath: "/bin/umount")
        umount.arguments = [f.mountpoint]
        try umount.run()
        umount.waitUntilExit()
        #expect(umount.terminationStatus == 0)
        #expect(f.eventually(timeout: 60) { !daemon.isRunning }, "the daemon exits after the grace")
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(text.contains("3 file(s), 15003 bytes stay sealed in the spool for the next mount"))
        for i in 0..<3 { #expect(text.contains("late-\(i).bin")) }
        #expect(SpoolCrash.pendingSpoolFiles(f).count == 6, "3 data files and their records stay")
        try f.server.clearFaults()
        try f.mountAgain(options: [])
        #expect(SpoolCrash.waitForDrain(f))
        for i in 0..<3 { #expect(try f.remoteContent("late-\(i).bin") == SpoolCrash.content(i, size: 5000 + i)) }
    }

    @Test func mountAgainRightAfterUmountWaitsForTheDrainingDaemon() throws {
        if let why = Self.skipReason() { print("skipped: \(why)"); return }
        let f = try MountedRoset()
        defer { f.close() }
        f.unmount()
        try f.mountAgain(options: ["shutdown_grace=60"])
        // A second mount of the same spool while the first is mounted is refused at once.
        let other = f.scratch.url.appendingPathComponent("other").path
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        do {
            let second = try MountProcess.start(mountpoint: other, apiURL: f.server.baseURL, apiKeyFile: f.keyFile,
                                                options: ["spool_dir=\(f.spoolDirectory)"])
            second.stop()
            Issue.record("a second mount of a spool in use must be refused")
        } catch {
            #expect("\(error)".contains("in use by another roset mount"))
        }
        try f.server.setFaults(#"{"latencyMs":{"upload":1500}}"#)
        for i in 0..<4 { #expect(Posix.write(f.path("drain-\(i).bin"), SpoolCrash.content(i, size: 70_000)) == .ok) }
        let old = try #require(f.mount)
        defer { if old.isRunning { kill(old.pid, SIGKILL) } }
        let umount = Process()
        umount.executableURL = URL(fileURLWithPath: "/bin/umount")
        umount.arguments = [f.mountpoint]
        try umount.run()
        umount.waitUntilExit()
        // The old daemon is still draining; status says so, and the new mount waits for it instead of failing.
        let (_, drainingText, _) = try StatusCLI.run(f.mountpoint)
        let drainingAtRemount = old.isRunning
        if drainingAtRemount && drainingText.contains("pid \(old.pid)") {
            #expect(drainingText.contains("unmounted, finishing its uploads"), "\(drainingText)")
        }
        try f.mountAgain(options: [])
        print("SpoolOperationsTests.mountAgainRightAfterUmount: old daemon still draining at remount: \(drainingAtRemount)")
        #expect(!old.isRunning, "the new daemon got the lock only after the old one let go")
        if drainingAtRemount { #expect(f.mount?.stderr.contains("is finishing its uploads; waiting") == true) }
        try f.server.clearFaults()
        #expect(SpoolCrash.waitForDrain(f))
        for i in 0..<4 { #expect(try f.remoteContent("drain-\(i).bin") == SpoolCrash.content(i, size: 70_000)) }
    }

    @Test func writersWaitWhenTheSpoolIsFull() throws {
        if let why = Self.skipReason() { print("skipped: \(why)"); return }
        let f = try MountedRoset()
        defer { f.close() }
        f.unmount()
        try f.mountAgain(options: ["spool_max_mb=8"])
        try f.server.setFaults(#"{"latencyMs":{"upload":700}}"#)
        let data = f.spoolDirectory
        final class Peak: @unchecked Sendable { let lock = NSLock(); var bytes: Int64 = 0; var done = false }
        let peak = Peak()
        let sampler = Thread {
            while !peak.lock.withLock({ peak.done }) {
                var total: Int64 = 0
                if let e = FileManager.default.enumerator(atPath: data) {
                    for case let path as String in e where path.contains("/data/") {
                        var st = stat()
                        if stat(data + "/" + path, &st) == 0 { total += Int64(st.st_size) }
                    }
                }
                peak.lock.withLock { peak.bytes = max(peak.bytes, total) }
                usleep(20_000)
            }
        }
        sampler.start()
        var results: [Sys] = []
        for i in 0..<12 { results.append(Posix.write(f.path("bp-\(i).bin"), SpoolCrash.content(i, size: 3 << 20))) }
        peak.lock.withLock { peak.done = true }
        #expect(results.allSatisfy { $0 == .ok }, "no writer gets an error: \(results)")
        try f.server.clearFaults()
        #expect(SpoolCrash.waitForDrain(f))
        var intact = 0
        for i in 0..<12 where try f.remoteContent("bp-\(i).bin") == SpoolCrash.content(i, size: 3 << 20) { intact += 1 }
        let seen = peak.lock.withLock { peak.bytes }
        print("SpoolOperationsTests.writersWaitWhenTheSpoolIsFull: 36 MiB through an 8 MiB spool, peak spool data \(seen) bytes, \(intact)/12 intact, lost \(12 - intact)")
        #expect(intact == 12)
        // Writers waited: the spool never held much more than its bound (one write's worth of slack).
        #expect(seen <= (8 << 20) + (3 << 20))
    }

    @Test func aFullSpoolDiskGivesENOSPCAndKeepsSealedFiles() throws {
        if let why = Self.skipReason() { print("skipped: \(why)"); return }
        let f = try MountedRoset()
        f.unmount()
        try FileManager.default.createDirectory(atPath: f.spoolDirectory, withIntermediateDirectories: true)
        let tmpfs = Process()
        tmpfs.executableURL = URL(fileURLWithPath: "/bin/mount")
        tmpfs.arguments = ["-t", "tmpfs", "-o", "size=32m", "tmpfs", f.spoolDirectory]
        try tmpfs.run()
        tmpfs.waitUntilExit()
        defer {
            f.unmount()
            let u = Process()
            u.executableURL = URL(fileURLWithPath: "/bin/umount")
            u.arguments = ["-l", f.spoolDirectory]
            try? u.run()
            u.waitUntilExit()
            f.close()
        }
        try #require(tmpfs.terminationStatus == 0, "mount -t tmpfs")
        try f.mountAgain()
        try f.server.setFaults(#"{"errorRate":{"upload":1.0},"errorStatuses":[503]}"#)
        let sealed = SpoolCrash.content(1, size: 8 << 20)
        #expect(Posix.write(f.path("sealed.bin"), sealed) == .ok)
        // 40 MiB into what is left of 32 MiB.
        let fd = Glibc.open(f.path("too-big.bin"), O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        #expect(fd >= 0)
        let chunk = SpoolCrash.content(2, size: 1 << 20)
        var writeErrno: Int32 = 0
        for _ in 0..<40 {
            let n = chunk.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 { writeErrno = errno; break }
        }
        let closeResult = Glibc.close(fd)
        let closeErrno = closeResult == 0 ? 0 : errno
        print("SpoolOperationsTests.aFullSpoolDisk: write errno \(writeErrno), close errno \(closeErrno)")
        #expect(writeErrno == ENOSPC || closeErrno == ENOSPC, "the writer is told the disk is full")
        #expect(f.mount?.isRunning == true)
        try f.server.clearFaults()
        #expect(f.eventually(timeout: 120) { (try? f.remoteContent("sealed.bin")) == sealed }, "the sealed file is uploaded intact")
        #expect(Posix.read(f.path("sealed.bin")).1 == sealed)
        // The mount keeps working once room is back.
        #expect(Posix.unlink(f.path("too-big.bin")) == .ok || !Posix.exists(f.path("too-big.bin")))
        #expect(Posix.write(f.path("after.bin"), SpoolCrash.content(3, size: 1 << 20)) == .ok)
        #expect(f.eventually(timeout: 60) { (try? f.remoteContent("after.bin")) == SpoolCrash.content(3, size: 1 << 20) })
    }
}
