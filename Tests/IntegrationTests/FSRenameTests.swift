// rename(2)/renameat2(2) through a real mount: files and folders across folders, replacing an
// existing file (the editor's `write tmp; rename(tmp, file)`), RENAME_NOREPLACE/EXCHANGE, and the
// errnos of renaming over folders.
import Foundation
import RosetClient
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized, .timeLimit(.minutes(10)))
struct FSRenameTests {
    @Test func filesAndFoldersMoveAcrossFolders() throws {
        try MountedRoset.with { f in
            #expect(Posix.mkdir(f.path("a")) == .ok)
            #expect(Posix.mkdir(f.path("b")) == .ok)
            #expect(Posix.mkdir(f.path("a/sub")) == .ok)
            let bytes = PatternBytes.make(count: 10_000, seed: 2)
            #expect(Posix.write(f.path("a/sub/file"), bytes) == .ok)
            #expect(f.eventually { (try? f.remoteContent("a/sub/file")) == bytes })

            #expect(Posix.rename(f.path("a/sub/file"), f.path("b/moved")) == .ok)
            #expect(!Posix.exists(f.path("a/sub/file")))
            #expect(Posix.read(f.path("b/moved")).1 == bytes)
            #expect(Posix.rename(f.path("a/sub"), f.path("b/sub2")) == .ok)
            #expect(Posix.stat(f.path("b/sub2")).1.st_mode & S_IFMT == S_IFDIR)
            #expect(!Posix.exists(f.path("a/sub")))
            #expect(Set(Posix.listDirectory(f.path("b")).1) == [".", "..", "moved", "sub2"])
            #expect(Set(Posix.listDirectory(f.path("a")).1) == [".", ".."])
            // A folder cannot move into itself.
            #expect(Posix.rename(f.path("b"), f.path("b/sub2/b")) == .failed(EINVAL))
            #expect(Posix.rename(f.path("nothing"), f.path("b/x")) == .failed(ENOENT))

            #expect(f.remoteContentIfAny("b/moved") == bytes)
            #expect(f.remoteNodeIfAny("a/sub/file") == nil)
            #expect(f.remoteNodeIfAny("b/sub2")?.type == .folder)
            #expect(f.remoteNodeIfAny("a/sub") == nil)
        }
    }

    @Test func writeTmpThenRenameReplacesTheFile() throws {
        try MountedRoset.with { f in
            let old = Array("old content".utf8)
            #expect(Posix.write(f.path("doc.txt"), old) == .ok)
            #expect(f.eventually { (try? f.remoteContent("doc.txt")) == old })
            let originalId = try #require(try f.remoteNode("doc.txt")).id

            // Uploads are slowed so that the rename meets doc.txt.tmp still pending, the case in
            // which the replacement can be a new version of doc.txt's node (once tmp's own
            // upload completed it is a node of its own, and rename can only replace doc.txt).
            try f.server.setFaults(#"{"latencyMs":{"upload":1000}}"#)
            let new = PatternBytes.make(count: 50_000, seed: 3)
            #expect(Posix.write(f.path("doc.txt.tmp"), new) == .ok)
            #expect(Posix.rename(f.path("doc.txt.tmp"), f.path("doc.txt")) == .ok)
            #expect(Posix.read(f.path("doc.txt")).1 == new)
            #expect(!Posix.exists(f.path("doc.txt.tmp")))
            #expect(Posix.stat(f.path("doc.txt")).1.st_size == new.count)
            #expect(f.eventually { (try? f.remoteContent("doc.txt")) == new })
            #expect(f.eventually { f.remoteNodeIfAny("doc.txt.tmp") == nil })
            // The replacement is a new version of the same node.
            #expect(f.remoteNodeIfAny("doc.txt")?.id == originalId)
            #expect(Set(Posix.listDirectory(f.mountpoint).1) == [".", "..", "doc.txt"])
        }
    }

    @Test func savingTwiceWhileTheFirstSaveIsStillUploading() throws {
        try MountedRoset.with { f in
            try f.server.setFaults(#"{"latencyMs":{"upload":1500}}"#)
            let first = PatternBytes.make(count: 30_000, seed: 22)
            let second = PatternBytes.make(count: 20_000, seed: 23)
            #expect(Posix.write(f.path("doc.tmp"), first) == .ok)
            #expect(Posix.rename(f.path("doc.tmp"), f.path("doc")) == .ok)
            #expect(Posix.write(f.path("doc.tmp"), second) == .ok)
            #expect(Posix.rename(f.path("doc.tmp"), f.path("doc")) == .ok)
            #expect(Posix.read(f.path("doc")).1 == second)
            #expect(Set(Posix.listDirectory(f.mountpoint).1) == [".", "..", "doc"])
            try f.server.clearFaults()
            #expect(f.eventually { f.spoolEntryFiles().isEmpty }, "left: \(f.spoolEntryFiles())")
            #expect(f.remoteContentIfAny("doc") == second)
            #expect(f.remoteNodeIfAny("doc.tmp") == nil)
            #expect(Set(try f.api.children(of: try f.rootId).map(\.name)) == ["doc"])
        }
    }

    @Test func renameOfUploadedFileOverUploadedFile() throws {
        try MountedRoset.with { f in
            let a = Array("AAAA".utf8), b = Array("BB".utf8)
            #expect(Posix.write(f.path("a"), a) == .ok)
            #expect(Posix.write(f.path("b"), b) == .ok)
            #expect(f.eventually { (try? f.remoteContent("a")) == a && (try? f.remoteContent("b")) == b })
            #expect(f.eventually { f.spoolEntryFiles().isEmpty })
            #expect(Posix.rename(f.path("a"), f.path("b")) == .ok)
            #expect(Posix.read(f.path("b")).1 == a)
            #expect(!Posix.exists(f.path("a")))
            #expect(f.remoteContentIfAny("b") == a)
            #expect(f.remoteNodeIfAny("a") == nil)
        }
    }

    @Test func renameFlagsAndFolderErrnos() throws {
        try MountedRoset.with { f in
            #expect(Posix.write(f.path("x"), [1]) == .ok)
            #expect(Posix.write(f.path("y"), [2]) == .ok)
            #expect(Posix.rename(f.path("x"), f.path("y"), flags: 1 /* RENAME_NOREPLACE */) == .failed(EEXIST))
            #expect(Posix.read(f.path("x")).1 == [1])
            #expect(Posix.read(f.path("y")).1 == [2])
            #expect(Posix.rename(f.path("x"), f.path("y"), flags: 2 /* RENAME_EXCHANGE */) == .failed(EINVAL))
            #expect(Posix.read(f.path("x")).1 == [1])
            #expect(Posix.rename(f.path("x"), f.path("z"), flags: 1) == .ok)
            #expect(Posix.read(f.path("z")).1 == [1])

            #expect(Posix.mkdir(f.path("full")) == .ok)
            #expect(Posix.write(f.path("full/inside"), [3]) == .ok)
            #expect(Posix.mkdir(f.path("empty")) == .ok)
            #expect(Posix.mkdir(f.path("src")) == .ok)
            #expect(Posix.rename(f.path("src"), f.path("full")) == .failed(ENOTEMPTY))
            #expect(Posix.rename(f.path("src"), f.path("z")) == .failed(ENOTDIR))
            #expect(Posix.rename(f.path("z"), f.path("empty")) == .failed(EISDIR))
            #expect(Posix.rename(f.path("src"), f.path("empty")) == .ok)
            #expect(!Posix.exists(f.path("src")))
            #expect(Posix.stat(f.path("empty")).1.st_mode & S_IFMT == S_IFDIR)
            #expect(f.eventually { f.remoteNodeIfAny("src") == nil && f.remoteNodeIfAny("empty")?.type == .folder })
            #expect(f.eventually { (try? f.remoteContent("z")) == [1] && (try? f.remoteContent("y")) == [2] })
        }
    }
}
