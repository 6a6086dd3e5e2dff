// lookup, getattr, readdir, mkdir, rmdir, unlink, rename, symlink, inode lookup counts and the
// metadata cache (TTL, negative entries, own changes visible at once).
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import RosetFS
import RosetClient

@Suite struct NamespaceTests {
    @Test func lookupCountsAndForgetDropTheMappingOnlyAtZero() throws {
        let h = try Harness()
        h.cloud.addFile("a", content: bytes("hello"))
        let e1 = try h.fs.lookup(parent: rootInode, name: "a")
        let e2 = try h.fs.lookup(parent: rootInode, name: "a")
        #expect(e1.attributes.inode == e2.attributes.inode)
        #expect(h.fs.inodes.lookups(of: e1.attributes.inode) == 2)
        h.fs.forget(inode: e1.attributes.inode, lookups: 1)
        #expect(try h.fs.getattr(inode: e1.attributes.inode, handle: nil).attributes.size == 5)
        h.fs.forget(inode: e1.attributes.inode, lookups: 1)
        #expect(h.errno { _ = try h.fs.getattr(inode: e1.attributes.inode, handle: nil) } == ENOENT)
        let e3 = try h.fs.lookup(parent: rootInode, name: "a")
        #expect(e3.attributes.inode != e1.attributes.inode)
    }

    @Test func namesCreatedInAFolderThisMountJustMadeNeedNoResolve() throws {
        let h = try Harness()
        let dir = try h.fs.mkdir(parent: rootInode, name: "new", mode: 0o755, context: h.ctx)
        let before = h.cloud.count("resolve")
        for i in 0..<20 {
            #expect(throws: FSError(ENOENT)) { try h.fs.lookup(parent: dir.attributes.inode, name: "f\(i)") }
        }
        #expect(h.cloud.count("resolve") == before)
        // A name that does exist there is still found once its listing expired or was patched.
        let folder = try #require(try h.cloud.resolve(name: "new", in: h.cloud.resolveRoot().id))
        h.cloud.addFile("x", in: folder.id, content: bytes("abc"))
        h.clock.advance(h.fs.config.cacheTTL + 1)
        #expect(try h.fs.lookup(parent: dir.attributes.inode, name: "x").attributes.size == 3)
    }

    @Test func aNameThisMountRemovedStaysAbsentFromFreshListingsWithinTheTTL() throws {
        let h = try Harness()
        h.cloud.addFile("gone")
        _ = try h.fs.lookup(parent: rootInode, name: "gone")
        try h.fs.unlink(parent: rootInode, name: "gone")
        // The server still lists the name for a moment (e.g. a node an upload's init made).
        h.cloud.addFile("gone")
        h.cloud.addFile("other")
        let dir = try h.fs.opendir(inode: rootInode)
        var names: [String] = []
        try h.fs.readdir(inode: rootInode, handle: dir.handle, offset: 0, plus: false) { names.append($0.name); return true }
        #expect(!names.contains("gone") && names.contains("other"))
        h.clock.advance(h.fs.config.cacheTTL + 1)
        #expect(try h.names().contains("gone"))
    }

    @Test func readdirplusCountsOnlyAcceptedEntries() throws {
        let h = try Harness()
        for i in 0..<5 { h.cloud.addFile("f\(i)") }
        let dir = try h.fs.opendir(inode: rootInode)
        var seen: [DirectoryEntry] = []
        try h.fs.readdir(inode: rootInode, handle: dir.handle, offset: 0, plus: true) { e in
            if seen.count == 4 { return false }   // ".", "..", f0, f1 accepted; f2 refused
            seen.append(e); return true
        }
        #expect(seen.map(\.name) == [".", "..", "f0", "f1"])
        #expect(h.fs.inodes.lookups(of: seen[2].inode) == 1)
        #expect(h.fs.inodes.lookups(of: seen[0].inode) == 1)  // root keeps its own single count
        let refused = h.fs.inodes.existingInode(for: h.cloud.child("f2")!.id)
        #expect(refused == nil)
        var rest: [String] = []
        try h.fs.readdir(inode: rootInode, handle: dir.handle, offset: seen.last!.nextOffset, plus: true) { rest.append($0.name); return true }
        #expect(rest == ["f2", "f3", "f4"])
    }

    @Test func readdirOffsetsStayValidWhileTheFolderChanges() throws {
        let h = try Harness()
        for i in 0..<6 { h.cloud.addFile("f\(i)") }
        let dir = try h.fs.opendir(inode: rootInode)
        var first: [DirectoryEntry] = []
        try h.fs.readdir(inode: rootInode, handle: dir.handle, offset: 0, plus: false) { e in
            guard first.count < 4 else { return false }
            first.append(e); return true
        }
        try h.fs.unlink(parent: rootInode, name: "f0")
        try h.writeFile("new", [])
        var rest: [String] = []
        try h.fs.readdir(inode: rootInode, handle: dir.handle, offset: first.last!.nextOffset, plus: false) { rest.append($0.name); return true }
        #expect(first.map(\.name) + rest == [".", "..", "f0", "f1", "f2", "f3", "f4", "f5"])
        // A new opendir sees the change.
        #expect(try h.names() == [".", "..", "f1", "f2", "f3", "f4", "f5", "new"])
    }

    @Test func readdirHasNoEntryCap() throws {
        let h = try Harness()
        for i in 0..<12_000 { h.cloud.addFile(String(format: "n%05d", i)) }
        #expect(try h.names().count == 12_002)
    }

    @Test func unusableServerNamesAreSkippedAndLongNamesRefused() throws {
        let h = try Harness()
        h.cloud.addFile("ok")
        h.cloud.addFile("a/b")
        h.cloud.addFile("nul\u{0}x")
        h.cloud.addFile("..")
        #expect(try h.names() == [".", "..", "ok"])
        let long = String(repeating: "x", count: 256)
        #expect(h.errno { _ = try h.fs.lookup(parent: rootInode, name: long) } == ENAMETOOLONG)
        #expect(h.errno { _ = try h.fs.mkdir(parent: rootInode, name: long, mode: 0o755, context: h.ctx) } == ENAMETOOLONG)
        #expect(h.errno { _ = try h.fs.create(parent: rootInode, name: long, mode: 0o644, flags: O_WRONLY, context: h.ctx) } == ENAMETOOLONG)
    }

    @Test func serverErrorsMapToErrnoAndDecodingErrorsToEIO() throws {
        let h = try Harness()
        h.cloud.failNext("resolve", with: FakeCloud.error(.decoding))
        #expect(h.errno { _ = try h.fs.lookup(parent: rootInode, name: "x") } == EIO)
        h.cloud.failNext("resolve", with: FakeCloud.error(.unauthorized, status: 401))
        #expect(h.errno { _ = try h.fs.lookup(parent: rootInode, name: "y") } == EACCES)
        h.cloud.failNext("children", with: FakeCloud.error(.decoding))
        #expect(h.errno { _ = try h.names() } == EIO)
    }

    @Test func negativeEntriesAreCachedUntilTheTTL() throws {
        let h = try Harness { c, _ in c.cacheTTL = 10 }
        #expect(h.errno { _ = try h.fs.lookup(parent: rootInode, name: "later") } == ENOENT)
        h.cloud.addFile("later")
        let before = h.cloud.count("resolve")
        #expect(h.errno { _ = try h.fs.lookup(parent: rootInode, name: "later") } == ENOENT)
        #expect(h.cloud.count("resolve") == before)
        h.clock.advance(11)
        #expect(h.errno { _ = try h.fs.lookup(parent: rootInode, name: "later") } == nil)
    }

    @Test func attributesAndListingsExpireWithTheTTL() throws {
        let h = try Harness { c, _ in c.cacheTTL = 10 }
        let node = h.cloud.addFile("a", content: bytes("1"))
        let inode = try h.fs.lookup(parent: rootInode, name: "a").attributes.inode
        #expect(try h.names() == [".", "..", "a"])
        h.cloud.replaceContent(of: node.id, with: bytes("12345"))
        h.cloud.addFile("b")
        #expect(try h.fs.getattr(inode: inode, handle: nil).attributes.size == 1)
        #expect(try h.names() == [".", "..", "a"])
        h.clock.advance(11)
        #expect(try h.fs.getattr(inode: inode, handle: nil).attributes.size == 5)
        #expect(try h.names() == [".", "..", "a", "b"])
        #expect(try h.fs.getattr(inode: inode, handle: nil).timeout == 10)
    }

    @Test func committedFoldersAreListedThroughTheManifestAndNeverExpire() throws {
        let h = try Harness { c, _ in c.cacheTTL = 10 }
        let sealed = h.cloud.addFolder("sealed", metadata: ["committed": .bool(true)])
        h.cloud.addFile("x", in: sealed.id)
        let inode = try h.fs.lookup(parent: rootInode, name: "sealed").attributes.inode
        #expect(try h.names(inode) == [".", "..", "x"])
        #expect(h.cloud.count("manifest") == 1)
        h.clock.advance(1000)
        #expect(try h.names(inode) == [".", "..", "x"])
        #expect(h.cloud.count("manifest") == 1)
        #expect(h.cloud.count("children") == 0)
        // Manifest failure falls back to children.
        let other = h.cloud.addFolder("sealed2", metadata: ["committed": .bool(true)])
        h.cloud.addFile("y", in: other.id)
        h.cloud.failNext("manifest", with: FakeCloud.error(.server, status: 500))
        let inode2 = try h.fs.lookup(parent: rootInode, name: "sealed2").attributes.inode
        #expect(try h.names(inode2) == [".", "..", "y"])
    }

    @Test func ownChangesAreVisibleAtOnceThroughACachedListing() throws {
        let h = try Harness { c, _ in c.cacheTTL = 1000 }
        h.cloud.addFile("old")
        #expect(try h.names() == [".", "..", "old"])
        #expect(h.errno { _ = try h.fs.lookup(parent: rootInode, name: "moved") } == ENOENT)   // negative entry
        try h.writeFile("created", bytes("x"))
        _ = try h.fs.mkdir(parent: rootInode, name: "dir", mode: 0o755, context: h.ctx)
        try h.fs.rename(parent: rootInode, name: "old", newParent: rootInode, newName: "moved", flags: 0)
        #expect(Set(try h.names()) == [".", "..", "created", "dir", "moved"])
        #expect(try h.fs.lookup(parent: rootInode, name: "moved").attributes.size == 0)
        #expect(h.errno { _ = try h.fs.lookup(parent: rootInode, name: "old") } == ENOENT)
        try h.fs.unlink(parent: rootInode, name: "moved")
        #expect(Set(try h.names()) == [".", "..", "created", "dir"])
        h.drain()
        #expect(Set(try h.names()) == [".", "..", "created", "dir"])
    }

    @Test func mkdirRmdirUnlinkErrnos() throws {
        let h = try Harness()
        let d = try h.fs.mkdir(parent: rootInode, name: "d", mode: 0o750, context: h.ctx)
        #expect(d.attributes.mode == UInt32(S_IFDIR) | 0o750)
        #expect(h.errno { _ = try h.fs.mkdir(parent: rootInode, name: "d", mode: 0o755, context: h.ctx) } == EEXIST)
        try h.writeFile("f", bytes("x"), parent: d.attributes.inode)
        #expect(h.errno { try h.fs.rmdir(parent: rootInode, name: "d") } == ENOTEMPTY)
        #expect(h.errno { try h.fs.unlink(parent: rootInode, name: "d") } == EISDIR)
        try h.writeFile("file", [])
        #expect(h.errno { try h.fs.rmdir(parent: rootInode, name: "file") } == ENOTDIR)
        #expect(h.errno { try h.fs.rmdir(parent: rootInode, name: "missing") } == ENOENT)
        try h.fs.unlink(parent: d.attributes.inode, name: "f")
        try h.fs.rmdir(parent: rootInode, name: "d")
        #expect(h.cloud.child("d") == nil)
        // mkdir over a name that only the server knows (cache cold): EEXIST from the 409.
        h.cloud.addFolder("remote")
        #expect(h.errno { _ = try h.fs.mkdir(parent: rootInode, name: "remote", mode: 0o755, context: h.ctx) } == EEXIST)
    }

    @Test func renameMovesFilesAndFoldersAcrossFolders() throws {
        let h = try Harness()
        let a = h.cloud.addFolder("a")
        let b = h.cloud.addFolder("b")
        h.cloud.addFile("f", in: a.id, content: bytes("data"))
        h.cloud.addFolder("sub", in: a.id)
        let ai = try h.fs.lookup(parent: rootInode, name: "a").attributes.inode
        let bi = try h.fs.lookup(parent: rootInode, name: "b").attributes.inode
        try h.fs.rename(parent: ai, name: "f", newParent: bi, newName: "g", flags: 0)
        try h.fs.rename(parent: ai, name: "sub", newParent: bi, newName: "sub", flags: 0)
        #expect(h.cloud.child("g", in: b.id) != nil)
        #expect(h.cloud.child("sub", in: b.id)?.type == .folder)
        #expect(try h.names(ai) == [".", ".."])
        #expect(Set(try h.names(bi)) == [".", "..", "g", "sub"])
        let g = try h.fs.lookup(parent: bi, name: "g")
        #expect(try h.readAll(g.attributes.inode) == bytes("data"))
    }

    @Test func renameErrnos() throws {
        let h = try Harness()
        let dir = h.cloud.addFolder("dir")
        h.cloud.addFolder("inner", in: dir.id)
        h.cloud.addFolder("full")
        h.cloud.addFile("x", in: h.cloud.child("full")!.id)
        h.cloud.addFolder("empty")
        h.cloud.addFile("file")
        h.cloud.addFile("file2")
        let di = try h.fs.lookup(parent: rootInode, name: "dir").attributes.inode
        #expect(h.errno { try h.fs.rename(parent: rootInode, name: "file", newParent: rootInode, newName: "file2", flags: renameNoReplace) } == EEXIST)
        #expect(h.errno { try h.fs.rename(parent: rootInode, name: "file", newParent: rootInode, newName: "file2", flags: renameExchange) } == EINVAL)
        #expect(h.errno { try h.fs.rename(parent: rootInode, name: "dir", newParent: rootInode, newName: "full", flags: 0) } == ENOTEMPTY)
        #expect(h.errno { try h.fs.rename(parent: rootInode, name: "dir", newParent: rootInode, newName: "file", flags: 0) } == ENOTDIR)
        #expect(h.errno { try h.fs.rename(parent: rootInode, name: "file", newParent: rootInode, newName: "empty", flags: 0) } == EISDIR)
        #expect(h.errno { try h.fs.rename(parent: rootInode, name: "dir", newParent: di, newName: "self", flags: 0) } == EINVAL)
        let inner = try h.fs.lookup(parent: di, name: "inner").attributes.inode
        #expect(h.errno { try h.fs.rename(parent: rootInode, name: "dir", newParent: inner, newName: "deeper", flags: 0) } == EINVAL)
        #expect(h.errno { try h.fs.rename(parent: rootInode, name: "nope", newParent: rootInode, newName: "x", flags: 0) } == ENOENT)
        // A folder over an empty folder replaces it.
        try h.fs.rename(parent: rootInode, name: "dir", newParent: rootInode, newName: "empty", flags: 0)
        #expect(h.cloud.child("empty")?.id == dir.id)
    }

    @Test func renameOfARemoteFileOverARemoteFileReplacesIt() throws {
        let h = try Harness()
        h.cloud.addFile("src", content: bytes("new"))
        let target = h.cloud.addFile("dst", content: bytes("old"))
        try h.fs.rename(parent: rootInode, name: "src", newParent: rootInode, newName: "dst", flags: 0)
        #expect(h.cloud.child("src") == nil)
        #expect(h.cloud.content(of: h.cloud.child("dst")!.id) == bytes("new"))
        #expect(h.cloud.nodes[target.id] == nil)
        #expect(try h.names() == [".", "..", "dst"])
    }

    @Test func writeTmpThenRenameOverMakesANewVersionOfTheTarget() throws {
        let h = try Harness()
        let target = h.cloud.addFile("model.pt", content: bytes("version 1"))
        _ = try h.fs.lookup(parent: rootInode, name: "model.pt")
        h.cloud.block("initUpload")     // the rename comes before the upload finished, as after a save
        try h.writeFile("model.pt.tmp", bytes("version 2"))
        try h.fs.rename(parent: rootInode, name: "model.pt.tmp", newParent: rootInode, newName: "model.pt", flags: 0)
        let seen = try h.fs.lookup(parent: rootInode, name: "model.pt")
        #expect(try h.readAll(seen.attributes.inode) == bytes("version 2"))
        #expect(try h.names() == [".", "..", "model.pt"])
        h.cloud.unblock("initUpload")
        #expect(h.drain())
        #expect(h.cloud.child("model.pt")?.id == target.id)            // same node, new version
        #expect(h.cloud.content(of: target.id) == bytes("version 2"))
        #expect(h.cloud.child("model.pt.tmp") == nil)
        #expect(h.cloud.children().count == 1)
    }

    @Test func renameOfAPendingFileRetargetsItsUpload() throws {
        let h = try Harness()
        h.cloud.block("initUpload")
        try h.writeFile("a", bytes("payload"))
        h.cloud.waitUntilBlocked("initUpload")
        // The uploader holds the init; rename waits for it, then moves the node init created.
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            #expect(h.errno { try h.fs.rename(parent: rootInode, name: "a", newParent: rootInode, newName: "b", flags: 0) } == nil)
            done.signal()
        }
        Thread.sleep(forTimeInterval: 0.05)
        h.cloud.unblock("initUpload")
        done.wait()
        #expect(h.drain())
        #expect(h.cloud.child("a") == nil)
        #expect(h.cloud.content(of: h.cloud.child("b")!.id) == bytes("payload"))
        // Before any init: a purely local retarget.
        h.cloud.block("initUpload")
        try h.writeFile("c", bytes("second"))
        try h.fs.rename(parent: rootInode, name: "c", newParent: rootInode, newName: "d", flags: 0)
        h.cloud.unblock("initUpload")
        #expect(h.drain())
        #expect(h.cloud.child("c") == nil)
        #expect(h.cloud.content(of: h.cloud.child("d")!.id) == bytes("second"))
    }

    @Test func symlinkAndReadlink() throws {
        let h = try Harness()
        let e = try h.fs.symlink(target: "../some/where", parent: rootInode, name: "link", context: h.ctx)
        #expect(e.attributes.mode & UInt32(S_IFMT) == UInt32(S_IFLNK))
        #expect(e.attributes.size == 13)
        #expect(try h.fs.readlink(inode: e.attributes.inode) == "../some/where")
        #expect(h.drain())
        let node = h.cloud.child("link")!
        #expect(node.metadata["posix.type"] == .string("symlink"))
        #expect(node.metadata["posix.symlink"] == .string("../some/where"))
        h.clock.advance(1000)
        let again = try h.fs.lookup(parent: rootInode, name: "link")
        #expect(try h.fs.readlink(inode: again.attributes.inode) == "../some/where")
        #expect(h.errno { _ = try h.fs.link(inode: again.attributes.inode, newParent: rootInode, newName: "hard") } == EPERM)
        let fifo = try h.fs.mknod(parent: rootInode, name: "fifo", mode: UInt32(S_IFIFO) | 0o640, rdev: 0, context: h.ctx)
        #expect(fifo.attributes.mode == UInt32(S_IFIFO) | 0o640 && fifo.attributes.size == 0)
        let device = try h.fs.mknod(parent: rootInode, name: "dev", mode: UInt32(S_IFCHR) | 0o600, rdev: 0x1_0000_0503, context: h.ctx)
        #expect(device.attributes.mode == UInt32(S_IFCHR) | 0o600 && device.attributes.rdev == 0x1_0000_0503)
        let reg = try h.fs.mknod(parent: rootInode, name: "reg", mode: UInt32(S_IFREG) | 0o600, rdev: 0, context: h.ctx)
        #expect(reg.attributes.mode == UInt32(S_IFREG) | 0o600)
        #expect(h.drain())
        #expect(h.cloud.child("reg")?.size == 0)
    }

    @Test func statfsReportsBelievableNumbers() throws {
        let h = try Harness()
        let s = try h.fs.statfs(inode: rootInode)
        #expect(s.blockSize == 4096)
        #expect(s.totalBlocks * s.blockSize >= 1 << 50)
        #expect(s.availableBlocks > 0 && s.freeFiles > 1_000_000)
        #expect(s.maxNameLength == 255)
    }

    @Test func lookupsProceedWhileAnotherRequestIsStuck() throws {
        let h = try Harness()
        h.cloud.addFile("slow")
        h.cloud.addFile("fast")
        _ = try h.names()                       // listing cached: "fast" needs no network
        h.clock.advance(0)
        h.cloud.block("download")
        let slowInode = try h.fs.lookup(parent: rootInode, name: "slow").attributes.inode
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            _ = try? h.fs.open(inode: slowInode, flags: O_RDONLY, context: h.ctx)
            done.signal()
        }
        h.cloud.waitUntilBlocked("download")
        #expect(try h.fs.lookup(parent: rootInode, name: "fast").attributes.inode != slowInode)
        _ = try h.fs.mkdir(parent: rootInode, name: "dir", mode: 0o755, context: h.ctx)
        h.cloud.unblock("download")
        done.wait()
    }
}

@Suite struct AccessAndIdentityTests {
    @Test func accessFollowsTheModeBits() throws {
        let h = try Harness { c, _ in c.uid = 1000; c.gid = 1000 }
        h.cloud.addFile("private", metadata: ["posix.mode": .number(0o600)])
        h.cloud.addFile("script", metadata: ["posix.mode": .number(0o755)])
        let p = try h.fs.lookup(parent: rootInode, name: "private").attributes.inode
        let s = try h.fs.lookup(parent: rootInode, name: "script").attributes.inode
        let owner = RequestContext(uid: 1000, gid: 1000, pid: 1)
        let other = RequestContext(uid: 2000, gid: 2000, pid: 1)
        #expect(h.errno { try h.fs.access(inode: p, mask: R_OK | W_OK, context: owner) } == nil)
        #expect(h.errno { try h.fs.access(inode: p, mask: R_OK, context: other) } == EACCES)
        #expect(h.errno { try h.fs.access(inode: p, mask: X_OK, context: owner) } == EACCES)
        #expect(h.errno { try h.fs.access(inode: s, mask: R_OK | X_OK, context: other) } == nil)
        #expect(h.errno { try h.fs.access(inode: s, mask: W_OK, context: other) } == EACCES)
        #expect(h.errno { try h.fs.access(inode: p, mask: R_OK | W_OK, context: RequestContext(uid: 0, gid: 0, pid: 1)) } == nil)
    }

    @Test func aPendingFileKeepsItsInodeThroughItsUploadAndIsFoundByName() throws {
        let h = try Harness()
        h.cloud.block("initUpload")
        let inode = try h.writeFile("p", bytes("abc"))
        let again = try h.fs.lookup(parent: rootInode, name: "p")
        #expect(again.attributes.inode == inode && again.attributes.size == 3)
        h.cloud.unblock("initUpload")
        #expect(h.drain())
        #expect(try h.fs.getattr(inode: inode, handle: nil).attributes.size == 3)
        #expect(try h.fs.lookup(parent: rootInode, name: "p").attributes.inode == inode)
        #expect(h.fs.inodes.key(of: inode) == h.cloud.child("p")!.id)
        // After the kernel forgot it, the pending file is found again by name.
        h.cloud.block("initUpload")
        let q = try h.writeFile("q", bytes("zz"))
        h.fs.forget(inode: q, lookups: h.fs.inodes.lookups(of: q))
        #expect(try h.fs.lookup(parent: rootInode, name: "q").attributes.size == 2)
        h.cloud.unblock("initUpload")
        #expect(h.drain())
    }

    @Test func manyCreatesStayLocalUntilTheUploaderSendsThem() throws {
        let h = try Harness()
        _ = try h.names()
        h.cloud.block("initUpload")
        for i in 0..<200 { try h.writeFile("f\(i)", pattern(4096, seed: UInt8(i % 200))) }
        #expect(h.cloud.count("resolve") == 0)          // the cached listing answered every lookup
        #expect(h.cloud.count("initUpload") <= h.fs.config.uploadConcurrency)   // only the workers' blocked calls
        #expect(try h.names().count == 202)
        h.cloud.unblock("initUpload")
        #expect(h.drain(timeout: 60))
        #expect(h.cloud.children().count == 200)
        #expect(h.cloud.content(of: h.cloud.child("f7")!.id) == pattern(4096, seed: 7))
    }
}
