// The write path through a real mount: close puts the data in the spool and the uploader brings
// it to the server; fsync and close_wait return after the upload; touch makes an empty object;
// unlink and rename of a pending file cancel and retarget its upload; writes into an existing
// file without O_TRUNC; a multipart file; parallel writers.
import Foundation
import RosetClient
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized, .timeLimit(.minutes(10)))
struct FSWritePathTests {
    @Test func closeSpoolsThenUploads() throws {
        try MountedRoset.with { f in
            // Slow blob PUTs keep the upload pending long enough to see the spool.
            try f.server.setFaults(#"{"latencyMs":{"upload":1500}}"#)
            let bytes = PatternBytes.make(count: 500_000, seed: 8)
            #expect(Posix.write(f.path("spooled"), bytes) == .ok)
            let files = f.spoolEntryFiles()
            #expect(files.contains { $0.contains("data/") }, "\(files)")
            #expect(files.contains { $0.contains("journal/") }, "\(files)")
            // Read your own writes while pending.
            #expect(Posix.read(f.path("spooled")).1 == bytes)
            #expect(Posix.stat(f.path("spooled")).1.st_size == bytes.count)
            #expect(Posix.listDirectory(f.mountpoint).1.contains("spooled"))
            #expect(f.eventually { (try? f.remoteContent("spooled")) == bytes })
            #expect(f.eventually { f.spoolEntryFiles().isEmpty })
        }
    }

    @Test func fsyncReturnsAfterTheUpload() throws {
        try MountedRoset.with { f in
            try f.server.setFaults(#"{"latencyMs":{"upload":500}}"#)
            let bytes = PatternBytes.make(count: 123_456, seed: 9)
            let d = try #require(OpenDescriptor(f.path("synced"), O_WRONLY | O_CREAT | O_TRUNC))
            #expect(d.write(bytes) == .ok)
            #expect(d.fsync() == .ok)
            #expect(f.remoteContentIfAny("synced") == bytes)
            // More data after an fsync, fsync again: the new content is there when it returns.
            #expect(d.write([1, 2, 3]) == .ok)
            #expect(d.fsync() == .ok)
            #expect(f.remoteContentIfAny("synced") == bytes + [1, 2, 3])
            #expect(d.close() == .ok)
        }
    }

    @Test func fsyncReportsAFailingUploadAsEIO() throws {
        try MountedRoset.with { f in
            try f.server.setFaults(#"{"errorRate":{"upload":1},"errorStatuses":[500]}"#)
            let bytes = PatternBytes.make(count: 10_000, seed: 18)
            let d = try #require(OpenDescriptor(f.path("failing"), O_WRONLY | O_CREAT | O_TRUNC))
            #expect(d.write(bytes) == .ok)
            #expect(d.fsync() == .failed(EIO))
            #expect(d.close() == .ok)
            // The data stays in the spool and is retried: it arrives once the store recovers.
            #expect(f.spoolEntryFiles().contains { $0.contains("data/") })
            #expect(Posix.read(f.path("failing")).1 == bytes)
            try f.server.clearFaults()
            #expect(f.eventually(timeout: 120) { (try? f.remoteContent("failing")) == bytes })
        }
    }

    @Test func touchMakesAnEmptyObject() throws {
        try MountedRoset.with { f in
            #expect(Posix.touch(f.path("empty")) == .ok)
            #expect(Posix.stat(f.path("empty")).1.st_size == 0)
            #expect(f.eventually { f.remoteNodeIfAny("empty")?.size == 0 && (try? f.remoteContent("empty")) == [] })
            #expect(f.eventually { f.spoolEntryFiles().isEmpty })
            // touch of an existing file changes nothing remotely.
            #expect(Posix.write(f.path("full"), [1, 2]) == .ok)
            #expect(f.eventually { (try? f.remoteContent("full")) == [1, 2] })
            #expect(Posix.touch(f.path("full")) == .ok)
            #expect(Posix.read(f.path("full")).1 == [1, 2])
            #expect(f.eventually { f.spoolEntryFiles().isEmpty })
            #expect(f.remoteContentIfAny("full") == [1, 2])
        }
    }

    @Test func closeWaitMakesCloseWaitForTheUpload() throws {
        try MountedRoset.with(options: ["close_wait"]) { f in
            try f.server.setFaults(#"{"latencyMs":{"upload":500}}"#)
            let bytes = PatternBytes.make(count: 77_777, seed: 10)
            #expect(Posix.write(f.path("waited"), bytes) == .ok)
            #expect(f.remoteContentIfAny("waited") == bytes)
            #expect(Posix.write(f.path("waited"), [5], flags: O_WRONLY | O_APPEND) == .ok)
            #expect(f.remoteContentIfAny("waited") == bytes + [5])
        }
    }

    @Test func unlinkOfAPendingFileCancelsItsUpload() throws {
        try MountedRoset.with { f in
            try f.server.setFaults(#"{"latencyMs":{"upload":2000}}"#)
            #expect(Posix.write(f.path("doomed"), PatternBytes.make(count: 100_000, seed: 11)) == .ok)
            #expect(Posix.unlink(f.path("doomed")) == .ok)
            #expect(!Posix.exists(f.path("doomed")))
            #expect(!Posix.listDirectory(f.mountpoint).1.contains("doomed"))
            // A later file's upload confirmed: the earlier one would have been sent before.
            let d = try #require(OpenDescriptor(f.path("marker"), O_WRONLY | O_CREAT | O_TRUNC))
            #expect(d.write([1]) == .ok)
            #expect(d.fsync() == .ok)
            #expect(d.close() == .ok)
            #expect(f.eventually { f.spoolEntryFiles().isEmpty })
            #expect(f.remoteNodeIfAny("doomed") == nil)
            #expect(f.remoteContentIfAny("marker") == [1])
        }
    }

    @Test func renameOfAPendingFileRetargetsItsUpload() throws {
        try MountedRoset.with { f in
            try f.server.setFaults(#"{"latencyMs":{"upload":2000}}"#)
            let bytes = PatternBytes.make(count: 100_000, seed: 12)
            #expect(Posix.mkdir(f.path("elsewhere")) == .ok)
            #expect(Posix.write(f.path("first-name"), bytes) == .ok)
            #expect(Posix.rename(f.path("first-name"), f.path("elsewhere/second-name")) == .ok)
            #expect(Posix.read(f.path("elsewhere/second-name")).1 == bytes)
            #expect(f.eventually { (try? f.remoteContent("elsewhere/second-name")) == bytes })
            #expect(f.eventually { f.spoolEntryFiles().isEmpty })
            #expect(f.remoteNodeIfAny("first-name") == nil)
            #expect(Set(Posix.listDirectory(f.mountpoint).1) == [".", "..", "elsewhere"])
        }
    }

    @Test func randomWritesAndAppendIntoAnExistingFile() throws {
        try MountedRoset.with { f in
            var expected = PatternBytes.make(count: 1 << 20, seed: 13)
            try f.uploadRemote(name: "existing", bytes: expected)
            let d = try #require(OpenDescriptor(f.path("existing"), O_WRONLY))
            for (i, offset) in [0, 4_095, 500_000, (1 << 20) - 3].enumerated() {
                let patch = PatternBytes.make(count: 1_000, seed: UInt64(100 + i))
                #expect(d.pwrite(patch, at: offset) == .ok)
                if expected.count < offset + patch.count { expected += [UInt8](repeating: 0, count: offset + patch.count - expected.count) }
                expected.replaceSubrange(offset..<(offset + patch.count), with: patch)
            }
            #expect(d.close() == .ok)
            let tail = PatternBytes.make(count: 3_333, seed: 14)
            #expect(Posix.write(f.path("existing"), tail, flags: O_WRONLY | O_APPEND) == .ok)
            expected += tail
            // Read-write without truncation, reading what is there while writing.
            let rw = try #require(OpenDescriptor(f.path("existing"), O_RDWR))
            #expect(rw.pread(count: 10, at: 500_000).1 == Array(expected[500_000..<500_010]))
            #expect(rw.pwrite([0xAB], at: 10) == .ok)
            expected[10] = 0xAB
            #expect(rw.close() == .ok)
            #expect(Posix.read(f.path("existing")).1 == expected)
            #expect(f.eventually { (try? f.remoteContent("existing")) == expected })
        }
    }

    @Test func multipartFileRoundTrips() throws {
        try MountedRoset.with(options: ["part_size_mb=8"]) { f in
            let size = 96 << 20
            let bytes = PatternBytes.make(count: size, seed: 15)
            let d = try #require(OpenDescriptor(f.path("large"), O_WRONLY | O_CREAT | O_TRUNC))
            #expect(d.write(bytes) == .ok)
            #expect(d.fsync() == .ok)
            #expect(d.close() == .ok)
            let remote = try f.remoteContent("large")
            #expect(remote?.count == size)
            #expect(remote == bytes)
            #expect(Posix.read(f.path("large")).1 == bytes)
        }
    }

    /// A checkpoint written sequentially: its full parts reach the store while the file is still
    /// open, and after the close the object is whole (kept by roset-server as its part files).
    @Test func fullPartsGoUpWhileTheFileIsStillOpen() throws {
        try MountedRoset.with(options: ["part_size_mb=5"]) { f in
            let part = 5 << 20
            let bytes = PatternBytes.make(count: 3 * part + 12_345, seed: 16)
            let d = try #require(OpenDescriptor(f.path("ckpt"), O_WRONLY | O_CREAT | O_TRUNC))
            #expect(d.write(Array(bytes[..<(2 * part + 1)])) == .ok)
            let partsFolder = f.server.dataDirectory.url.appendingPathComponent("blobs/parts").path
            func partFiles() -> [String] {
                let all = FileManager.default.enumerator(atPath: partsFolder)?.allObjects as? [String] ?? []
                return all.filter { !$0.hasSuffix(".etag") && $0.contains("/") }
            }
            #expect(f.eventually(timeout: 30) { partFiles().count >= 2 }, "two full parts sent before the close: \(partFiles())")
            #expect(try f.remoteNode("ckpt")?.size == 0, "the node exists, still without content")
            #expect(d.write(Array(bytes[(2 * part + 1)...])) == .ok)
            #expect(d.close() == .ok)
            #expect(f.eventually { (try? f.remoteContent("ckpt")) == bytes })
            #expect(f.eventually { f.spoolEntryFiles().isEmpty })
            let objects = f.server.dataDirectory.url.appendingPathComponent("blobs/objects").path
            let stored = FileManager.default.enumerator(atPath: objects)?.allObjects as? [String] ?? []
            #expect(stored.filter { $0.hasSuffix("/part-00004") }.count == 1, "\(stored)")
        }
    }

    @Test func parallelWritersOfSeveralFiles() throws {
        try MountedRoset.with { f in
            let count = 8
            let contents = (0..<count).map { PatternBytes.make(count: 1_000_000 + $0 * 4_321, seed: UInt64(200 + $0)) }
            let results = ResultsBox(count: count)
            DispatchQueue.concurrentPerform(iterations: count) { i in
                results.set(i, Posix.write(f.path("par-\(i)"), contents[i]))
            }
            #expect(results.all.allSatisfy { $0 == .ok }, "\(results.all)")
            for i in 0..<count { #expect(Posix.read(f.path("par-\(i)")).1 == contents[i]) }
            #expect(f.eventually(timeout: 120) { (0..<count).allSatisfy { (try? f.remoteContent("par-\($0)")) == contents[$0] } })
        }
    }
}

final class ResultsBox: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Sys]
    init(count: Int) { values = Array(repeating: .failed(-1), count: count) }
    func set(_ i: Int, _ v: Sys) { lock.withLock { values[i] = v } }
    var all: [Sys] { lock.withLock { values } }
}
