// The spool's on-disk format and ownership: journal records round-trip and detect tearing, the
// folder is 0700 and locked, a second instance is refused, and a new instance resumes what the
// previous one left sealed (including open-at-crash entries under a recovered name).
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import RosetFS
import CCRC32C
import RosetClient

@Suite struct SpoolTests {
    func sampleRecord() -> JournalRecord {
        JournalRecord(entryId: "0b0c", sequence: 3, state: .uploading,
                      target: SpoolTarget(parentId: "p", name: "ü name", nodeId: "n", createdByUpload: true, baseEtag: "e",
                                          baseVersionId: "v", baseSize: 9),
                      size: 123, crc32c: "0a1b2c3d", metadata: ["posix.mode": .number(420)],
                      upload: UploadProgress(token: "t", expiresAt: 99, multipart: true, partSize: 16 << 20,
                                             parts: [UploadedPart(partNumber: 1, etag: "x")]),
                      createdAt: 1, updatedAt: 2, modifiedAt: 3)
    }

    @Test func journalRecordsRoundTrip() throws {
        let record = sampleRecord()
        let bytes = try record.encoded()
        #expect(try JournalRecord.decode(bytes) == record)
        #expect(String(decoding: bytes, as: UTF8.self).contains("\"format\":2"))
    }

    @Test func tornRecordsAreDetected() throws {
        let bytes = try sampleRecord().encoded()
        for cut in [1, bytes.count / 2, bytes.count - 1] {
            #expect(throws: JournalRecord.DecodeError.self) { try JournalRecord.decode(Array(bytes.prefix(cut))) }
        }
        var flipped = bytes
        flipped[10] ^= 0x01
        #expect(throws: JournalRecord.DecodeError.self) { try JournalRecord.decode(flipped) }
    }

    @Test func aJournalFileYieldsItsNewestWholeFrameAndTheLengthOfTheValidPart() throws {
        var first = sampleRecord()
        first.state = .sealed
        var second = first
        second.sequence += 1
        second.state = .uploading
        let one = try JournalLog.frame(first), two = try JournalLog.frame(second)
        let whole = JournalLog.read(one + two)
        #expect(whole.newest == second && whole.validLength == one.count + two.count && whole.problem == nil)
        // A torn append (cut anywhere in the second frame, or garbage after it) leaves the first.
        for cut in [1, 5, two.count / 2, two.count - 1] {
            let torn = JournalLog.read(one + Array(two.prefix(cut)))
            #expect(torn.newest == first && torn.validLength == one.count && torn.problem != nil, "cut at \(cut)")
        }
        var flipped = two
        flipped[two.count - 20] ^= 0x01
        let bad = JournalLog.read(one + flipped)
        #expect(bad.newest == first && bad.problem != nil)
        #expect(JournalLog.read(Array(one.prefix(40))).newest == nil)
        // A frame of another entry is never taken for this entry's state.
        let foreign = JournalLog.read(one + two, entryId: "another-entry")
        #expect(foreign.newest == nil && foreign.problem != nil)
        #expect(JournalLog.read(one + two, entryId: first.entryId).newest == second)
        // Layout 1 (one bare record per file) is still read.
        #expect(JournalLog.read(try first.encoded()).newest == first)
        #expect(JournalLog.entryId(ofFile: "abc.rec") == "abc")
        #expect(JournalLog.entryId(ofFile: "abc.0000000003.rec") == "abc")
        #expect(JournalLog.entryId(ofFile: "abc.rec.tmp") == nil && JournalLog.entryId(ofFile: "abc.x.rec") == nil)
    }

    @Test func aTornAppendIsCutOffAtRecoverySoTheEntryGoesOnAndDrains() throws {
        let h = try Harness()
        h.cloud.block("initUpload")
        try h.writeFile("kept", bytes("sealed content"))
        h.fs.shutdown(grace: 0)
        let journal = h.files("journal")
        #expect(journal == h.files("data").map { $0 + ".rec" }, "one journal file per entry: \(journal)")
        // A power cut in the middle of the next append: half a frame after the sealed record.
        let path = h.spoolFolder + "/journal/" + journal[0]
        let sealed = try #require(JournalLog.read(path: path).newest)
        #expect(sealed.state == .sealed)
        var next = sealed
        next.sequence += 1
        next.state = .uploading
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data(try JournalLog.frame(next).prefix(30)))
        handle.closeFile()
        h.cloud.unblock("initUpload")
        try h.restart()
        #expect(h.drain())
        #expect(h.cloud.child("kept").map { h.cloud.content(of: $0.id) } == bytes("sealed content"))
        #expect(h.files("journal").isEmpty && h.files("data").isEmpty && h.files("dead").isEmpty)
    }

    @Test func aJournalFileGrownPastTheThresholdIsReplacedByItsNewestRecord() throws {
        let h = try Harness()
        var record = sampleRecord()
        record.entryId = "compaction-test"
        // A multipart record listing many parts, appended once per finished part.
        record.upload!.parts = (1...400).map { UploadedPart(partNumber: $0, etag: String(repeating: "e", count: 32)) }
        let path = h.fs.spool.journalPath(record.entryId)
        var largest: Int64 = 0
        for _ in 0..<40 {
            record.sequence += 1
            try h.fs.spool.write(record, durable: true)
            largest = max(largest, (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int64) ?? 0)
        }
        let frame = Int64(try JournalLog.frame(record).count)
        #expect(largest <= Int64(Spool.compactionThreshold) + frame, "the file never grows much past the threshold")
        let contents = JournalLog.read(path: path)
        #expect(contents.newest == record && contents.problem == nil)
        h.fs.spool.remove(entryId: record.entryId, data: nil)
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    func inode(_ fd: Int32) -> ino_t { var st = stat(); fstat(fd, &st); return st.st_ino }

    func inodes(_ folder: String) -> Set<ino_t> {
        var found = Set<ino_t>()
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] {
            var st = stat()
            if stat(folder + "/" + name, &st) == 0 { found.insert(st.st_ino) }
        }
        return found
    }

    /// A removed entry's data file leaves data/ at once but is reused only after its last holder
    /// lets go: until then it keeps its bytes and no new file gets its inode; afterwards the next
    /// data file is that inode, emptied.
    @Test func aRemovedDataFileIsReusedOnlyAfterItsLastHolderLetsGo() throws {
        let h = try Harness()
        let spool = h.fs.spool
        var held: SpoolDataFile? = try spool.createDataFile("e1")
        let content = pattern(10_000)
        try content.withUnsafeBytes { try held!.pwrite($0, offset: 0) }
        let heldInode = inode(held!.fd)
        spool.remove(entryId: "e1", data: held)
        #expect(!FileManager.default.fileExists(atPath: spool.dataPath("e1")), "the name leaves data/ at once")
        let meanwhile = try spool.createDataFile("e2")
        #expect(inode(meanwhile.fd) != heldInode, "a data file still held is not handed out again")
        #expect(try held!.pread(offset: 0, count: content.count) == content, "the holder still reads its bytes")
        held = nil
        #expect(spool.reusableFileCount == 1)
        let next = try spool.createDataFile("e3")
        #expect(inode(next.fd) == heldInode, "released, the inode is reused")
        let start = try next.pread(offset: 0, count: 16)
        #expect(next.size() == 0 && start.isEmpty, "and it was emptied first")
    }

    /// Once uploads keep up, writing files allocates and frees no inodes in the spool: each file's
    /// data and journal files come from free/ and go back there (journal-less ext4 pays for every
    /// recently freed inode on each new allocation, see Spool.freeFolder).
    @Test func filesWrittenOneAfterAnotherCycleTheSameSpoolInodes() throws {
        let h = try Harness()
        func writeAndSettle(_ name: String, _ content: [UInt8]) throws {
            try h.writeFile(name, content)
            #expect(h.drain())
            // The uploader lets go of the entry just after the upload is confirmed.
            let deadline = Date().addingTimeInterval(5)
            while h.fs.spool.reusableFileCount < 2 && Date() < deadline { usleep(1_000) }
        }
        try writeAndSettle("first", pattern(100))
        let pooled = inodes(h.spoolFolder + "/free")
        #expect(pooled.count == 2, "the first file's data and journal files are kept for reuse")
        for i in 0..<20 { try writeAndSettle("f\(i)", pattern(4096, seed: UInt8(i))) }
        #expect(inodes(h.spoolFolder + "/free") == pooled, "the same two inodes, and no others, after 20 files")
        #expect(h.files("data").isEmpty && h.files("journal").isEmpty)
        for i in [0, 7, 19] {
            #expect(h.cloud.child("f\(i)").map { h.cloud.content(of: $0.id) } == pattern(4096, seed: UInt8(i)))
        }
    }

    @Test func sha256MatchesKnownVectors() {
        #expect(SHA256Hasher.hex(of: [UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256Hasher.hex(of: bytes("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        var incremental = SHA256Hasher()
        let data = pattern(100_000)
        for chunk in stride(from: 0, to: data.count, by: 777) { incremental.update(data[chunk..<min(chunk + 777, data.count)]) }
        #expect(incremental.hexDigest() == SHA256Hasher.hex(of: data))
    }

    @Test func crc32cMatchesKnownVectorsOnBothPaths() {
        // RFC 3720 B.4 and the usual check value.
        #expect(CRC32C.hex(of: bytes("123456789")) == "e3069283")
        #expect(CRC32C.hex(of: [UInt8](repeating: 0, count: 32)) == "8a9136aa")
        #expect(CRC32C.hex(of: [UInt8](repeating: 0xff, count: 32)) == "62a8ab43")
        #expect(CRC32C.hex(of: [UInt8]()) == "00000000")
        // The hardware and the table path agree at every alignment and length around a word.
        let data = pattern(4099, seed: 7)
        data.withUnsafeBytes { all in
            for start in 0..<9 {
                for length in [0, 1, 7, 8, 9, 15, 16, 17, 4000] {
                    let slice = UnsafeRawBufferPointer(rebasing: all[start..<(start + length)])
                    let software = roset_crc32c_software(0, slice.baseAddress, slice.count)
                    if roset_crc32c_hardware_available() != 0 {
                        #expect(roset_crc32c_hardware(0, slice.baseAddress, slice.count) == software)
                    }
                    var sum = CRC32C()
                    sum.update(slice)
                    #expect(sum.value == software && sum.count == Int64(length))
                }
            }
        }
        var incremental = CRC32C()
        for chunk in stride(from: 0, to: data.count, by: 777) { incremental.update(data[chunk..<min(chunk + 777, data.count)]) }
        #expect(incremental.hexDigest() == CRC32C.hex(of: data))
    }

    @Test func formatOneRecordsAreVerifiedByTheirSHA256() throws {
        // A spool left by a version that kept a sha256 per data file (journal format 1, layout
        // 1): the entry whose data matches it is uploaded, the one whose data does not is a dead
        // letter.
        let h = try Harness()
        h.cloud.block("initUpload")
        try h.writeFile("kept", bytes("kept content"))
        try h.writeFile("damaged", bytes("damaged content"))
        h.fs.shutdown(grace: 0)
        for file in h.files("journal") {
            let path = h.spoolFolder + "/journal/" + file
            var record = try #require(JournalLog.read(path: path).newest)
            let content = record.target.name == "kept" ? bytes("kept content") : bytes("DAMAGED content")
            record.format = 1
            record.crc32c = nil
            record.sha256 = SHA256Hasher.hex(of: content)
            try FileManager.default.removeItem(atPath: path)
            FileManager.default.createFile(atPath: h.spoolFolder + "/journal/\(record.entryId).\(String(format: "%010d", record.sequence)).rec",
                                           contents: Data(try record.encoded()))
        }
        h.cloud.unblock("initUpload")
        try h.restart()
        #expect(h.drain())
        #expect(h.cloud.child("kept").map { h.cloud.content(of: $0.id) } == bytes("kept content"))
        #expect(h.cloud.child("damaged")?.size ?? 0 == 0)
        #expect(h.files("dead").count == 1)
    }

    @Test func theSpoolFolderIsPrivateAndLockedAgainstASecondInstance() throws {
        let h = try Harness()
        var st = stat()
        #expect(stat(h.spoolFolder, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o700)
        #expect(throws: SpoolError.self) { _ = try h.makeFileSystem() }
        do { _ = try h.makeFileSystem() } catch { #expect("\(error)".contains("in use by another roset mount")) }
        // Another mount id gets its own folder.
        h.config.mountId = "m2"
        _ = try h.makeFileSystem()
    }

    @Test func aSecondInstanceResumesSealedEntries() throws {
        let h = try Harness { _, t in t.partSizeBytes = 1024 }
        h.cloud.block("initUpload")
        try h.writeFile("one", pattern(3000))
        try h.writeFile("two", bytes("2"))
        h.fs.shutdown(grace: 0)
        h.cloud.unblock("initUpload")
        Thread.sleep(forTimeInterval: 0.05)
        #expect(h.cloud.child("one")?.size ?? 0 == 0)
        try h.restart()
        #expect(h.drain())
        #expect(h.cloud.content(of: h.cloud.child("one")!.id) == pattern(3000))
        #expect(h.cloud.content(of: h.cloud.child("two")!.id) == bytes("2"))
        #expect(h.files("data").isEmpty)
        #expect(h.cloud.children().count == 2)
    }

    @Test func resumeKeepsCompletedPartsWhileTheTokenIsValid() throws {
        let h = try Harness { _, t in t.partSizeBytes = 1024 }
        h.cloud.block("completeUpload")
        try h.writeFile("big", pattern(4000))
        h.cloud.waitUntilBlocked("completeUpload")
        h.fs.shutdown(grace: 0)
        let puts = h.cloud.count("write")
        #expect(puts == 4)
        h.cloud.unblock("completeUpload")   // the stopped instance abandons; the new one resumes
        Thread.sleep(forTimeInterval: 0.05)
        try h.restart()
        #expect(h.drain())
        #expect(h.cloud.content(of: h.cloud.child("big")!.id) == pattern(4000))
        #expect(h.cloud.count("write") == puts)     // no part sent twice
    }

    @Test func openEntriesAreRecoveredUnderAVisibleName() throws {
        let h = try Harness()
        h.cloud.addFile("notes", content: bytes("original"))
        let inode = try h.fs.lookup(parent: rootInode, name: "notes").attributes.inode
        let open = try h.fs.open(inode: inode, flags: O_WRONLY | O_TRUNC, context: h.ctx)
        try h.write(inode, open.handle, at: 0, bytes("unsaved work"))
        // A clean shutdown seals open entries; simulate a crash (kill -9 while the file was open)
        // by putting the journal back to an `open` record, as it stood before the seal, written
        // in layout 1 (one file per record, as an earlier version did): recovery still reads it.
        h.fs.shutdown(grace: 0)
        let journal = h.files("journal")
        #expect(journal.count == 1)
        var record = try #require(JournalLog.read(path: h.spoolFolder + "/journal/" + journal[0]).newest)
        record.state = .open
        record.sequence += 1
        try FileManager.default.removeItem(atPath: h.spoolFolder + "/journal/" + journal[0])
        let data = try record.encoded()
        FileManager.default.createFile(atPath: h.spoolFolder + "/journal/\(record.entryId).\(String(format: "%010d", record.sequence)).rec",
                                       contents: Data(data))
        try h.restart()
        #expect(h.drain())
        let recovered = h.cloud.children().filter { $0.name.hasPrefix("notes.recovered-") }
        #expect(recovered.count == 1)
        #expect(h.cloud.content(of: recovered[0].id) == bytes("unsaved work"))
        #expect(h.cloud.content(of: h.cloud.child("notes")!.id) == bytes("original"))
    }

    @Test func tornRecordsAndBadChecksumsGoToDeadLettersKeepingTheData() throws {
        let h = try Harness()
        h.cloud.block("initUpload")
        try h.writeFile("a", bytes("alpha"))
        try h.writeFile("b", bytes("bravo"))
        h.fs.shutdown(grace: 0)
        let records = h.files("journal")
        #expect(records.count == 2)
        // Tear one record, corrupt the other entry's data.
        let tornPath = h.spoolFolder + "/journal/" + records[0]
        let whole = FileManager.default.contents(atPath: tornPath)!
        // Torn inside its first frame: no valid record at all.
        try whole.prefix(40).write(to: URL(fileURLWithPath: tornPath))
        let otherId = String(records[1].split(separator: ".")[0])
        try Data(bytes("BRAVO")).write(to: URL(fileURLWithPath: h.spoolFolder + "/data/" + otherId))
        h.cloud.unblock("initUpload")
        try h.restart()
        #expect(h.drain())
        #expect(h.files("dead").count == 2)
        for dead in h.files("dead") {
            let folder = h.spoolFolder + "/dead/" + dead
            #expect(FileManager.default.fileExists(atPath: folder + "/data"))
            #expect(FileManager.default.fileExists(atPath: folder + "/reason"))
        }
        #expect(h.cloud.count("initUpload") == 0 || h.cloud.children().allSatisfy { $0.size == 0 })
    }

    @Test func aConflictingRemoteChangeIsUploadedBesideTheOriginal() throws {
        let h = try Harness()
        let node = h.cloud.addFile("shared", content: bytes("v1"))
        let inode = try h.fs.lookup(parent: rootInode, name: "shared").attributes.inode
        h.cloud.block("initUpload")
        let open = try h.fs.open(inode: inode, flags: O_WRONLY | O_TRUNC, context: h.ctx)
        try h.write(inode, open.handle, at: 0, bytes("mine"))
        try h.fs.release(inode: inode, handle: open.handle)
        h.fs.shutdown(grace: 0)
        h.cloud.replaceContent(of: node.id, with: bytes("theirs"))
        h.cloud.unblock("initUpload")
        Thread.sleep(forTimeInterval: 0.05)
        try h.restart()
        #expect(h.drain())
        #expect(h.cloud.content(of: node.id) == bytes("theirs"))
        let conflict = h.cloud.children().filter { $0.name.hasPrefix("shared.conflict-") }
        #expect(conflict.count == 1)
        #expect(h.cloud.content(of: conflict[0].id) == bytes("mine"))
    }

    @Test func anUnchangedFileOpenAtTheCrashIsNotRecovered() throws {
        let h = try Harness()
        h.cloud.addFile("untouched", content: bytes("same"))
        let inode = try h.fs.lookup(parent: rootInode, name: "untouched").attributes.inode
        _ = try h.fs.open(inode: inode, flags: O_RDWR, context: h.ctx)   // never written, never closed
        #expect(h.files("journal").count == 1)
        try h.restart()
        #expect(h.drain())
        #expect(h.cloud.children().map(\.name) == ["untouched"])
        #expect(h.files("journal").isEmpty && h.files("data").isEmpty && h.files("dead").isEmpty)
    }

    /// Prints how long sealing takes (creates through close, before any upload); asserts only
    /// that every file was spooled. Real numbers come from the benchmark on a release build.
    @Test func createThroughputIsPrinted() throws {
        let h = try Harness()
        _ = try h.names()
        h.cloud.block("initUpload")
        let start = Date()
        for i in 0..<300 { try h.writeFile("c\(i)", pattern(4096)) }
        let elapsed = Date().timeIntervalSince(start)
        print("rosetfs: 300 creates of 4 KiB through close: \(String(format: "%.3f", elapsed)) s (debug build)")
        #expect(h.files("data").count == 300)
        h.cloud.unblock("initUpload")
        #expect(h.drain(timeout: 60))
    }

    @Test func aFileWhoseFolderVanishedGoesToLostAndFound() throws {
        let h = try Harness()
        let folder = h.cloud.addFolder("doomed")
        let inode = try h.fs.lookup(parent: rootInode, name: "doomed").attributes.inode
        h.cloud.block("initUpload")
        try h.writeFile("orphan", bytes("still here"), parent: inode)
        try h.cloud.deleteNode(id: folder.id)           // removed by another client
        h.cloud.unblock("initUpload")
        #expect(h.drain())
        let lostAndFound = try #require(h.cloud.child("lost+found"))
        let saved = h.cloud.children(in: lostAndFound.id)
        #expect(saved.count == 1 && saved[0].name.hasPrefix("orphan."))
        #expect(h.cloud.content(of: saved[0].id) == bytes("still here"))
    }

    @Test func aPermanentlyRefusedUploadBecomesADeadLetter() throws {
        let h = try Harness()
        h.cloud.failNext("initUpload", times: 1000, with: FakeCloud.error(.badRequest, status: 400, code: "INVALID"))
        let (entry, open) = try h.fs.create(parent: rootInode, name: "bad", mode: 0o644, flags: O_WRONLY, context: h.ctx)
        try h.write(entry.attributes.inode, open.handle, at: 0, bytes("refused"))
        #expect(h.errno { try h.fs.fsync(inode: entry.attributes.inode, handle: open.handle, dataOnly: false) } == EIO)
        try? h.fs.release(inode: entry.attributes.inode, handle: open.handle)
        #expect(h.drain())
        let dead = h.files("dead")
        #expect(dead.count == 1)
        let folder = h.spoolFolder + "/dead/" + dead[0]
        #expect(FileManager.default.contents(atPath: folder + "/data").map { Array($0) } == bytes("refused"))
        #expect((try? String(contentsOfFile: folder + "/reason", encoding: .utf8))?.contains("permanently") == true)
        #expect(h.files("data").isEmpty)
    }
}
