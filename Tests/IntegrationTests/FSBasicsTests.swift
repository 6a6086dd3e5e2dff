// The original operations through a real mount against a real roset-server: lookup, getattr,
// readdir(plus), open/read/create/write/release, mkdir/rmdir/unlink, with the errnos a POSIX
// filesystem gives; readdir without a cap and with offsets that survive changes; link/mknod;
// symlinks; statfs; names the kernel or the server cannot use; undecodable server answers.
import Foundation
import RosetClient
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized, .timeLimit(.minutes(10)))
struct FSBasicsTests {
    @Test func createWriteReadStatAndUpload() throws {
        try MountedRoset.with { f in
            let bytes = PatternBytes.make(count: 300_000, seed: 1)
            #expect(Posix.write(f.path("a.bin"), bytes) == .ok)
            let (rc, st) = Posix.stat(f.path("a.bin"))
            #expect(rc == .ok)
            #expect(st.st_size == bytes.count)
            #expect(st.st_mode & S_IFMT == S_IFREG)
            #expect(st.st_nlink == 1)
            let (rrc, back) = Posix.read(f.path("a.bin"))
            #expect(rrc == .ok)
            #expect(back == bytes)
            #expect(f.eventually { (try? f.remoteContent("a.bin")) == bytes })
            let (rootRC, root) = Posix.stat(f.mountpoint)
            #expect(rootRC == .ok)
            #expect(root.st_mode & S_IFMT == S_IFDIR)
            #expect(Posix.stat(f.path("missing")).0 == .failed(ENOENT))
            #expect(Posix.read(f.path("missing")).0 == .failed(ENOENT))
            // A file is not a folder on the way.
            #expect(Posix.stat(f.path("a.bin/x")).0 == .failed(ENOTDIR))
        }
    }

    @Test func folderErrnos() throws {
        try MountedRoset.with { f in
            #expect(Posix.mkdir(f.path("d")) == .ok)
            #expect(Posix.mkdir(f.path("d")) == .failed(EEXIST))
            #expect(Posix.write(f.path("d/file"), [1, 2, 3]) == .ok)
            #expect(Posix.mkdir(f.path("d/file")) == .failed(EEXIST))
            #expect(Posix.rmdir(f.path("d")) == .failed(ENOTEMPTY))
            #expect(Posix.unlink(f.path("d")) == .failed(EISDIR))
            #expect(Posix.rmdir(f.path("d/file")) == .failed(ENOTDIR))
            #expect(Posix.unlink(f.path("d/nothing")) == .failed(ENOENT))
            #expect(Posix.rmdir(f.path("nothing")) == .failed(ENOENT))
            #expect(Posix.mkdir(f.path("nothing/sub")) == .failed(ENOENT))
            #expect(Posix.write(f.path("d"), [1], flags: O_WRONLY) == .failed(EISDIR))
            #expect(f.eventually { (try? f.remoteContent("d/file")) == [1, 2, 3] })
            #expect(f.remoteNodeIfAny("d")?.type == .folder)

            #expect(Posix.unlink(f.path("d/file")) == .ok)
            #expect(!Posix.exists(f.path("d/file")))
            #expect(Posix.rmdir(f.path("d")) == .ok)
            #expect(!Posix.exists(f.path("d")))
            #expect(f.remoteNodeIfAny("d") == nil)
        }
    }

    @Test func readdirHasDotEntriesAndNoCap() throws {
        try MountedRoset.with { f in
            let root = try f.rootId
            let count = 1_500
            for i in 0..<count { _ = try f.api.createFolder(name: String(format: "entry-%05d", i), parentId: root, metadata: nil) }
            #expect(Posix.write(f.path("file.txt"), Array("hi".utf8)) == .ok)
            let (rc, names) = Posix.listDirectory(f.mountpoint)
            #expect(rc == .ok)
            #expect(names.filter { $0 == "." }.count == 1)
            #expect(names.filter { $0 == ".." }.count == 1)
            #expect(names.count == count + 3)
            #expect(Set(names).count == names.count)
            for i in stride(from: 0, to: count, by: 97) {
                #expect(names.contains(String(format: "entry-%05d", i)))
                #expect(Posix.stat(f.path(String(format: "entry-%05d", i))).1.st_mode & S_IFMT == S_IFDIR)
            }
            #expect(names.contains("file.txt"))
            // A second listing (cached) is the same.
            #expect(Set(Posix.listDirectory(f.mountpoint).1) == Set(names))
        }
    }

    @Test func readdirOffsetsSurviveChangesDuringTheWalk() throws {
        try MountedRoset.with { f in
            // The folder and its entries are made behind the mount's back (a folder this mount
            // made itself would start with a cached empty listing, valid for cache_ttl).
            let dirId = try f.api.createFolder(name: "dir", parentId: try f.rootId, metadata: nil).id
            let initial = (0..<400).map { String(format: "item-%04d-with-a-longer-name", $0) }
            for name in initial { _ = try f.api.createFolder(name: name, parentId: dirId, metadata: nil) }

            let fd = open(f.path("dir"), O_RDONLY | O_DIRECTORY)
            #expect(fd >= 0)
            defer { close(fd) }
            var seen: [String] = []
            var (rc, batch) = Posix.getdents(fd)
            #expect(rc == .ok)
            seen += batch
            #expect(!batch.isEmpty && batch.count < initial.count)

            // Change the folder in the middle of the walk: remove some entries already returned
            // and some not yet returned, add new ones.
            let seenItems = seen.filter { $0.hasPrefix("item-") }
            let removedSeen = Array(seenItems.prefix(3))
            let removedUnseen = [initial[200], initial[300], initial[399]]
            for name in removedSeen + removedUnseen { #expect(Posix.rmdir(f.path("dir/" + name)) == .ok) }
            for i in 0..<20 { #expect(Posix.mkdir(f.path("dir/" + String(format: "new-%02d", i))) == .ok) }

            var calls = 0
            repeat {
                (rc, batch) = Posix.getdents(fd)
                #expect(rc == .ok)
                seen += batch
                calls += 1
            } while !batch.isEmpty && calls < 10_000
            #expect(calls > 2)

            // Every surviving entry exactly once; nothing repeated; `.` and `..` once.
            var counts: [String: Int] = [:]
            for name in seen { counts[name, default: 0] += 1 }
            #expect(counts.values.allSatisfy { $0 == 1 }, "repeated: \(counts.filter { $0.value > 1 }.keys.sorted())")
            let surviving = Set(initial).subtracting(removedSeen + removedUnseen)
            let missing = surviving.subtracting(seen)
            #expect(missing.isEmpty, "skipped: \(missing.sorted())")
            #expect(counts["."] == 1 && counts[".."] == 1)
            // A fresh walk shows the folder as it is now.
            let now = Set(Posix.listDirectory(f.path("dir")).1)
            #expect(now == surviving.union((0..<20).map { String(format: "new-%02d", $0) }).union([".", ".."]))
        }
    }

    @Test func hardLinksAreRefusedAndMknodMakesRegularFiles() throws {
        try MountedRoset.with { f in
            #expect(Posix.write(f.path("a"), [7]) == .ok)
            #expect(Posix.link(f.path("a"), f.path("b")) == .failed(EPERM))
            #expect(!Posix.exists(f.path("b")))
            #expect(Posix.mknodRegular(f.path("plain")) == .ok)
            let (rc, st) = Posix.stat(f.path("plain"))
            #expect(rc == .ok && st.st_mode & S_IFMT == S_IFREG && st.st_size == 0)
            #expect(f.eventually { (try? f.remoteContent("plain")) == [] })
        }
    }

    @Test func symlinkTargetSurvivesRemount() throws {
        try MountedRoset.with { f in
            let target = "some/where/../else with space"
            #expect(Posix.symlink(target, f.path("link")) == .ok)
            #expect(Posix.readlink(f.path("link")) == target)
            let (rc, st) = Posix.lstat(f.path("link"))
            #expect(rc == .ok && st.st_mode & S_IFMT == S_IFLNK)
            #expect(st.st_size == target.utf8.count)
            #expect(Posix.symlink("x", f.path("link")) == .failed(EEXIST))
            #expect(f.eventually { f.remoteNodeIfAny("link")?.size == 0 })
            #expect(f.eventually { f.spoolEntryFiles().isEmpty })
            f.unmount()
            try f.mountAgain()
            #expect(Posix.readlink(f.path("link")) == target)
            #expect(Posix.lstat(f.path("link")).1.st_mode & S_IFMT == S_IFLNK)
            // readlink of a regular file is EINVAL.
            #expect(Posix.write(f.path("reg"), [1]) == .ok)
            #expect(Posix.readlink(f.path("reg")) == nil)
        }
    }

    @Test func statfsNumbersAreBelievable() throws {
        try MountedRoset.with { f in
            let (rc, v) = Posix.statvfs(f.mountpoint)
            #expect(rc == .ok)
            #expect(v.f_bsize == 4096)
            #expect(v.f_blocks > 0 && v.f_bavail > 0 && v.f_bfree > 0)
            #expect(v.f_files > 0 && v.f_ffree > 0)
            #expect(v.f_namemax == 255)
            let df = Process()
            df.executableURL = URL(fileURLWithPath: "/bin/df")
            df.arguments = ["-P", f.mountpoint]
            let out = Pipe()
            df.standardOutput = out
            try df.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            df.waitUntilExit()
            #expect(df.terminationStatus == 0)
            let fields = text.split(separator: "\n").last?.split(separator: " ") ?? []
            #expect(fields.count >= 4 && (Int(fields[1]) ?? 0) > 0, "df printed: \(text)")
        }
    }

    @Test func namesTooLongGiveENAMETOOLONG() throws {
        try MountedRoset.with { f in
            let long = String(repeating: "n", count: 256)
            let max = String(repeating: "m", count: 255)
            #expect(Posix.write(f.path(long), [1]) == .failed(ENAMETOOLONG))
            #expect(Posix.mkdir(f.path(long)) == .failed(ENAMETOOLONG))
            #expect(Posix.stat(f.path(long)).0 == .failed(ENAMETOOLONG))
            #expect(Posix.write(f.path(max), [1]) == .ok)
            #expect(Posix.rename(f.path(max), f.path(long)) == .failed(ENAMETOOLONG))
            #expect(Posix.listDirectory(f.mountpoint).1.contains(max))
            #expect(f.eventually { (try? f.remoteContent(max)) == [1] })
        }
    }

    @Test func serverNameWithSlashIsSkipped() throws {
        try MountedRoset.with { f in
            let root = try f.rootId
            // The API refuses such a name; another writer of the database may not.
            let refused = (try? f.api.createFolder(name: "a/b", parentId: root, metadata: nil)) == nil
            #expect(refused)
            let odd = try f.api.createFolder(name: "a_b", parentId: root, metadata: nil)
            _ = try f.api.createFolder(name: "fine", parentId: root, metadata: nil)
            guard f.serverSQL("UPDATE nodes SET name = 'a/b' WHERE id = '\(odd.id)'") else {
                print("note: cannot rename a node behind the server (sqlite3 or the database missing); part skipped")
                return
            }
            #expect(try f.api.node(id: odd.id).name == "a/b")
            let (rc, names) = Posix.listDirectory(f.mountpoint)
            #expect(rc == .ok)
            #expect(Set(names) == [".", "..", "fine"])
            #expect(Posix.stat(f.path("fine")).0 == .ok)
            #expect(f.daemonLog.contains("not usable"))
        }
    }

    @Test func undecodableAnswersGiveEIOAndNoCrash() throws {
        try MountedRoset.with(options: ["cache_ttl=0"]) { f in
            #expect(Posix.mkdir(f.path("before")) == .ok)
            try f.server.setFaults(#"{"malformedRate":{"control":1}}"#)
            #expect(Posix.stat(f.path("unknown-name")).0 == .failed(EIO))
            #expect(Posix.mkdir(f.path("new-folder")) == .failed(EIO))
            #expect(Posix.listDirectory(f.path("before")).0 == .failed(EIO))
            try f.server.clearFaults()
            #expect(f.daemonIsAlive)
            #expect(Posix.stat(f.path("before")).0 == .ok)
            #expect(Posix.mkdir(f.path("after")) == .ok)
            #expect(f.daemonLog.contains("does not decode"))
        }
    }
}
