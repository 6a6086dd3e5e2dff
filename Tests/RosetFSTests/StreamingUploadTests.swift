// Streaming upload: the full parts of a file written sequentially go up while it is still open
// (one multipart session made at the first full part, at most two threads per file); the upload
// after the close sends only the missing parts and completes. A change below the streamed parts
// (a rewrite, a truncate) drops the session, a rename keeps it (or, over an existing file, starts
// a new version), unlink cancels it, and a crash leaves a session that recovery aborts before the
// file goes up whole under a recovered name. All against FakeCloud, without a mount.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import RosetFS
import RosetClient

@Suite struct StreamingUploadTests {
    static let part = 4096

    static func harness(streaming: Bool = true) throws -> Harness {
        try Harness { _, t in
            t.partSizeBytes = Int64(part)
            t.streamParts = streaming
        }
    }

    /// Polls `condition` every 5 ms until it holds or `timeout` passes; true when it held.
    static func eventually(timeout: TimeInterval = 5, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.005)
        }
        return condition()
    }

    /// Writes `content` at `offset` in `chunk`-sized sequential writes through an open handle.
    static func writeSequentially(_ h: Harness, _ inode: InodeNumber, _ handle: FileHandleID, _ content: [UInt8],
                                  at offset: Int = 0, chunk: Int = 1000) throws {
        var done = 0
        while done < content.count {
            let end = min(content.count, done + chunk)
            try h.write(inode, handle, at: Int64(offset + done), Array(content[done..<end]))
            done = end
        }
    }

    /// The only live spool entry (the file being written).
    static func onlyEntry(_ h: Harness) throws -> SpoolEntry {
        let live = h.fs.liveEntries
        try #require(live.count == 1, "one live entry: \(live.count)")
        return live[0]
    }

    /// The entry's streamed session, once `parts` parts are recorded in it and no streaming
    /// thread runs for it any more.
    static func settledSession(_ e: SpoolEntry, parts: Int) -> UploadProgress? {
        var session: UploadProgress?
        _ = eventually {
            e.cond.withLock {
                session = e.record.upload
                return e.streamersActive == 0 && (session?.parts.count ?? 0) >= parts
            }
        }
        return session.flatMap { $0.parts.count >= parts ? $0 : nil }
    }

    /// Creates `name`, writes `content` sequentially through the new handle, and waits until
    /// `parts` streamed parts are recorded: the starting point of the tests that change a file
    /// while it streams.
    static func streamingFile(_ h: Harness, _ name: String, _ content: [UInt8], parts: Int,
                              flags: Int32 = O_WRONLY | O_CREAT) throws
        -> (inode: InodeNumber, handle: FileHandleID, entry: SpoolEntry, session: UploadProgress) {
        let (created, open) = try h.fs.create(parent: rootInode, name: name, mode: 0o644, flags: flags, context: h.ctx)
        let inode = created.attributes.inode
        try writeSequentially(h, inode, open.handle, content)
        let e = try onlyEntry(h)
        let session = try #require(settledSession(e, parts: parts), "\(parts) parts streamed")
        return (inode, open.handle, e, session)
    }

    /// Why `got` is not `want`, nil when it is: failure messages stay readable (an array of
    /// many KiB printed whole is not).
    static func mismatch(_ got: [UInt8]?, _ want: [UInt8]) -> String? {
        guard let got else { return "no content" }
        if got == want { return nil }
        let first = (0..<min(got.count, want.count)).first { got[$0] != want[$0] } ?? min(got.count, want.count)
        return "\(got.count) bytes, want \(want.count); first difference at byte \(first)"
    }

    static func finalSession(_ h: Harness, _ nodeId: String) -> (token: String, upload: FakeCloud.Upload)? {
        h.cloud.sessions(of: nodeId).last { $0.upload.completed != nil }
    }

    // MARK: streaming before the close

    @Test func fullPartsGoUpBeforeTheCloseAndNoPartIsSentTwice() throws {
        let h = try Self.harness()
        let content = pattern(Self.part * 5 + 100, seed: 11)
        let (entry, open) = try h.fs.create(parent: rootInode, name: "stream.bin", mode: 0o644, flags: O_WRONLY | O_CREAT, context: h.ctx)
        let inode = entry.attributes.inode
        try Self.writeSequentially(h, inode, open.handle, content)

        // Still open: the five full parts reach the store, nothing is completed.
        var token: String?
        let streamed = Self.eventually {
            guard let node = h.cloud.child("stream.bin"), let session = h.cloud.sessions(of: node.id).first else { return false }
            token = session.token
            return Set(h.cloud.partPutCounts(token: session.token).keys).isSuperset(of: 1...5)
        }
        #expect(streamed, "parts 1-5 were PUT while the handle is open")
        let streamingToken = try #require(token)
        #expect(h.cloud.count("completeUpload") == 0 && h.cloud.count("commitUpload") == 0)
        #expect(h.cloud.partPutCounts(token: streamingToken)[6] == nil, "the partial last part waits for the close")
        #expect(h.cloud.count("initUpload") == 1)
        let request = try #require(h.cloud.upload(streamingToken)?.request)
        #expect(request.multipart && request.size == 0 && request.name == "stream.bin", "a streaming init announces no size: \(request)")
        let e = try Self.onlyEntry(h)
        #expect(e.cond.withLock { e.phase == .writing }, "the file is still open")

        try h.fs.flush(inode: inode, handle: open.handle)
        try h.fs.release(inode: inode, handle: open.handle)
        #expect(h.drain())

        let node = try #require(h.cloud.child("stream.bin"))
        #expect(Self.mismatch(h.cloud.content(of: node.id), content) == nil)
        #expect(h.cloud.count("initUpload") == 1, "one session for the file")
        #expect(h.cloud.sessions(of: node.id).map(\.token) == [streamingToken])
        #expect(h.cloud.count("completeUpload") == 1)
        #expect(h.cloud.partPutCounts(token: streamingToken) == [1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1], "no part sent twice")
        #expect(h.cloud.partSizes(token: streamingToken) == [1: 4096, 2: 4096, 3: 4096, 4: 4096, 5: 4096, 6: 100])
        #expect(h.cloud.count("write") == 6)
        #expect(h.cloud.abortedTokens.isEmpty)
        #expect(h.cloud.children().map(\.name) == ["stream.bin"])
        #expect(h.files("data").isEmpty && h.files("journal").isEmpty)
    }

    @Test func withStreamingOffNothingIsSentBeforeTheClose() throws {
        let h = try Self.harness(streaming: false)
        let content = pattern(Self.part * 5 + 100, seed: 11)
        let (entry, open) = try h.fs.create(parent: rootInode, name: "held.bin", mode: 0o644, flags: O_WRONLY | O_CREAT, context: h.ctx)
        let inode = entry.attributes.inode
        try Self.writeSequentially(h, inode, open.handle, content)
        // Given the time the streaming test needs to see its parts, nothing moves.
        let moved = Self.eventually(timeout: 0.5) {
            h.cloud.count("initUpload") + h.cloud.count("partUploadURL") + h.cloud.count("write") > 0
        }
        #expect(!moved, "no init, part URL or PUT before the close")
        #expect(h.cloud.child("held.bin") == nil)
        try h.fs.release(inode: inode, handle: open.handle)
        #expect(h.drain())
        let node = try #require(h.cloud.child("held.bin"))
        #expect(Self.mismatch(h.cloud.content(of: node.id), content) == nil)
        let sessions = h.cloud.sessions(of: node.id)
        #expect(sessions.count == 1 && sessions.first?.upload.request?.size == Int64(content.count))
        #expect(sessions.first.map { h.cloud.partPutCounts(token: $0.token) } == [1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1])
    }

    @Test func atMostTwoPartsOfAFileStreamAtOnce() throws {
        let h = try Self.harness()
        h.cloud.block("write")
        let content = pattern(Self.part * 8, seed: 12)
        let (entry, open) = try h.fs.create(parent: rootInode, name: "two.bin", mode: 0o644, flags: O_WRONLY | O_CREAT, context: h.ctx)
        let inode = entry.attributes.inode
        try Self.writeSequentially(h, inode, open.handle, Array(content[..<(Self.part * 6)]))
        #expect(Self.eventually { h.cloud.blockedCount("write") == 2 })
        // More full parts written while both threads are busy: still no third one.
        try Self.writeSequentially(h, inode, open.handle, Array(content[(Self.part * 6)...]), at: Self.part * 6)
        Thread.sleep(forTimeInterval: 0.1)
        #expect(h.cloud.blockedCount("write") == 2, "two streaming threads for the file, not more")
        #expect(h.cloud.count("initUpload") == 1)
        h.cloud.unblock("write")
        try h.fs.release(inode: inode, handle: open.handle)
        #expect(h.drain())
        let node = try #require(h.cloud.child("two.bin"))
        #expect(Self.mismatch(h.cloud.content(of: node.id), content) == nil)
        let sessions = h.cloud.sessions(of: node.id)
        #expect(sessions.count == 1)
        #expect(sessions.first.map { h.cloud.partPutCounts(token: $0.token) } == [1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 8: 1])
    }

    @Test func aCloseWhileAPartIsStreamingWaitsForItInsteadOfSendingItAgain() throws {
        let h = try Self.harness()
        let content = pattern(Self.part * 3 + 50, seed: 23)
        let (entry, open) = try h.fs.create(parent: rootInode, name: "inflight.bin", mode: 0o644, flags: O_WRONLY | O_CREAT, context: h.ctx)
        let inode = entry.attributes.inode
        try Self.writeSequentially(h, inode, open.handle, Array(content[..<(Self.part + 10)]))
        let e = try Self.onlyEntry(h)
        let first = try #require(Self.settledSession(e, parts: 1))
        // Parts 2 and 3 have read their bytes and are not stored yet when the file is closed.
        h.cloud.block("write.bodyRead")
        try Self.writeSequentially(h, inode, open.handle, Array(content[(Self.part + 10)...]), at: Self.part + 10)
        #expect(Self.eventually { h.cloud.blockedCount("write.bodyRead") == 2 })
        try h.fs.flush(inode: inode, handle: open.handle)
        try h.fs.release(inode: inode, handle: open.handle)
        Thread.sleep(forTimeInterval: 0.1)
        #expect(h.cloud.count("completeUpload") == 0, "the upload after the close waits for the parts on their way")
        h.cloud.unblock("write.bodyRead")
        #expect(h.drain())
        let node = try #require(h.cloud.child("inflight.bin"))
        #expect(Self.mismatch(h.cloud.content(of: node.id), content) == nil)
        #expect(h.cloud.sessions(of: node.id).map(\.token) == [first.token])
        #expect(h.cloud.partPutCounts(token: first.token) == [1: 1, 2: 1, 3: 1, 4: 1], "no part sent twice")
    }

    /// Close seals and returns; it does not wait for the control plane. Here the streaming init
    /// is in flight (held by the fake) when the writer goes on writing and closes the file.
    @Test func writeAndCloseDoNotWaitForTheStreamingInit() throws {
        let h = try Self.harness()
        h.cloud.block("initUpload")
        let content = pattern(Self.part * 2 + 3, seed: 26)
        let (entry, open) = try h.fs.create(parent: rootInode, name: "slow-init.bin", mode: 0o644, flags: O_WRONLY | O_CREAT, context: h.ctx)
        let inode = entry.attributes.inode
        try h.write(inode, open.handle, at: 0, Array(content[..<(Self.part + 1)]))
        #expect(h.cloud.waitUntilBlocked("initUpload", timeout: 5), "the first full part starts the streaming init")
        final class Progress: @unchecked Sendable { let lock = NSLock(); var wrote = false; var closed = false }
        let progress = Progress()
        let finished = DispatchSemaphore(value: 0)
        Thread {
            defer { finished.signal() }
            guard (try? h.write(inode, open.handle, at: Int64(Self.part + 1), Array(content[(Self.part + 1)...]))) != nil else { return }
            progress.lock.withLock { progress.wrote = true }
            guard (try? h.fs.flush(inode: inode, handle: open.handle)) != nil else { return }
            progress.lock.withLock { progress.closed = true }
        }.start()
        let returned = finished.wait(timeout: .now() + 1) == .success
        let (wrote, closed) = progress.lock.withLock { (progress.wrote, progress.closed) }
        h.cloud.unblock("initUpload")
        if !returned { finished.wait() }
        #expect(wrote, "a write returns while the streaming init is in flight")
        #expect(closed, "flush (close) returns while the streaming init is in flight")
        try h.fs.release(inode: inode, handle: open.handle)
        #expect(h.drain())
        let node = try #require(h.cloud.child("slow-init.bin"))
        #expect(Self.mismatch(h.cloud.content(of: node.id), content) == nil)
    }

    // MARK: changes below the streamed parts

    @Test func aRewriteBelowTheStreamedPartsDropsTheSession() throws {
        let h = try Self.harness()
        var expected = pattern(Self.part * 2 + 500, seed: 13)
        let (inode, handle, e, streamed) = try Self.streamingFile(h, "rewrite.bin", expected, parts: 2, flags: O_RDWR | O_CREAT)
        #expect(h.cloud.partPutCounts(token: streamed.token) == [1: 1, 2: 1])

        // Back into part 1, then on to the end: the streamed part 1 no longer holds the content.
        let patch = Array(repeating: UInt8(0xEE), count: 100)
        try h.write(inode, handle, at: 10, patch)
        expected.replaceSubrange(10..<110, with: patch)
        #expect(e.cond.withLock { e.record.upload == nil && e.nextStreamedPart == 1 }, "the session is dropped")
        let tail = pattern(Self.part * 2, seed: 14)
        try Self.writeSequentially(h, inode, handle, tail, at: expected.count)
        expected += tail
        Thread.sleep(forTimeInterval: 0.05)
        #expect(h.cloud.partPutCounts(token: streamed.token) == [1: 1, 2: 1], "nothing more streams into the dropped session")
        try h.fs.release(inode: inode, handle: handle)
        #expect(h.drain())

        let node = try #require(h.cloud.child("rewrite.bin"))
        #expect(Self.mismatch(h.cloud.content(of: node.id), expected) == nil)
        let final = try #require(Self.finalSession(h, node.id))
        #expect(final.token != streamed.token, "the close-time upload made a new session")
        #expect(h.cloud.upload(streamed.token)?.completed == nil)
        #expect(h.cloud.children().map(\.name) == ["rewrite.bin"], "one node: the second init went by node id")
        #expect(final.upload.request?.nodeId == node.id)
    }

    @Test func aRewriteWhileAStalePartIsOnItsWayNeverReachesTheFile() throws {
        let h = try Self.harness()
        // The first streamed PUT has read its bytes but not stored them when the rewrite comes.
        h.cloud.block("write.bodyRead")
        var expected = pattern(Self.part * 2 + 10, seed: 15)
        let (entry, open) = try h.fs.create(parent: rootInode, name: "race.bin", mode: 0o644, flags: O_RDWR | O_CREAT, context: h.ctx)
        let inode = entry.attributes.inode
        try Self.writeSequentially(h, inode, open.handle, expected)
        #expect(h.cloud.waitUntilBlocked("write.bodyRead", timeout: 5))
        let e = try Self.onlyEntry(h)
        let session = try #require(e.cond.withLock { e.record.upload })
        let patch = Array(repeating: UInt8(0x5A), count: Self.part)
        try h.write(inode, open.handle, at: 0, patch)
        expected.replaceSubrange(0..<Self.part, with: patch)
        h.cloud.unblock("write.bodyRead")
        try h.fs.release(inode: inode, handle: open.handle)
        #expect(h.drain())
        let node = try #require(h.cloud.child("race.bin"))
        #expect(Self.mismatch(h.cloud.content(of: node.id), expected) == nil, "the stale part 1 of the dropped session is not in the object")
        #expect(Self.finalSession(h, node.id)?.token != session.token)
        #expect(h.cloud.children().count == 1)
    }

    @Test func aDroppedSessionOfAnExistingFileIsAborted() throws {
        let h = try Self.harness()
        let original = h.cloud.addFile("existing.bin", content: bytes("version one"))
        let inode = try h.fs.lookup(parent: rootInode, name: "existing.bin").attributes.inode
        let open = try h.fs.open(inode: inode, flags: O_WRONLY | O_TRUNC, context: h.ctx)
        var expected = pattern(Self.part * 2 + 1, seed: 16)
        try Self.writeSequentially(h, inode, open.handle, expected)
        let e = try Self.onlyEntry(h)
        let streamed = try #require(Self.settledSession(e, parts: 2))
        #expect(h.cloud.upload(streamed.token)?.request?.nodeId == original.id, "streams a new version of the node")
        try h.write(inode, open.handle, at: 0, bytes("V"))
        expected[0] = UInt8(ascii: "V")
        // The abort is sent in the background.
        #expect(Self.eventually { h.cloud.abortedTokens.contains(streamed.token) }, "the dropped session is aborted")
        #expect(h.cloud.content(of: original.id) == bytes("version one"), "the node keeps its content until the close")
        try h.fs.release(inode: inode, handle: open.handle)
        #expect(h.drain())
        #expect(Self.mismatch(h.cloud.content(of: original.id), expected) == nil)
        #expect(h.cloud.children().map(\.id) == [original.id])
    }

    @Test func truncateToZeroWhileStreamingThenNewContent() throws {
        let h = try Self.harness()
        let first = pattern(Self.part * 2 + 700, seed: 17)
        let (inode, handle, e, streamed) = try Self.streamingFile(h, "trunc.bin", first, parts: 2, flags: O_RDWR | O_CREAT)
        let truncated = try h.fs.setattr(inode: inode, changes: AttributeChanges(size: 0), handle: handle, context: h.ctx)
        #expect(truncated.attributes.size == 0)
        #expect(e.cond.withLock { e.record.upload?.token != streamed.token && e.nextStreamedPart == 1 })
        // New content, shorter per part than the old and with other bytes.
        let second = pattern(Self.part * 3 + 7, seed: 18)
        try Self.writeSequentially(h, inode, handle, second, chunk: 777)
        try h.fs.release(inode: inode, handle: handle)
        #expect(h.drain())
        let node = try #require(h.cloud.child("trunc.bin"))
        #expect(Self.mismatch(h.cloud.content(of: node.id), second) == nil)
        let final = try #require(Self.finalSession(h, node.id))
        #expect(final.token != streamed.token)
        #expect(h.cloud.partSizes(token: final.token) == [1: 4096, 2: 4096, 3: 4096, 4: 7])
        #expect(h.cloud.partPutCounts(token: final.token).values.allSatisfy { $0 == 1 })
        #expect(h.cloud.children().count == 1)
    }

    // MARK: rename while streaming

    @Test func aRenameWhileStreamingMovesTheNodeAndKeepsTheSession() throws {
        let h = try Self.harness()
        let content = pattern(Self.part * 4 + 3, seed: 24)
        let (inode, handle, _, streamed) = try Self.streamingFile(h, "a.bin", Array(content[..<(Self.part * 2 + 1)]), parts: 2)
        let node = try #require(h.cloud.child("a.bin"))
        try h.fs.rename(parent: rootInode, name: "a.bin", newParent: rootInode, newName: "b.bin", flags: 0)
        #expect(h.cloud.child("b.bin")?.id == node.id, "the node the streaming init made is moved")
        try Self.writeSequentially(h, inode, handle, Array(content[(Self.part * 2 + 1)...]), at: Self.part * 2 + 1)
        try h.fs.release(inode: inode, handle: handle)
        #expect(h.drain())
        #expect(h.cloud.children().map(\.name) == ["b.bin"])
        #expect(Self.mismatch(h.cloud.content(of: node.id), content) == nil)
        #expect(h.cloud.sessions(of: node.id).map(\.token) == [streamed.token], "one session, kept across the rename")
        #expect(h.cloud.partPutCounts(token: streamed.token) == [1: 1, 2: 1, 3: 1, 4: 1, 5: 1])
    }

    /// The checkpoint pattern: write a temporary file, rename it over the real one, while the
    /// temporary file is still open and streaming.
    @Test func aRenameOverAnExistingFileWhileStreamingMakesANewVersionOfIt() throws {
        let h = try Self.harness()
        let existing = h.cloud.addFile("model.ckpt", content: bytes("old checkpoint"))
        _ = try h.fs.lookup(parent: rootInode, name: "model.ckpt")
        let content = pattern(Self.part * 5 + 9, seed: 25)
        let (inode, handle, _, streamed) = try Self.streamingFile(h, "model.ckpt.tmp", Array(content[..<(Self.part * 2 + 1)]), parts: 2)
        try h.fs.rename(parent: rootInode, name: "model.ckpt.tmp", newParent: rootInode, newName: "model.ckpt", flags: 0)
        try Self.writeSequentially(h, inode, handle, Array(content[(Self.part * 2 + 1)...]), at: Self.part * 2 + 1)
        try h.fs.release(inode: inode, handle: handle)
        #expect(h.drain())
        #expect(h.cloud.children().map(\.id) == [existing.id], "one file, the original node: \(h.cloud.children().map(\.name))")
        #expect(Self.mismatch(h.cloud.content(of: existing.id), content) == nil)
        #expect(h.cloud.upload(streamed.token)?.completed == nil, "the temporary file's session is not what completed")
        let final = try #require(Self.finalSession(h, existing.id))
        #expect(h.cloud.partPutCounts(token: final.token).values.allSatisfy { $0 == 1 }, "\(h.cloud.partPutCounts(token: final.token))")
        #expect(h.cloud.partSizes(token: final.token) == [1: 4096, 2: 4096, 3: 4096, 4: 4096, 5: 4096, 6: 9])
    }


    @Test func unlinkWhileStreamingLeavesNothingBehind() throws {
        let h = try Self.harness()
        let (inode, handle, _, streamed) = try Self.streamingFile(h, "doomed.bin", pattern(Self.part * 2 + 5, seed: 19), parts: 2)
        #expect(h.cloud.child("doomed.bin") != nil, "the streaming init made the node")
        // One more part on its way when the unlink comes.
        h.cloud.block("write")
        try Self.writeSequentially(h, inode, handle, pattern(Self.part * 2, seed: 20), at: Self.part * 2 + 5)
        #expect(h.cloud.waitUntilBlocked("write", timeout: 5))
        try h.fs.unlink(parent: rootInode, name: "doomed.bin")
        h.cloud.unblock("write")
        // Writes through the open handle still work, and go nowhere.
        try h.write(inode, handle, at: Int64(Self.part * 4 + 5), pattern(Self.part, seed: 21))
        try h.fs.release(inode: inode, handle: handle)
        #expect(h.drain())
        Thread.sleep(forTimeInterval: 0.1)
        #expect(h.cloud.child("doomed.bin") == nil)
        #expect(h.cloud.children().isEmpty)
        #expect(h.cloud.abortedTokens.contains(streamed.token))
        #expect(h.cloud.count("completeUpload") == 0 && h.cloud.count("commitUpload") == 0)
        #expect(h.fs.liveEntries.isEmpty)
        #expect(h.files("data").isEmpty && h.files("journal").isEmpty && h.files("dead").isEmpty)
    }

    @Test func aCrashWhileStreamingAbortsTheSessionAndRecoversTheFileUnderANewName() throws {
        let h = try Self.harness()
        let content = pattern(Self.part * 3 + 300, seed: 22)
        let (_, _, _, streamed) = try Self.streamingFile(h, "ckpt.bin", content, parts: 3)
        let pendingNode = try #require(h.cloud.child("ckpt.bin"))
        #expect(h.cloud.content(of: pendingNode.id) == nil, "the node the streaming init made has no content yet")
        #expect(h.cloud.upload(streamed.token)?.createdNode == true)

        // kill -9 now: the spool as it stands (the file still open) is what the next daemon finds.
        // The copy is recovered by a new instance; this one stays idle with the handle open.
        let crashed = h.base + "/after-crash"
        let folderName = (h.spoolFolder as NSString).lastPathComponent
        try FileManager.default.createDirectory(atPath: crashed, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: h.spoolFolder, toPath: crashed + "/" + folderName)
        let journal = h.files("journal")
        #expect(journal.count == 1)
        let record = try #require(JournalLog.read(path: crashed + "/" + folderName + "/journal/" + journal[0]).newest)
        #expect(record.state == .open)
        #expect(record.upload?.token == streamed.token, "the open record names the streamed session")

        h.config.spoolDirectory = crashed
        let recovered = try h.makeFileSystem()
        #expect(Self.eventually(timeout: 10) { recovered.liveEntries.isEmpty })
        #expect(h.cloud.abortedTokens.contains(streamed.token), "the session the streaming made is aborted")
        #expect(h.cloud.child("ckpt.bin") == nil, "the empty node of that session is gone")
        let copies = h.cloud.children().filter { $0.name.hasPrefix("ckpt.bin.recovered-") }
        #expect(copies.count == 1, "\(h.cloud.children().map(\.name))")
        if let copy = copies.first {
            #expect(copy.name.range(of: #"^ckpt\.bin\.recovered-\d{8}T\d{6}Z$"#, options: .regularExpression) != nil, "\(copy.name)")
            #expect(Self.mismatch(h.cloud.content(of: copy.id), content) == nil)
            #expect(Self.finalSession(h, copy.id).map { $0.token } != streamed.token)
        }
        #expect(h.cloud.upload(streamed.token)?.completed == nil)
        for sub in ["journal", "data", "dead"] {
            let left = (try? FileManager.default.contentsOfDirectory(atPath: crashed + "/" + folderName + "/" + sub)) ?? []
            #expect(left.isEmpty, "\(sub) of the recovered spool: \(left)")
        }
    }
}
