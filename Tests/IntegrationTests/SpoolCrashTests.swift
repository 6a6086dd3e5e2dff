// kill -9 of the daemon at each stage of the write path, on a real mount against a real
// roset-server, with 100 files in flight: while files are open for writing, right after close
// (sealed, uploads held back), in the middle of multipart uploads, and after `complete` but before
// the spool entry is removed (ROSET_TEST_CRASH_POINT=after-complete, a test-only knob). After each
// kill the mount is lazily unmounted, mounted again with the same spool, and every closed file
// must be there exactly once with its content; a file open at the crash must be there under
// `NAME.recovered-<UTC>`. Each test prints what it saw (recovered, lost, duplicated).
import Foundation
import RosetClient
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// What a crash test saw after the remount.
struct CrashOutcome: CustomStringConvertible {
    var closedExpected = 0
    var closedIntact = 0
    var lost: [String] = []
    var duplicated: [String] = []
    var recovered: [String] = []
    var unexpected: [String] = []
    var description: String {
        "closed \(closedIntact)/\(closedExpected) intact, recovered \(recovered.count), lost \(lost.count), "
            + "duplicated \(duplicated.count), unexpected \(unexpected.count)"
            + (lost.isEmpty ? "" : " lost=\(lost.prefix(5))") + (duplicated.isEmpty ? "" : " dup=\(duplicated.prefix(5))")
            + (unexpected.isEmpty ? "" : " other=\(unexpected.prefix(5))")
    }
}

enum SpoolCrash {
    static func content(_ i: Int, size: Int) -> [UInt8] { PatternBytes.make(count: size, seed: UInt64(1000 + i)) }

    /// Journal records and data files still in the spool (not IDENTITY, LOCK, STATUS, dead/).
    static func pendingSpoolFiles(_ f: MountedRoset) -> [String] {
        f.spoolFiles().filter { $0.contains("/journal/") || $0.contains("/data/") }
    }

    /// Waits until the spool has nothing pending (uploads drained after the remount).
    static func waitForDrain(_ f: MountedRoset, timeout: Double = 240) -> Bool {
        f.eventually(timeout: timeout) { pendingSpoolFiles(f).isEmpty }
    }

    /// Checks the remote folder `dir` against `closed` (name → content) and `open` (name →
    /// what was written before the crash): each closed file once with equal bytes, each open one
    /// under NAME.recovered-<UTC> with a prefix of what was written, nothing else.
    static func verify(_ f: MountedRoset, dir: String, closed: [String: [UInt8]], open: [String: [UInt8]] = [:]) throws -> CrashOutcome {
        var out = CrashOutcome(closedExpected: closed.count)
        guard let folder = try f.remoteNode(dir) else {
            out.lost = Array(closed.keys)
            return out
        }
        let children = try f.api.children(of: folder.id)
        var seen: [String: Int] = [:]
        for child in children { seen[child.name, default: 0] += 1 }
        for (name, count) in seen where count > 1 { out.duplicated.append(name) }
        for (name, bytes) in closed.sorted(by: { $0.key < $1.key }) {
            guard seen[name] != nil else { out.lost.append(name); continue }
            let remote: [UInt8]
            do { remote = try f.remoteContent("\(dir)/\(name)") ?? [] } catch { out.lost.append("\(name) (\(error))"); continue }
            if remote == bytes { out.closedIntact += 1 } else { out.lost.append(name + " (content differs)") }
        }
        for child in children where closed[child.name] == nil {
            let base = child.name.components(separatedBy: ".recovered-").first ?? child.name
            if child.name.contains(".recovered-"), let written = open[base] {
                let remote = (try? f.remoteContent("\(dir)/\(child.name)")) ?? []
                if remote.count <= written.count && Array(written.prefix(remote.count)) == remote {
                    out.recovered.append(child.name)
                } else {
                    out.unexpected.append(child.name + " (recovered content is not what was written)")
                }
            } else if closed[base] != nil || child.name.contains(".conflict-") || child.name.contains(".recovered-") {
                out.duplicated.append(child.name)
            } else {
                out.unexpected.append(child.name)
            }
        }
        if !out.lost.isEmpty || !out.duplicated.isEmpty || !out.unexpected.isEmpty {
            let log = (f.mount?.stderr ?? "").split(separator: "\n").filter { !$0.contains("debug") }.suffix(60)
            print("daemon log (last lines):\n" + log.joined(separator: "\n"))
        }
        return out
    }

    /// The UTC stamp shape recovery gives: NAME.recovered-YYYYMMDDTHHMMSSZ.
    static func hasRecoveredStamp(_ name: String) -> Bool {
        guard let stamp = name.components(separatedBy: ".recovered-").last else { return false }
        return stamp.count == 16 && stamp.hasSuffix("Z") && stamp.dropFirst(8).first == "T"
    }

    /// Writes `count` files into the mount (each closed), returns name → content.
    static func writeClosedFiles(_ f: MountedRoset, dir: String, count: Int, size: (Int) -> Int) -> [String: [UInt8]] {
        var files: [String: [UInt8]] = [:]
        for i in 0..<count {
            let name = String(format: "file-%03d.bin", i)
            let bytes = content(i, size: size(i))
            let result = Posix.write(f.path("\(dir)/\(name)"), bytes)
            #expect(result == .ok, "writing \(name)")
            files[name] = bytes
        }
        return files
    }
}

@Suite(.serialized, .timeLimit(.minutes(10)))
struct SpoolCrashTests {
    static func skipReason() -> String? {
        MountedRoset.isAvailable ? nil : "needs root, /dev/fuse, mount.roset and roset-server (ROSET_SERVER_BIN)"
    }

    @Test func killWhileFilesAreOpenForWriting() throws {
        if let why = Self.skipReason() { print("skipped: \(why)"); return }
        let f = try MountedRoset()
        defer { f.close() }
        #expect(Posix.mkdir(f.path("open")) == .ok)
        // Uploads are held back so the closed files are sealed, not yet uploaded, at the kill.
        try f.server.setFaults(#"{"latencyMs":{"upload":3000}}"#)
        let closed = SpoolCrash.writeClosedFiles(f, dir: "open", count: 100) { 20_000 + $0 * 97 }
        // The files are held open by a separate, single-threaded process: in this test process,
        // other suites spawn children, and every fork's copy of an open descriptor sends a FLUSH
        // when it is closed, which seals the file as a close does.
        var open: [String: [UInt8]] = [:]
        var holderArguments: [String] = []
        for i in 0..<5 {
            let name = "writing-\(i).bin"
            let bytes = SpoolCrash.content(500 + i, size: 300_000)
            let source = f.scratch.url.appendingPathComponent("source-\(i)").path
            #expect(FileManager.default.createFile(atPath: source, contents: Data(bytes)))
            holderArguments += [f.path("open/\(name)"), source]
            open[name] = bytes
        }
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        holder.arguments = ["python3", "-c", """
            import os, sys, time
            fds = []
            for target, source in zip(sys.argv[1::2], sys.argv[2::2]):
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                data = open(source, "rb").read()
                assert os.write(fd, data) == len(data)
                fds.append(fd)
            print("ready", flush=True)
            time.sleep(600)
            """] + holderArguments
        let ready = Pipe()
        holder.standardOutput = ready
        try holder.run()
        let said = String(decoding: ready.fileHandleForReading.availableData, as: UTF8.self)
        #expect(said.hasPrefix("ready"), "the holder wrote the open files")
        f.crash()
        kill(holder.processIdentifier, SIGKILL)
        holder.waitUntilExit()
        try f.server.clearFaults()
        try f.mountAgain()
        #expect(SpoolCrash.waitForDrain(f), "the spool drains after the remount")
        let outcome = try SpoolCrash.verify(f, dir: "open", closed: closed, open: open)
        print("SpoolCrashTests.killWhileFilesAreOpenForWriting: \(outcome)")
        #expect(outcome.closedIntact == 100)
        #expect(outcome.lost.isEmpty && outcome.duplicated.isEmpty && outcome.unexpected.isEmpty)
        #expect(outcome.recovered.count == open.count, "every open-at-crash file comes back under a recovered name")
        #expect(outcome.recovered.allSatisfy(SpoolCrash.hasRecoveredStamp))
        // The open files were never closed: no node under their own name.
        for name in open.keys { #expect(try f.remoteNode("open/\(name)") == nil) }
    }

    @Test func killRightAfterCloseWhileUploadsFail() throws {
        if let why = Self.skipReason() { print("skipped: \(why)"); return }
        let f = try MountedRoset()
        defer { f.close() }
        #expect(Posix.mkdir(f.path("sealed")) == .ok)
        // Every PUT fails: all 100 closed files stay sealed in the spool.
        try f.server.setFaults(#"{"errorRate":{"upload":1.0},"errorStatuses":[503]}"#)
        let closed = SpoolCrash.writeClosedFiles(f, dir: "sealed", count: 100) { 1 + $0 * 731 }
        let sealedBefore = SpoolCrash.pendingSpoolFiles(f).filter { $0.contains("/data/") }.count
        f.crash()
        try f.server.clearFaults()
        try f.mountAgain()
        #expect(SpoolCrash.waitForDrain(f))
        let outcome = try SpoolCrash.verify(f, dir: "sealed", closed: closed)
        print("SpoolCrashTests.killRightAfterCloseWhileUploadsFail: \(sealedBefore) sealed at the kill; \(outcome)")
        #expect(sealedBefore > 0)
        #expect(outcome.closedIntact == 100)
        #expect(outcome.lost.isEmpty && outcome.duplicated.isEmpty && outcome.unexpected.isEmpty && outcome.recovered.isEmpty)
    }

    @Test func killInTheMiddleOfMultipartUploads() throws {
        if let why = Self.skipReason() { print("skipped: \(why)"); return }
        let f = try MountedRoset(options: ["part_size_mb=5", "upload_concurrency=4"])
        defer { f.close() }
        #expect(Posix.mkdir(f.path("multi")) == .ok)
        // Parts are slow: the kill lands while multipart sessions have some parts recorded.
        try f.server.setFaults(#"{"latencyMs":{"upload":1500}}"#)
        // 8 multipart files (11 MiB: 3 parts of 5 MiB) among 100.
        let closed = SpoolCrash.writeClosedFiles(f, dir: "multi", count: 100) { $0 % 12 == 0 ? 11 << 20 : 4096 + $0 }
        let journal = f.spoolDirectory
        let partRecorded = f.eventually(timeout: 120) {
            SpoolCrash.pendingSpoolFiles(f).contains { path in
                guard path.hasSuffix(".rec") else { return false }
                let text = (try? String(contentsOfFile: journal + "/" + path, encoding: .utf8)) ?? ""
                return text.contains("\"multipart\":true") && text.contains("\"partNumber\"")
            }
        }
        #expect(partRecorded, "a multipart upload recorded a finished part before the kill")
        let pendingAtKill = SpoolCrash.pendingSpoolFiles(f).filter { $0.contains("/data/") }.count
        f.crash()
        try f.server.setFaults(#"{"latencyMs":{"upload":0}}"#)
        try f.mountAgain(options: ["part_size_mb=5", "upload_concurrency=4"])
        #expect(SpoolCrash.waitForDrain(f))
        let outcome = try SpoolCrash.verify(f, dir: "multi", closed: closed)
        print("SpoolCrashTests.killInTheMiddleOfMultipartUploads: \(pendingAtKill) pending at the kill; \(outcome)")
        #expect(outcome.closedIntact == 100)
        #expect(outcome.lost.isEmpty && outcome.duplicated.isEmpty && outcome.unexpected.isEmpty && outcome.recovered.isEmpty)
    }

    @Test func killAfterCompleteBeforeTheEntryIsRemoved() throws {
        if let why = Self.skipReason() { print("skipped: \(why)"); return }
        let f = try MountedRoset()
        defer { f.close() }
        #expect(Posix.mkdir(f.path("done")) == .ok)
        // Remount with the test-only crash point armed, uploads held back while the files are written.
        f.unmount()
        try f.mountAgain(environment: ["ROSET_TEST_CRASH_POINT": "after-complete"])
        let pid = try #require(f.daemonPID)
        // No upload completes (and so the daemon does not stop) before all 100 files are closed.
        try f.server.setFaults(#"{"errorRate":{"upload":1.0},"errorStatuses":[503]}"#)
        let closed = SpoolCrash.writeClosedFiles(f, dir: "done", count: 100) { 10_000 + $0 }
        try f.server.clearFaults()
        let died = f.eventually(timeout: 120) { kill(pid, 0) != 0 || (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.contains(") Z ") == true }
        #expect(died, "the daemon exits at the crash point")
        let completeRecords = SpoolCrash.pendingSpoolFiles(f).filter { path in
            path.hasSuffix(".rec") && ((try? String(contentsOfFile: f.spoolDirectory + "/" + path, encoding: .utf8)) ?? "")
                .contains("\"state\":\"complete\"")
        }.count
        f.crash()
        try f.mountAgain()
        #expect(SpoolCrash.waitForDrain(f))
        let outcome = try SpoolCrash.verify(f, dir: "done", closed: closed)
        print("SpoolCrashTests.killAfterCompleteBeforeTheEntryIsRemoved: \(completeRecords) complete record(s) left at the kill; \(outcome)")
        #expect(completeRecords >= 1, "the kill landed between the complete record and the entry's removal")
        #expect(outcome.closedIntact == 100)
        #expect(outcome.lost.isEmpty && outcome.duplicated.isEmpty && outcome.unexpected.isEmpty && outcome.recovered.isEmpty)
    }
}
