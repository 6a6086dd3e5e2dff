// Two machines, one namespace: two mount.roset daemons (machine A and machine B, each with its
// own spool and mount point) on one roset-server, with the defaults users get (cache_ttl=300).
// What B sees of A's work, and when, is what docs/SEMANTICS.md promises: a file A closed and
// whose upload is confirmed reads new on B's next open (new, rewritten, renamed, deleted), a
// name A created shows on B within negative_ttl plus a second, an open handle on B outlives a
// delete on A, `mount.roset invalidate` drops B's caches on request, and two writers of one file
// leave the last confirmed upload current with the other counted and logged.
import Foundation
import RosetClient
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Machine A is a MountedRoset (it owns the server); machine B a second daemon on the same server.
final class TwoMachines: @unchecked Sendable {
    let a: MountedRoset
    private(set) var bMount: MountProcess?
    var bMountpoint: String { a.scratch.url.appendingPathComponent("mnt-b").path }
    var bSpool: String { a.scratch.url.appendingPathComponent("spool-b").path }
    func b(_ relative: String) -> String { bMountpoint + "/" + relative }

    init(optionsA: [String], optionsB: [String]) throws {
        a = try MountedRoset(options: optionsA)
        do {
            try FileManager.default.createDirectory(atPath: bMountpoint, withIntermediateDirectories: true)
            bMount = try MountProcess.start(mountpoint: bMountpoint, apiURL: a.server.baseURL, apiKeyFile: a.keyFile,
                                            options: ["spool_dir=\(bSpool)"] + optionsB)
        } catch {
            a.close()
            throw error
        }
    }

    var bLog: String { bMount?.stderr ?? "" }

    func close() {
        bMount?.stop()
        bMount = nil
        MountProcess.forceUnmount(bMountpoint)
        a.close()
    }

    static func with(optionsA: [String] = [], optionsB: [String] = [], _ body: (TwoMachines) throws -> Void) throws {
        guard MountedRoset.isAvailable else {
            print("skipped: real mounts need root, /dev/fuse, roset-server (ROSET_SERVER_BIN) and mount.roset built")
            return
        }
        let machines = try TwoMachines(optionsA: optionsA, optionsB: optionsB)
        defer { machines.close() }
        try body(machines)
    }

    /// Writes `bytes` on A and waits until the control plane has them (A's upload confirmed).
    func writeOnAAndWaitForUpload(_ name: String, _ bytes: [UInt8]) {
        #expect(Posix.write(a.path(name), bytes) == .ok)
        #expect(a.eventually { (try? a.remoteContent(name)) == bytes && a.spoolEntryFiles().isEmpty },
                "A's upload of \(name) was not confirmed")
    }

    func namesOnB() -> Set<String> { Set(Posix.listDirectory(bMountpoint).1).subtracting([".", ".."]) }
}

@Suite(.serialized, .timeLimit(.minutes(10)))
struct FSConsistencyTests {
    /// The default negative_ttl, in seconds.
    static let negativeTTL = 5.0

    @Test func aNameCreatedOnAIsFoundByBWithinTheNegativeTTL() throws {
        try TwoMachines.with { m in
            // B lists the folder and misses the name: both the listing and the miss are cached.
            #expect(m.namesOnB().isEmpty)
            #expect(Posix.stat(m.b("shared.txt")).0 == .failed(ENOENT))
            let bytes = Array("checkpoint 1\n".utf8)
            m.writeOnAAndWaitForUpload("shared.txt", bytes)
            let confirmed = Date()
            #expect(m.a.eventually(timeout: Self.negativeTTL + 1) { Posix.read(m.b("shared.txt")).1 == bytes },
                    "B did not find shared.txt within negative_ttl + 1 s")
            #expect(m.a.eventually(timeout: Self.negativeTTL + 1) { m.namesOnB() == ["shared.txt"] })
            let waited = Date().timeIntervalSince(confirmed)
            #expect(waited <= Self.negativeTTL + 1, "B saw the new name after \(waited) s")
        }
    }

    @Test func aFileRewrittenOnAReadsNewOnBsNextOpen() throws {
        try TwoMachines.with { m in
            m.writeOnAAndWaitForUpload("data.bin", Array("version one".utf8))
            #expect(m.a.eventually(timeout: Self.negativeTTL + 1) { Posix.read(m.b("data.bin")).1 == Array("version one".utf8) })
            #expect(Posix.stat(m.b("data.bin")).1.st_size == 11)
            // B's cached node is older than the revalidation bound (1 s) by the time A's
            // rewrite is confirmed; each of B's opens below must see the new bytes at once.
            usleep(1_200_000)
            // Same size, other bytes: only the etag says it changed.
            m.writeOnAAndWaitForUpload("data.bin", Array("VERSION TWO".utf8))
            #expect(Posix.read(m.b("data.bin")).1 == Array("VERSION TWO".utf8))
            usleep(1_200_000)
            // Longer: the kernel's cached size (300 s attribute timeout) must not cut it short.
            let longer = PatternBytes.make(count: 3 << 20, seed: 27)
            m.writeOnAAndWaitForUpload("data.bin", longer)
            #expect(Posix.read(m.b("data.bin")).1 == longer)
            #expect(Posix.stat(m.b("data.bin")).1.st_size == longer.count)
            usleep(1_200_000)
            // Shorter again.
            m.writeOnAAndWaitForUpload("data.bin", Array("v4".utf8))
            #expect(Posix.read(m.b("data.bin")).1 == Array("v4".utf8))
        }
    }

    @Test func renamedAndDeletedOnAShowOnBsNextOpen() throws {
        try TwoMachines.with { m in
            m.writeOnAAndWaitForUpload("old-name", Array("moved".utf8))
            m.writeOnAAndWaitForUpload("doomed", Array("deleted soon".utf8))
            #expect(m.a.eventually(timeout: Self.negativeTTL + 1) { m.namesOnB() == ["old-name", "doomed"] })
            #expect(Posix.read(m.b("old-name")).1 == Array("moved".utf8))
            #expect(Posix.read(m.b("doomed")).1 == Array("deleted soon".utf8))
            usleep(1_200_000)

            #expect(Posix.rename(m.a.path("old-name"), m.a.path("new-name")) == .ok)
            #expect(Posix.unlink(m.a.path("doomed")) == .ok)
            // B's kernel still holds both names (300 s entry timeout); the open asks again.
            #expect(Posix.read(m.b("old-name")).0 == .failed(ENOENT))
            #expect(Posix.read(m.b("doomed")).0 == .failed(ENOENT))
            #expect(m.a.eventually(timeout: Self.negativeTTL + 1) { Posix.read(m.b("new-name")).1 == Array("moved".utf8) })
            #expect(m.a.eventually(timeout: Self.negativeTTL + 1) { m.namesOnB() == ["new-name"] })
            #expect(Posix.stat(m.b("doomed")).0 == .failed(ENOENT))
        }
    }

    @Test func anOpenHandleOnBKeepsReadingAFileDeletedOnA() throws {
        try TwoMachines.with { m in
            let bytes = PatternBytes.make(count: 8 << 20, seed: 28)
            m.writeOnAAndWaitForUpload("held", bytes)
            #expect(m.a.eventually(timeout: Self.negativeTTL + 1) { Posix.stat(m.b("held")).0 == .ok })
            guard let fd = OpenDescriptor(m.b("held"), O_RDONLY) else {
                Issue.record("B cannot open held")
                return
            }
            #expect(fd.pread(count: 4096, at: 0).1 == Array(bytes[0..<4096]))
            #expect(Posix.unlink(m.a.path("held")) == .ok)
            // As documented: the handle reads the version it opened, to its end.
            var read: [UInt8] = Array(bytes[0..<4096])
            while read.count < bytes.count {
                let (status, chunk) = fd.pread(count: 1 << 20, at: read.count)
                #expect(status == .ok)
                if chunk.isEmpty { break }
                read += chunk
            }
            #expect(read == bytes)
            #expect(fd.close() == .ok)
            #expect(Posix.read(m.b("held")).0 == .failed(ENOENT))
        }
    }

    @Test func invalidateDropsBsCachedDataAndNames() throws {
        // B relaxed: without close-to-open and with a long negative TTL only `invalidate` (or
        // cache_ttl) makes B see A's changes.
        try TwoMachines.with(optionsB: ["no_close_to_open", "negative_ttl=300"]) { m in
            m.writeOnAAndWaitForUpload("f", Array("old bytes".utf8))
            #expect(m.a.eventually(timeout: 30) { Posix.read(m.b("f")).1 == Array("old bytes".utf8) })
            #expect(m.namesOnB() == ["f"])
            usleep(1_200_000)
            m.writeOnAAndWaitForUpload("f", Array("new bytes!".utf8))
            m.writeOnAAndWaitForUpload("g", Array("another".utf8))
            #expect(Posix.read(m.b("f")).1 == Array("old bytes".utf8), "B is relaxed: it keeps its cached version")
            #expect(m.namesOnB() == ["f"])

            let file = try CapturedRun.run(TestBinaries.path("mount.roset"), ["invalidate", m.b("f")])
            #expect(file.status == 0, "\(file.stderr)")
            #expect(Posix.read(m.b("f")).1 == Array("new bytes!".utf8))
            #expect(m.namesOnB() == ["f"], "invalidating a file leaves its folder's listing")

            let folder = try CapturedRun.run(TestBinaries.path("mount.roset"), ["invalidate", m.bMountpoint])
            #expect(folder.status == 0, "\(folder.stderr)")
            #expect(m.namesOnB() == ["f", "g"])
            #expect(Posix.read(m.b("g")).1 == Array("another".utf8))

            let elsewhere = try CapturedRun.run(TestBinaries.path("mount.roset"), ["invalidate", m.a.scratch.url.path])
            #expect(elsewhere.status == 1)
            #expect(elsewhere.stderr.contains("not on a roset mount"), "\(elsewhere.stderr)")
            // The reserved name is neither stored nor listed.
            #expect(Posix.setxattr(m.b("f"), "user.roset.invalidate", [1]) == .failed(EPERM))
            #expect(Posix.listxattr(m.b("f")).1.isEmpty)
        }
    }

    @Test func concurrentWritersLastConfirmedUploadWinsAndIsCounted() throws {
        try TwoMachines.with { m in
            m.writeOnAAndWaitForUpload("c", Array("base".utf8))
            #expect(m.a.eventually(timeout: Self.negativeTTL + 1) { Posix.read(m.b("c")).1 == Array("base".utf8) })
            usleep(1_200_000)
            // B opens the file for writing on the base version, A writes and uploads, then B closes.
            guard let onB = OpenDescriptor(m.b("c"), O_WRONLY | O_TRUNC) else {
                Issue.record("B cannot open c for writing")
                return
            }
            m.writeOnAAndWaitForUpload("c", Array("from A".utf8))
            #expect(onB.write(Array("from B".utf8)) == .ok)
            #expect(onB.close() == .ok)
            #expect(m.a.eventually { (try? m.a.remoteContent("c")) == Array("from B".utf8) },
                    "the last confirmed upload is the current version")
            #expect(m.a.eventually { m.bLog.contains("another writer replaced this file") }, "\(m.bLog.suffix(2000))")
            #expect(m.a.eventually(timeout: 10) {
                let status = try? CapturedRun.run(TestBinaries.path("mount.roset"), ["status", m.bMountpoint])
                return status?.stdout.contains("concurrent:   1") == true
            })
            // A sees B's version on its next open (its own cache is older than a second by now).
            usleep(1_200_000)
            #expect(Posix.read(m.a.path("c")).1 == Array("from B".utf8))
        }
    }
}
