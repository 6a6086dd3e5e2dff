// The spool's bound with streaming files: confirmed parts (other than the first) leave the data
// file, so a file larger than spool_max_mb goes through within it; a header written again after
// the first part streamed costs that one part; a write into a released part is refused; a
// session lost behind released parts makes the file a dead letter and fsync fail; a store that
// refuses parts makes an over-bound writer get ENOSPC instead of waiting forever. Against
// FakeCloud, without a mount (64 KiB parts, a 1 MiB spool).
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import RosetFS
import RosetClient

@Suite struct SpoolBoundTests {
    static let part = 64 << 10
    static let bound: Int64 = 1 << 20

    static func harness() throws -> Harness {
        try Harness { c, t in
            c.spoolMaxMB = 1
            t.partSizeBytes = Int64(part)
            t.spoolHopelessWait = 0.3
        }
    }

    /// Creates `name` and writes `content` through it sequentially in 16 KiB writes; the handle
    /// stays open. Also samples the data file's allocated bytes after every write.
    static func writeStreaming(_ h: Harness, _ name: String, _ content: [UInt8])
        throws -> (inode: InodeNumber, handle: FileHandleID, entry: SpoolEntry, peakAllocated: Int64) {
        let (created, open) = try h.fs.create(parent: rootInode, name: name, mode: 0o644, flags: O_WRONLY | O_CREAT, context: h.ctx)
        let inode = created.attributes.inode
        let e = try StreamingUploadTests.onlyEntry(h)
        var peak: Int64 = 0
        var done = 0
        while done < content.count {
            let end = min(content.count, done + 16 << 10)
            try h.write(inode, open.handle, at: Int64(done), Array(content[done..<end]))
            peak = max(peak, e.data.allocatedBytes())
            done = end
        }
        return (inode, open.handle, e, peak)
    }

    static func releasedCount(_ e: SpoolEntry) -> Int { e.cond.withLock { e.record.released?.parts.count ?? 0 } }

    @Test func aFileFourTimesTheBoundStreamsThroughIt() throws {
        let h = try Self.harness()
        let content = pattern(4 << 20, seed: 3)
        let (inode, handle, e, peakAllocated) = try Self.writeStreaming(h, "big.bin", content)
        #expect(Self.releasedCount(e) > 40, "confirmed parts left the spool: \(Self.releasedCount(e))")
        #expect(!(e.cond.withLock { e.record.released?.parts.contains(1) ?? true }), "the first part stays until the close")
        try h.fs.flush(inode: inode, handle: handle)
        try h.fs.release(inode: inode, handle: handle)
        #expect(h.drain(timeout: 20))
        let node = try #require(h.cloud.child("big.bin"))
        #expect(StreamingUploadTests.mismatch(h.cloud.content(of: node.id), content) == nil)
        print("SpoolBoundTests: 4 MiB through a 1 MiB spool, budget peak \(h.fs.budget.peak) B, data file peak \(peakAllocated) B allocated")
        #expect(h.fs.budget.peak <= Self.bound)
        #expect(peakAllocated <= Self.bound + Int64(Self.part), "the data file stayed within the bound plus a part")
        #expect(h.files("data").isEmpty && h.fs.budget.used == 0)
        let token = try #require(StreamingUploadTests.finalSession(h, node.id)).token
        #expect(h.cloud.partPutCounts(token: token).values.allSatisfy { $0 == 1 }, "no part sent twice")
    }

    @Test func aHeaderWrittenAgainAtTheCloseCostsOnePart() throws {
        let h = try Self.harness()
        var content = pattern(2 << 20, seed: 5)
        let (inode, handle, e, _) = try Self.writeStreaming(h, "ckpt.pt", content)
        #expect(StreamingUploadTests.eventually { Self.releasedCount(e) > 5 })
        let header = [UInt8](repeating: 0xAB, count: 4096)
        try h.write(inode, handle, at: 0, header)
        content.replaceSubrange(0..<4096, with: header)
        try h.fs.release(inode: inode, handle: handle)
        #expect(h.drain(timeout: 20))
        let node = try #require(h.cloud.child("ckpt.pt"))
        #expect(StreamingUploadTests.mismatch(h.cloud.content(of: node.id), content) == nil, "the stored file has the new header")
        #expect(h.cloud.count("initUpload") == 1, "the streamed session was kept")
        let token = try #require(StreamingUploadTests.finalSession(h, node.id)).token
        let counts = h.cloud.partPutCounts(token: token)
        #expect(counts[1] == 2 && counts.filter { $0.key != 1 }.values.allSatisfy { $0 == 1 }, "only the first part went twice: \(counts)")
    }

    @Test func aWriteIntoAReleasedPartIsRefusedAndNothingElseChanges() throws {
        let h = try Self.harness()
        let content = pattern(2 << 20, seed: 9)
        let (inode, handle, e, _) = try Self.writeStreaming(h, "seek.bin", content)
        #expect(StreamingUploadTests.eventually { e.cond.withLock { e.record.released?.parts.contains(2) == true } })
        #expect(h.errno { try h.write(inode, handle, at: Int64(Self.part) + 10, [1, 2, 3]) } == EIO)
        #expect(h.errno { _ = try h.fs.read(inode: inode, handle: handle, offset: Int64(Self.part), size: 10) } == EIO,
                "released bytes are not read back from the spool")
        try h.fs.release(inode: inode, handle: handle)
        #expect(h.drain(timeout: 20))
        let node = try #require(h.cloud.child("seek.bin"))
        #expect(StreamingUploadTests.mismatch(h.cloud.content(of: node.id), content) == nil)
    }

    @Test func aLostSessionBehindReleasedPartsFailsFsyncAndLeavesADeadLetter() throws {
        let h = try Self.harness()
        let content = pattern(2 << 20 + 1000, seed: 13)
        let (inode, handle, e, _) = try Self.writeStreaming(h, "lost.bin", content)
        #expect(StreamingUploadTests.eventually { Self.releasedCount(e) > 3 })
        let token = try #require(e.cond.withLock { e.record.upload?.token })
        try h.cloud.abortUpload(token: token)     // the store drops the session (expired, aborted)
        #expect(h.errno { try h.fs.fsync(inode: inode, handle: handle, dataOnly: false) } == EIO)
        try? h.fs.release(inode: inode, handle: handle)
        #expect(h.cloud.child("lost.bin")?.size ?? 0 == 0, "nothing is reported as stored")
        // fsync is told as soon as the attempt failed; the move to dead/ follows at once.
        #expect(StreamingUploadTests.eventually { SpoolReport.read(folder: h.spoolFolder).deadLetters.count == 1 })
        #expect(StreamingUploadTests.eventually { h.fs.liveEntries.isEmpty })
        let report = SpoolReport.read(folder: h.spoolFolder)
        #expect(report.deadLetters.count == 1)
        #expect(report.deadLetters.first?.reason.contains("lost.bin") == true, "\(report.deadLetters)")
        #expect(report.deadLetters.first?.reason.contains("session") == true)
        #expect(h.fs.liveEntries.isEmpty && h.fs.budget.used == 0)
    }

    @Test func aStoreRefusingPartsGivesAnOverBoundWriterENOSPC() throws {
        let h = try Self.harness()
        h.cloud.failNext("write", times: 10_000, with: FakeCloud.error(.badRequest, status: 400))
        let (created, open) = try h.fs.create(parent: rootInode, name: "refused.bin", mode: 0o644, flags: O_WRONLY | O_CREAT, context: h.ctx)
        let inode = created.attributes.inode
        let content = pattern(2 << 20, seed: 1)
        var written = 0
        var failure: Int32?
        let started = Date()
        while written < content.count {
            let end = min(content.count, written + 16 << 10)
            failure = h.errno { try h.write(inode, open.handle, at: Int64(written), Array(content[written..<end])) }
            if failure != nil { break }
            written = end
        }
        let waited = Date().timeIntervalSince(started)
        #expect(failure == ENOSPC, "got \(String(describing: failure)) after \(written) bytes")
        #expect(Int64(written) <= Self.bound && written >= (1 << 20) - (16 << 10), "stopped at the bound: \(written)")
        #expect(waited < 10, "the writer did not wait for ever: \(waited) s")
        // What was written before stays whole in the spool.
        let e = try StreamingUploadTests.onlyEntry(h)
        #expect(e.cond.withLock { e.record.size } == Int64(written) && Self.releasedCount(e) == 0)
        try? h.fs.release(inode: inode, handle: open.handle)
    }
    @Test func aStoreRefusingCompleteFailsFsyncAndLeavesADeadLetter() throws {
        let h = try Self.harness()
        h.cloud.failNext("completeUpload", times: 1_000, with: FakeCloud.error(.badRequest, status: 400))
        let content = pattern(2 << 20 + 77, seed: 21)
        let (inode, handle, e, _) = try Self.writeStreaming(h, "refused-complete.bin", content)
        #expect(Self.releasedCount(e) > 0)
        #expect(h.errno { try h.fs.fsync(inode: inode, handle: handle, dataOnly: false) } == EIO)
        try? h.fs.release(inode: inode, handle: handle)
        #expect(StreamingUploadTests.eventually { SpoolReport.read(folder: h.spoolFolder).deadLetters.count == 1 })
        let dead = SpoolReport.read(folder: h.spoolFolder).deadLetters
        #expect(dead.first?.reason.contains("refused-complete.bin") == true, "\(dead)")
        #expect(h.cloud.child("refused-complete.bin").map { h.cloud.content(of: $0.id)?.isEmpty ?? true } ?? true,
                "nothing is reported as stored")
    }
}
