// create/write/close through the spool, the uploader (single PUT, multipart, retries), fsync,
// close-wait, read-your-own-writes, unlink of pending files, back-pressure, setattr, keep-cache.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import RosetFS
import RosetClient

@Suite struct WritePathTests {
    @Test func createWriteCloseMakesNoNetworkCallAndSpoolsDataAndJournal() throws {
        let h = try Harness()
        h.cloud.block("initUpload")
        _ = try h.names()          // root listing cached: the kernel's lookup of the new name is local
        let callsBefore = ["resolve", "node", "children", "initUpload", "download"].map { h.cloud.count($0) }
        let inode = try h.writeFile("new.bin", pattern(10_000))
        #expect(["resolve", "node", "children", "download"].map { h.cloud.count($0) } == Array(callsBefore[0...2] + [callsBefore[4]]))
        // Sealed before the upload: data + one durable journal record.
        #expect(h.files("data").count == 1)
        #expect(h.files("journal").count == 1)
        let record = try #require(JournalLog.read(path: h.spoolFolder + "/journal/" + h.files("journal")[0]).newest)
        #expect(record.state == .sealed)
        #expect(record.size == 10_000)
        #expect(record.crc32c == CRC32C.hex(of: pattern(10_000)) && record.sha256 == nil)
        #expect(record.target.name == "new.bin" && record.target.parentId == h.cloud.rootId)
        // Pending: stat, readdir and read show it.
        #expect(try h.fs.getattr(inode: inode, handle: nil).attributes.size == 10_000)
        #expect(try h.names().contains("new.bin"))
        #expect(try h.readAll(inode) == pattern(10_000))
        h.cloud.unblock("initUpload")
        #expect(h.drain())
        #expect(h.cloud.content(of: h.cloud.child("new.bin")!.id) == pattern(10_000))
        #expect(h.files("data").isEmpty && h.files("journal").isEmpty)
        #expect(try h.readAll(inode) == pattern(10_000))   // now through the object store
        #expect(try h.fs.getattr(inode: inode, handle: nil).attributes.size == 10_000)
    }

    @Test func rangesTheStoreConfirmedLeaveThePageCache() throws {
        // Parts of 4 MiB: ext4 caches in folios of up to 2 MiB, and only whole ones are dropped.
        let h = try Harness { _, t in
            t.partSizeBytes = 4 << 20
            t.streamParts = false
        }
        h.cloud.block("initUpload")
        h.cloud.block("completeUpload")
        let content = pattern(16 << 20)
        let inode = try h.writeFile("big.bin", content)
        let data = h.spoolFolder + "/data/" + h.files("data")[0]
        #expect(residentPages(data) > 0, "just written and sealed: still cached")
        h.cloud.unblock("initUpload")
        #expect(h.cloud.waitUntilBlocked("completeUpload"))
        #expect(residentPages(data) == 0, "every part is confirmed: none of the file stays cached")
        #expect(try h.readAll(inode) == content)   // read your own writes, now from the disk
        h.cloud.unblock("completeUpload")
        #expect(h.drain())
        #expect(h.cloud.content(of: h.cloud.child("big.bin")!.id) == content)
    }

    /// Pages of the file at `path` in the page cache (mincore(2) of a mapping that faults none in).
    func residentPages(_ path: String) -> Int {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return -1 }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size > 0 else { return -1 }
        let length = Int(st.st_size)
        guard let map = mmap(nil, length, PROT_READ, MAP_SHARED, fd, 0), map != MAP_FAILED else { return -1 }
        defer { munmap(map, length) }
        var pages = [UInt8](repeating: 0, count: (length + 4095) / 4096)
        guard mincore(map, length, &pages) == 0 else { return -1 }
        return pages.filter { $0 & 1 != 0 }.count
    }

    @Test func anotherClientsUnfinishedUploadReadsAsEmpty() throws {
        let h = try Harness()
        // Another client has initialised an upload: the server shows the node, with no content yet.
        _ = try h.cloud.initUpload(UploadRequest(parentId: try h.cloud.resolveRoot().id, name: "incoming",
                                                 size: 10, multipart: true))
        let entry = try h.fs.lookup(parent: rootInode, name: "incoming")
        #expect(entry.attributes.size == 0)
        let open = try h.fs.open(inode: entry.attributes.inode, flags: O_RDONLY, context: h.ctx)
        #expect(try h.fs.read(inode: entry.attributes.inode, handle: open.handle, offset: 0, size: 4096) == [])
        try h.fs.release(inode: entry.attributes.inode, handle: open.handle)
    }

    @Test func touchProducesAnEmptyObject() throws {
        let h = try Harness()
        try h.writeFile("empty", [])
        #expect(h.drain())
        let node = h.cloud.child("empty")
        #expect(node != nil && node?.size == 0)
        #expect(h.cloud.content(of: node!.id) == [])
        #expect(h.cloud.count("commitUpload") == 1)
    }

    @Test func smallFilesUseOneSinglePutAndLargeOnesMultipart() throws {
        let h = try Harness { _, t in t.partSizeBytes = 4096 }
        try h.writeFile("small", pattern(4095))
        #expect(h.drain())
        #expect(h.cloud.count("commitUpload") == 1)
        #expect(h.cloud.count("partUploadURL") == 0)
        try h.writeFile("large", pattern(4096 * 5 + 100, seed: 3))
        #expect(h.drain())
        #expect(h.cloud.count("partUploadURL") == 6)
        #expect(h.cloud.count("completeUpload") == 1)
        let token = h.cloud.uploads.first { $0.value.nodeId == h.cloud.child("large")!.id }!.key
        #expect(h.cloud.partSizes(token: token) == [1: 4096, 2: 4096, 3: 4096, 4: 4096, 5: 4096, 6: 100])
        #expect(h.cloud.content(of: h.cloud.child("large")!.id) == pattern(4096 * 5 + 100, seed: 3))
    }

    @Test func smallFilesWaitForAPauseInTheClosesButLargeFilesAndFsyncDoNot() throws {
        // A 2 s pause: long enough that nothing below happens by the clock running out.
        let h = try Harness { c, t in c.uploadDelay = 2; t.partSizeBytes = 4096 }
        for i in 0..<5 { try h.writeFile("burst-\(i)", pattern(100 + i)) }
        // A large file starts at once, while the small ones still wait for the pause.
        try h.writeFile("large", pattern(4096 * 3, seed: 9))
        let deadline = Date().addingTimeInterval(10)
        while h.cloud.child("large").map({ h.cloud.content(of: $0.id) }) != pattern(4096 * 3, seed: 9) && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.005)
        }
        #expect(h.cloud.child("large").map { h.cloud.content(of: $0.id) } == pattern(4096 * 3, seed: 9))
        #expect(h.cloud.count("commitUpload") == 0, "no small file was uploaded during the burst")
        // fsync does not wait for the pause either; the other small files still do.
        let (entry, open) = try h.fs.create(parent: rootInode, name: "synced", mode: 0o644, flags: O_WRONLY | O_CREAT, context: h.ctx)
        _ = try bytes("durable now").withUnsafeBytes { try h.fs.write(inode: entry.attributes.inode, handle: open.handle, offset: 0, data: $0) }
        try h.fs.fsync(inode: entry.attributes.inode, handle: open.handle, dataOnly: false)
        #expect(h.cloud.child("synced").map { h.cloud.content(of: $0.id) } == bytes("durable now"))
        #expect(h.cloud.count("commitUpload") == 1, "only the fsynced file")
        try h.fs.flush(inode: entry.attributes.inode, handle: open.handle)
        try h.fs.release(inode: entry.attributes.inode, handle: open.handle)
        // After the pause every small file goes up.
        #expect(h.drain(timeout: 30))
        for i in 0..<5 { #expect(h.cloud.child("burst-\(i)").map { h.cloud.content(of: $0.id) } == pattern(100 + i)) }
    }

    @Test func partSizeGrowsSoNoFileNeedsMoreThanTenThousandParts() {
        let mib: Int64 = 1 << 20
        let small = PartPlan(size: 100 * mib, configuredPartSize: 16 * mib)
        #expect(small.partSize == 16 * mib && small.partCount == 7 && small.isMultipart)
        #expect(!PartPlan(size: 16 * mib - 1, configuredPartSize: 16 * mib).isMultipart)
        #expect(PartPlan(size: 0, configuredPartSize: 16 * mib).partCount == 1)
        let exact = PartPlan(size: 16 * mib * 10_000, configuredPartSize: 16 * mib)
        #expect(exact.partSize == 16 * mib && exact.partCount == 10_000)
        for size in [16 * mib * 10_000 + 1, 1 << 40, 5 << 40, 48 << 40] {
            let plan = PartPlan(size: size, configuredPartSize: 16 * mib)
            #expect(plan.partCount <= 10_000)
            #expect(plan.partSize > 16 * mib && plan.partSize % mib == 0)
            let last = plan.range(ofPart: plan.partCount)
            #expect(last.offset + last.length == size && last.length > 0)
        }
    }

    @Test func failedUploadsAreRetriedNeverDropped() throws {
        let h = try Harness { _, t in t.partSizeBytes = 1024 }
        h.cloud.failNext("initUpload", times: 2, with: FakeCloud.error(.server, status: 503))
        h.cloud.failNext("write", times: 2, with: FakeCloud.error(.network))
        h.cloud.failNext("completeUpload", times: 1, with: FakeCloud.error(.rateLimited, status: 429))
        try h.writeFile("retry", pattern(5000))
        #expect(h.drain())
        #expect(h.cloud.content(of: h.cloud.child("retry")!.id) == pattern(5000))
        #expect(h.cloud.count("initUpload") >= 3)
        #expect(h.cloud.children().filter { $0.name.hasPrefix("retry") }.count == 1)   // no duplicate node
    }

    @Test func anExpiredPartURLIsFetchedAgain() throws {
        let h = try Harness { _, t in t.partSizeBytes = 1024 }
        h.cloud.failNext("write", times: 1, with: RosetError(kind: .urlRejected, status: 403, endpoint: "PUT", message: "expired"))
        try h.writeFile("f", pattern(3000))
        #expect(h.drain())
        #expect(h.cloud.count("partUploadURL") == 4)
        #expect(h.cloud.content(of: h.cloud.child("f")!.id) == pattern(3000))
    }

    @Test func fsyncWaitsForTheUploadAndReportsFailureAsEIO() throws {
        let h = try Harness()
        let (entry, open) = try h.fs.create(parent: rootInode, name: "durable", mode: 0o644, flags: O_WRONLY, context: h.ctx)
        try h.write(entry.attributes.inode, open.handle, at: 0, bytes("abc"))
        try h.fs.fsync(inode: entry.attributes.inode, handle: open.handle, dataOnly: false)
        #expect(h.cloud.content(of: h.cloud.child("durable")!.id) == bytes("abc"))   // confirmed when fsync returned
        // More writes after fsync go into a new upload (a new version of the same node).
        try h.write(entry.attributes.inode, open.handle, at: 3, bytes("def"))
        try h.fs.release(inode: entry.attributes.inode, handle: open.handle)
        #expect(h.drain())
        #expect(h.cloud.content(of: h.cloud.child("durable")!.id) == bytes("abcdef"))
        #expect(h.cloud.children().count == 1)

        h.cloud.failNext("initUpload", times: 1000, with: FakeCloud.error(.server, status: 500))
        let (e2, o2) = try h.fs.create(parent: rootInode, name: "doomed", mode: 0o644, flags: O_WRONLY, context: h.ctx)
        try h.write(e2.attributes.inode, o2.handle, at: 0, bytes("x"))
        #expect(h.errno { try h.fs.fsync(inode: e2.attributes.inode, handle: o2.handle, dataOnly: false) } == EIO)
        try h.fs.release(inode: e2.attributes.inode, handle: o2.handle)
        #expect(h.files("data").count == 1)       // still in the spool, still retried
    }

    @Test func closeWaitMakesFlushWaitForTheUpload() throws {
        let h = try Harness { c, _ in c.closeWait = true }
        try h.writeFile("waited", bytes("now"))
        #expect(h.cloud.content(of: h.cloud.child("waited")!.id) == bytes("now"))
    }

    @Test func unlinkOfAPendingFileCancelsItsUpload() throws {
        let h = try Harness { _, t in t.partSizeBytes = 1024 }
        h.cloud.block("initUpload")
        try h.writeFile("gone", pattern(100))
        try h.fs.unlink(parent: rootInode, name: "gone")
        #expect(h.errno { _ = try h.fs.lookup(parent: rootInode, name: "gone") } == ENOENT)
        #expect(h.files("data").isEmpty && h.files("journal").isEmpty)
        h.cloud.unblock("initUpload")
        Thread.sleep(forTimeInterval: 0.1)
        #expect(h.cloud.child("gone") == nil)

        // During a multipart upload: the session is aborted and the pending node removed.
        h.cloud.block("write")
        try h.writeFile("mid", pattern(5000))
        h.cloud.waitUntilBlocked("write")
        try h.fs.unlink(parent: rootInode, name: "mid")
        h.cloud.unblock("write")
        #expect(h.drain())
        Thread.sleep(forTimeInterval: 0.1)
        #expect(h.cloud.child("mid") == nil)
        #expect(!h.cloud.abortedTokens.isEmpty)
        #expect(h.cloud.count("completeUpload") == 0)
    }

    @Test func unlinkWhileOpenKeepsTheDataForTheOpenHandle() throws {
        let h = try Harness()
        let (entry, open) = try h.fs.create(parent: rootInode, name: "tmp", mode: 0o644, flags: O_RDWR, context: h.ctx)
        try h.write(entry.attributes.inode, open.handle, at: 0, bytes("scratch"))
        try h.fs.unlink(parent: rootInode, name: "tmp")
        #expect(try h.fs.read(inode: entry.attributes.inode, handle: open.handle, offset: 0, size: 100) == bytes("scratch"))
        try h.fs.release(inode: entry.attributes.inode, handle: open.handle)
        #expect(h.files("data").isEmpty)
        Thread.sleep(forTimeInterval: 0.05)
        #expect(h.cloud.child("tmp") == nil)
    }

    @Test func existingFilesSupportRandomWritesAndAppend() throws {
        let h = try Harness()
        let node = h.cloud.addFile("doc", content: bytes("hello world"))
        let inode = try h.fs.lookup(parent: rootInode, name: "doc").attributes.inode
        let open = try h.fs.open(inode: inode, flags: O_RDWR, context: h.ctx)
        #expect(h.cloud.count("download") == 0)              // nothing fetched until a write needs it
        try h.write(inode, open.handle, at: 0, bytes("J"))
        try h.write(inode, open.handle, at: 11, bytes("!"))
        #expect(try h.fs.read(inode: inode, handle: open.handle, offset: 0, size: 100) == bytes("Jello world!"))
        try h.fs.release(inode: inode, handle: open.handle)
        #expect(h.drain())
        #expect(h.cloud.child("doc")?.id == node.id)
        #expect(h.cloud.content(of: node.id) == bytes("Jello world!"))
        #expect(h.cloud.nodes[node.id]?.versionId == "2")

        // O_TRUNC: no download.
        let downloads = h.cloud.count("download")
        let t = try h.fs.open(inode: inode, flags: O_WRONLY | O_TRUNC, context: h.ctx)
        try h.write(inode, t.handle, at: 0, bytes("new"))
        try h.fs.release(inode: inode, handle: t.handle)
        #expect(h.drain())
        #expect(h.cloud.count("download") == downloads)
        #expect(h.cloud.content(of: node.id) == bytes("new"))
    }

    @Test func openForWritingWithoutWritesUploadsNothing() throws {
        let h = try Harness()
        h.cloud.addFile("same", content: bytes("x"))
        let inode = try h.fs.lookup(parent: rootInode, name: "same").attributes.inode
        let open = try h.fs.open(inode: inode, flags: O_RDWR, context: h.ctx)
        try h.fs.release(inode: inode, handle: open.handle)
        #expect(h.drain())
        #expect(h.cloud.count("initUpload") == 0)
    }

    @Test func truncateLargerAndSmallerGoesThroughTheSpool() throws {
        let h = try Harness()
        let node = h.cloud.addFile("t", content: bytes("0123456789"))
        let inode = try h.fs.lookup(parent: rootInode, name: "t").attributes.inode
        let smaller = try h.fs.setattr(inode: inode, changes: AttributeChanges(size: 4), handle: nil, context: h.ctx)
        #expect(smaller.attributes.size == 4)
        #expect(h.drain())
        #expect(h.cloud.content(of: node.id) == bytes("0123"))
        let larger = try h.fs.setattr(inode: inode, changes: AttributeChanges(size: 8), handle: nil, context: h.ctx)
        #expect(larger.attributes.size == 8)
        #expect(try h.readAll(inode) == bytes("0123") + [0, 0, 0, 0])
        #expect(h.drain())
        #expect(h.cloud.content(of: node.id) == bytes("0123") + [0, 0, 0, 0])
    }

    @Test func setattrKeepsModeOwnerAndTimesInMetadata() throws {
        let h = try Harness { c, _ in c.umask = 0o027; c.uid = 1234; c.gid = 5678 }
        let node = h.cloud.addFile("m", content: bytes("x"))
        let inode = try h.fs.lookup(parent: rootInode, name: "m").attributes.inode
        let before = try h.fs.getattr(inode: inode, handle: nil).attributes
        #expect(before.mode == UInt32(S_IFREG) | 0o640)
        #expect(before.uid == 1234 && before.gid == 5678)
        let after = try h.fs.setattr(inode: inode, changes: AttributeChanges(mode: 0o600, uid: 42, gid: 43,
            accessTime: .set(seconds: 1_000_000_000, nanoseconds: 5), modificationTime: .set(seconds: 1_500_000_000, nanoseconds: 123_456_789)),
            handle: nil, context: h.ctx).attributes
        #expect(after.mode == UInt32(S_IFREG) | 0o600 && after.uid == 42 && after.gid == 43)
        #expect(after.modificationTime.tv_sec == 1_500_000_000 && after.modificationTime.tv_nsec == 123_456_789)
        #expect(after.accessTime.tv_sec == 1_000_000_000 && after.accessTime.tv_nsec == 5)
        let md = h.cloud.nodes[node.id]!.metadata
        #expect(md["posix.mode"] == .number(0o600) && md["posix.uid"] == .number(42) && md["posix.gid"] == .number(43))
        #expect(md["posix.mtime"] == .string("1500000000.123456789"))
        // UTIME_NOW uses the clock.
        let now = try h.fs.setattr(inode: inode, changes: AttributeChanges(modificationTime: .now), handle: nil, context: h.ctx)
        #expect(abs(now.attributes.modificationTime.tv_sec - Int(h.clock.now.timeIntervalSince1970)) <= 1)
        // Shown after the cache expired too.
        h.clock.advance(1000)
        #expect(try h.fs.getattr(inode: inode, handle: nil).attributes.uid == 42)
        // Directories default to dirMode.
        h.cloud.addFolder("dd")
        #expect(try h.fs.lookup(parent: rootInode, name: "dd").attributes.mode == UInt32(S_IFDIR) | 0o750)
    }

    @Test func setattrOnAPendingFileTravelsWithItsUpload() throws {
        let h = try Harness()
        h.cloud.block("initUpload")
        let inode = try h.writeFile("p", bytes("x"))
        _ = try h.fs.setattr(inode: inode, changes: AttributeChanges(mode: 0o700, modificationTime: .set(seconds: 42, nanoseconds: 0)),
                             handle: nil, context: h.ctx)
        let shown = try h.fs.getattr(inode: inode, handle: nil).attributes
        #expect(shown.mode == UInt32(S_IFREG) | 0o700 && shown.modificationTime.tv_sec == 42)
        h.cloud.unblock("initUpload")
        #expect(h.drain())
        let md = h.cloud.child("p")!.metadata
        #expect(md["posix.mode"] == .number(0o700) && md["posix.mtime"] == .string("42.000000000"))
    }

    @Test func keepCacheWhileTheObjectIsUnchanged() throws {
        let h = try Harness { c, _ in c.cacheTTL = 10 }
        let node = h.cloud.addFile("k", content: bytes("one"))
        let inode = try h.fs.lookup(parent: rootInode, name: "k").attributes.inode
        let o1 = try h.fs.open(inode: inode, flags: O_RDONLY, context: h.ctx)
        try h.fs.release(inode: inode, handle: o1.handle)
        let o2 = try h.fs.open(inode: inode, flags: O_RDONLY, context: h.ctx)
        try h.fs.release(inode: inode, handle: o2.handle)
        #expect(o1.keepCache == false && o2.keepCache == true)
        h.cloud.replaceContent(of: node.id, with: bytes("two!"))
        h.clock.advance(11)
        let o3 = try h.fs.open(inode: inode, flags: O_RDONLY, context: h.ctx)
        #expect(o3.keepCache == false)
        #expect(try h.fs.read(inode: inode, handle: o3.handle, offset: 0, size: 10) == bytes("two!"))
        try h.fs.release(inode: inode, handle: o3.handle)
    }

    @Test func aFullSpoolMakesWritersWaitUntilUploadsDrain() throws {
        let h = try Harness { c, _ in c.spoolMaxMB = 1 }
        h.cloud.block("initUpload")
        try h.writeFile("first", pattern(900 * 1024))           // sealed, cannot drain yet
        let (entry, open) = try h.fs.create(parent: rootInode, name: "second", mode: 0o644, flags: O_WRONLY, context: h.ctx)
        let finished = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            try? h.write(entry.attributes.inode, open.handle, at: 0, pattern(300 * 1024))
            finished.signal()
        }
        #expect(finished.wait(timeout: .now() + 0.3) == .timedOut)   // blocked by back-pressure, no error
        h.cloud.unblock("initUpload")
        #expect(finished.wait(timeout: .now() + 10) == .success)
        try h.fs.release(inode: entry.attributes.inode, handle: open.handle)
        #expect(h.drain())
        #expect(h.cloud.content(of: h.cloud.child("second")!.id) == pattern(300 * 1024))
    }

    @Test func readOnlyRefusesEveryMutationAndLeavesTheSpoolEmpty() throws {
        let h = try Harness { c, _ in c.readOnly = true }
        h.cloud.addFile("f", content: bytes("x"))
        h.cloud.addFolder("d")
        let f = try h.fs.lookup(parent: rootInode, name: "f").attributes.inode
        let errs: [Int32?] = [
            h.errno { _ = try h.fs.create(parent: rootInode, name: "n", mode: 0o644, flags: O_WRONLY, context: h.ctx) },
            h.errno { _ = try h.fs.mkdir(parent: rootInode, name: "n", mode: 0o755, context: h.ctx) },
            h.errno { try h.fs.unlink(parent: rootInode, name: "f") },
            h.errno { try h.fs.rmdir(parent: rootInode, name: "d") },
            h.errno { try h.fs.rename(parent: rootInode, name: "f", newParent: rootInode, newName: "g", flags: 0) },
            h.errno { _ = try h.fs.open(inode: f, flags: O_WRONLY, context: h.ctx) },
            h.errno { _ = try h.fs.open(inode: f, flags: O_RDONLY | O_TRUNC, context: h.ctx) },
            h.errno { _ = try h.fs.setattr(inode: f, changes: AttributeChanges(size: 0), handle: nil, context: h.ctx) },
            h.errno { _ = try h.fs.setattr(inode: f, changes: AttributeChanges(mode: 0o600), handle: nil, context: h.ctx) },
            h.errno { try h.fs.setxattr(inode: f, name: "user.a", value: [1], flags: 0) },
            h.errno { try h.fs.removexattr(inode: f, name: "user.a") },
            h.errno { _ = try h.fs.symlink(target: "x", parent: rootInode, name: "l", context: h.ctx) },
            h.errno { _ = try h.fs.mknod(parent: rootInode, name: "m", mode: UInt32(S_IFREG), rdev: 0, context: h.ctx) },
            h.errno { _ = try h.fs.link(inode: f, newParent: rootInode, newName: "h") },
        ]
        #expect(errs.allSatisfy { $0 == EROFS })
        #expect(try h.readAll(f) == bytes("x"))
        #expect(!FileManager.default.fileExists(atPath: h.spoolFolder))
        #expect(h.cloud.count("initUpload") == 0)
    }

    @Test func shutdownStopsWritesAndLeavesUnfinishedUploadsSealed() throws {
        let h = try Harness()
        h.cloud.block("initUpload")
        try h.writeFile("stays", bytes("kept"))
        h.fs.shutdown(grace: 0.1)
        #expect(h.errno { _ = try h.fs.create(parent: rootInode, name: "late", mode: 0o644, flags: O_WRONLY, context: h.ctx) } == EROFS)
        #expect(h.files("data").count == 1)
        let record = try #require(JournalLog.read(path: h.spoolFolder + "/journal/" + h.files("journal")[0]).newest)
        #expect(record.state == .sealed)
        h.cloud.unblock("initUpload")
    }
}
