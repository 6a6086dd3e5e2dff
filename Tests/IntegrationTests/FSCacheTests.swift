// Caching through a real mount: with a long cache_ttl this mount's own changes are visible at
// once (no stale listing or attributes); with cache_ttl=1 changes made behind the mount's back
// (through the API) show up after the TTL, negative entries included; a reopened file whose
// object changed is read afresh (the page cache is dropped); direct_io leaves the page cache out.
import Foundation
import RosetClient
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized, .timeLimit(.minutes(10)))
struct FSCacheTests {
    @Test func ownChangesAreVisibleAtOnceWithALongTTL() throws {
        try MountedRoset.with(options: ["cache_ttl=3600"]) { f in
            func names(_ dir: String = "") -> Set<String> {
                Set(Posix.listDirectory(dir.isEmpty ? f.mountpoint : f.path(dir)).1).subtracting([".", ".."])
            }
            #expect(names().isEmpty)
            #expect(Posix.stat(f.path("a")).0 == .failed(ENOENT)) // negative entry cached now
            #expect(Posix.write(f.path("a"), [1, 2, 3]) == .ok)
            #expect(names() == ["a"])
            #expect(Posix.stat(f.path("a")).1.st_size == 3)
            #expect(Posix.write(f.path("a"), [1, 2, 3, 4, 5], flags: O_WRONLY | O_APPEND) == .ok)
            #expect(Posix.stat(f.path("a")).1.st_size == 8)
            #expect(Posix.read(f.path("a")).1 == [1, 2, 3, 1, 2, 3, 4, 5])

            #expect(Posix.mkdir(f.path("d")) == .ok)
            #expect(names() == ["a", "d"])
            #expect(names("d").isEmpty)
            #expect(Posix.rename(f.path("a"), f.path("d/b")) == .ok)
            #expect(names() == ["d"])
            #expect(names("d") == ["b"])
            #expect(Posix.stat(f.path("a")).0 == .failed(ENOENT))
            #expect(Posix.read(f.path("d/b")).1 == [1, 2, 3, 1, 2, 3, 4, 5])

            #expect(f.eventually { f.spoolEntryFiles().isEmpty }, "left in the spool: \(f.spoolEntryFiles())")
            #expect(Posix.chmod(f.path("d/b"), 0o600) == .ok)
            #expect(Posix.stat(f.path("d/b")).1.st_mode & 0o777 == 0o600)
            #expect(Posix.utimens(f.path("d/b"), atime: (1_000, 0), mtime: (2_000, 0)) == .ok)
            #expect(Posix.stat(f.path("d/b")).1.st_mtim.tv_sec == 2_000)
            #expect(Posix.truncate(f.path("d/b"), 2) == .ok)
            #expect(Posix.stat(f.path("d/b")).1.st_size == 2)
            #expect(Posix.read(f.path("d/b")).1 == [1, 2])
            #expect(Posix.setxattr(f.path("d/b"), "user.k", [7]) == .ok)
            #expect(Posix.getxattr(f.path("d/b"), "user.k").1 == [7])
            #expect(Posix.listxattr(f.path("d/b")).1 == ["user.k"])

            #expect(Posix.unlink(f.path("d/b")) == .ok)
            #expect(names("d").isEmpty)
            #expect(Posix.stat(f.path("d/b")).0 == .failed(ENOENT))
            #expect(Posix.rmdir(f.path("d")) == .ok)
            #expect(names().isEmpty)
            // Re-creating a name that was removed works at once too.
            #expect(Posix.mkdir(f.path("d")) == .ok)
            #expect(names() == ["d"])
        }
    }

    @Test func remoteChangesShowUpAfterTheTTL() throws {
        try MountedRoset.with(options: ["cache_ttl=1"]) { f in
            let root = try f.rootId
            func names() -> Set<String> { Set(Posix.listDirectory(f.mountpoint).1).subtracting([".", ".."]) }
            #expect(names().isEmpty)
            #expect(Posix.stat(f.path("later")).0 == .failed(ENOENT)) // a negative entry
            _ = try f.api.createFolder(name: "later", parentId: root, metadata: nil)
            #expect(f.eventually(timeout: 30) { Posix.stat(f.path("later")).0 == .ok })
            #expect(f.eventually(timeout: 30) { names() == ["later"] })

            let file = try f.uploadRemote(name: "file", bytes: Array("version one".utf8))
            #expect(f.eventually(timeout: 30) { Posix.read(f.path("file")).1 == Array("version one".utf8) })
            // Same size, other bytes: only the object's identity says it changed.
            try f.uploadRemote(name: "file", bytes: Array("VERSION TWO".utf8), replacing: file.id)
            #expect(f.eventually(timeout: 30) { Posix.read(f.path("file")).1 == Array("VERSION TWO".utf8) })
            // Longer.
            try f.uploadRemote(name: "file", bytes: Array("version three, longer".utf8), replacing: file.id)
            #expect(f.eventually(timeout: 30) { Posix.read(f.path("file")).1 == Array("version three, longer".utf8) })

            _ = try f.api.updateNode(id: file.id, parentId: nil, name: "renamed", metadata: ["posix.mode": .number(0o600)])
            #expect(f.eventually(timeout: 30) { names() == ["later", "renamed"] })
            #expect(f.eventually(timeout: 30) { Posix.stat(f.path("renamed")).1.st_mode & 0o777 == 0o600 })
            // The kernel's own entry for the old name may outlive the daemon's listing by up to a TTL.
            #expect(f.eventually(timeout: 30) { Posix.stat(f.path("file")).0 == .failed(ENOENT) })

            try f.api.deleteNode(id: file.id)
            #expect(f.eventually(timeout: 30) { Posix.stat(f.path("renamed")).0 == .failed(ENOENT) })
            #expect(f.eventually(timeout: 30) { names() == ["later"] })
        }
    }

    @Test func pageCacheIsKeptAcrossOpensOfAnUnchangedFile() throws {
        try MountedRoset.with(options: ["cache_ttl=1"]) { f in
            let bytes = PatternBytes.make(count: 1 << 20, seed: 20)
            let node = try f.uploadRemote(name: "cached", bytes: bytes)
            #expect(Posix.read(f.path("cached")).1 == bytes)
            // fincore opens the file again and counts its pages in the page cache: with
            // FOPEN_KEEP_CACHE they survive that open; without it the open would drop them.
            guard let resident = Self.residentBytes(f.path("cached")) else {
                print("note: fincore(1) not available; page-cache check skipped")
                return
            }
            #expect(resident == bytes.count, "resident after reopen: \(resident)")
            // Once the object changed (same size, new version), an open drops the old pages.
            try f.uploadRemote(name: "cached", bytes: PatternBytes.make(count: 1 << 20, seed: 21), replacing: node.id)
            #expect(f.eventually(timeout: 30) { Self.residentBytes(f.path("cached")) == 0 })
            #expect(Posix.read(f.path("cached")).1 == PatternBytes.make(count: 1 << 20, seed: 21))
        }
    }

    @Test func directIOReadsBypassThePageCache() throws {
        try MountedRoset.with(options: ["cache_ttl=1", "direct_io"]) { f in
            let bytes = PatternBytes.make(count: 3 << 20, seed: 22)
            try f.uploadRemote(name: "remote", bytes: bytes)
            #expect(Posix.read(f.path("remote")).1 == bytes)
            // Unaligned reads get exactly their bytes (they reach the daemon at the reader's size).
            let fd = open(f.path("remote"), O_RDONLY)
            #expect(fd >= 0)
            var chunk = [UInt8](repeating: 0, count: 70_001)
            for offset in [1, 131_071, 1_000_003, (3 << 20) - 70_001] {
                let n = pread(fd, &chunk, chunk.count, off_t(offset))
                #expect(n == chunk.count && Array(chunk) == Array(bytes[offset..<offset + chunk.count]), "at \(offset)")
            }
            close(fd)
            // Read your own writes through a direct handle too.
            let written = PatternBytes.make(count: 300_000, seed: 23)
            #expect(Posix.write(f.path("local"), written, flags: O_RDWR | O_CREAT | O_TRUNC) == .ok)
            #expect(Posix.read(f.path("local")).1 == written)
            guard let resident = Self.residentBytes(f.path("remote")) else {
                print("note: fincore(1) not available; page-cache check skipped")
                return
            }
            #expect(resident == 0, "resident with direct_io: \(resident)")
        }
    }

    /// mount.roset raises the kernel's read-ahead window from FUSE's 128 KiB to 4 MiB by default
    /// (read_ahead_kb=); a buffered sequential read through it still gets exactly the object's bytes.
    @Test func kernelReadAheadIsRaisedByDefault() throws {
        guard geteuid() == 0 else { print("note: not root; read_ahead_kb test skipped"); return }
        try MountedRoset.with(options: []) { f in
            var window: Int?
            for _ in 0..<100 where window != 4096 { window = KernelReadAheadProbe.kilobytes(of: f.mountpoint); usleep(50_000) }
            #expect(window == 4096)
            let bytes = PatternBytes.make(count: 9 << 20, seed: 31)
            try f.uploadRemote(name: "seq", bytes: bytes)
            #expect(Posix.read(f.path("seq")).1 == bytes)
        }
        try MountedRoset.with(options: ["read_ahead_kb=0"]) { f in
            usleep(200_000)
            #expect(KernelReadAheadProbe.kilobytes(of: f.mountpoint) == 128)
        }
    }

    /// Bytes of `path` in the page cache, from fincore(1).
    static func residentBytes(_ path: String) -> Int? {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/fincore") else { return nil }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/fincore")
        p.arguments = ["--bytes", "--noheadings", "--output", "RES", path]
        let out = Pipe()
        p.standardOutput = out
        guard (try? p.run()) != nil else { return nil }
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    @Test func reopenReadsTheNewContentAfterARemoteChange() throws {
        try MountedRoset.with(options: ["cache_ttl=1"]) { f in
            let one = PatternBytes.make(count: 200_000, seed: 6)
            let two = PatternBytes.make(count: 200_000, seed: 7)
            let node = try f.uploadRemote(name: "big", bytes: one)
            // Read twice with an unchanged object: both right (the second may come from the page cache).
            #expect(Posix.read(f.path("big")).1 == one)
            #expect(Posix.read(f.path("big")).1 == one)
            try f.uploadRemote(name: "big", bytes: two, replacing: node.id)
            #expect(f.eventually(timeout: 30) { Posix.read(f.path("big")).1 == two })
            #expect(Posix.read(f.path("big")).1 == two)
        }
    }
}
