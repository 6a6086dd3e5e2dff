// setattr through a real mount: truncate, utimensat, chmod/chown/chgrp kept in node metadata
// (shown after a remount), the uid=/gid=/umask=/file_mode=/dir_mode= defaults, and
// default_permissions enforced by the kernel for another user.
import Foundation
import RosetClient
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized, .timeLimit(.minutes(10)))
struct FSAttributeTests {
    @Test func truncateSmallerAndLarger() throws {
        try MountedRoset.with { f in
            let bytes = PatternBytes.make(count: 10_000, seed: 4)
            #expect(Posix.write(f.path("t"), bytes) == .ok)
            #expect(Posix.truncate(f.path("t"), 4_000) == .ok)
            #expect(Posix.stat(f.path("t")).1.st_size == 4_000)
            #expect(Posix.read(f.path("t")).1 == Array(bytes[0..<4_000]))
            #expect(Posix.truncate(f.path("t"), 12_000) == .ok)
            let expected = Array(bytes[0..<4_000]) + [UInt8](repeating: 0, count: 8_000)
            #expect(Posix.read(f.path("t")).1 == expected)
            #expect(f.eventually { (try? f.remoteContent("t")) == expected })
            #expect(f.eventually { f.spoolEntryFiles().isEmpty })
            // An uploaded file: its content is brought back, then cut.
            #expect(Posix.truncate(f.path("t"), 100) == .ok)
            #expect(Posix.read(f.path("t")).1 == Array(bytes[0..<100]))
            #expect(f.eventually { (try? f.remoteContent("t")) == Array(bytes[0..<100]) })
            #expect(Posix.truncate(f.path("t"), -1) == .failed(EINVAL))
            #expect(Posix.mkdir(f.path("d")) == .ok)
            #expect(Posix.truncate(f.path("d"), 0) == .failed(EISDIR))
        }
    }

    @Test func timesAreKeptInNodeMetadata() throws {
        try MountedRoset.with { f in
            #expect(Posix.write(f.path("uploaded"), [1, 2]) == .ok)
            #expect(f.eventually { (try? f.remoteContent("uploaded")) == [1, 2] })
            #expect(Posix.utimens(f.path("uploaded"), atime: (1_500_000_000, 250_000_000), mtime: (1_400_000_000, 500_000_000)) == .ok)
            // Pending (not uploaded yet): set right after the write.
            #expect(Posix.write(f.path("pending"), [3]) == .ok)
            #expect(Posix.utimens(f.path("pending"), atime: (1_300_000_000, 0), mtime: (1_200_000_000, 0)) == .ok)
            #expect(Posix.mkdir(f.path("dir")) == .ok)
            #expect(Posix.utimens(f.path("dir"), atime: (1_100_000_000, 0), mtime: (1_000_000_000, 0)) == .ok)

            func check(_ when: String) {
                let u = Posix.stat(f.path("uploaded")).1
                #expect(u.st_mtim.tv_sec == 1_400_000_000 && u.st_mtim.tv_nsec == 500_000_000, "\(when)")
                #expect(u.st_atim.tv_sec == 1_500_000_000 && u.st_atim.tv_nsec == 250_000_000, "\(when)")
                let p = Posix.stat(f.path("pending")).1
                #expect(p.st_mtim.tv_sec == 1_200_000_000 && p.st_atim.tv_sec == 1_300_000_000, "\(when)")
                let d = Posix.stat(f.path("dir")).1
                #expect(d.st_mtim.tv_sec == 1_000_000_000 && d.st_atim.tv_sec == 1_100_000_000, "\(when)")
            }
            check("before the remount")
            #expect(f.eventually { (try? f.remoteContent("pending")) == [3] && f.spoolEntryFiles().isEmpty })
            #expect(f.remoteMetadataIfAny("uploaded", "posix.mtime") != nil)
            #expect(f.remoteMetadataIfAny("pending", "posix.mtime") != nil)
            #expect(f.remoteMetadataIfAny("dir", "posix.atime") != nil)
            f.unmount()
            try f.mountAgain()
            check("after the remount")
        }
    }

    @Test func modeAndOwnershipAreKeptInNodeMetadata() throws {
        try MountedRoset.with { f in
            #expect(Posix.write(f.path("file"), [1]) == .ok)
            #expect(Posix.mkdir(f.path("dir"), 0o700) == .ok)
            #expect(Posix.chmod(f.path("file"), 0o640) == .ok)
            #expect(Posix.chown(f.path("file"), 1234, 5678) == .ok)
            #expect(Posix.chown(f.path("dir"), uid_t.max, 4321) == .ok) // chgrp only
            #expect(Posix.chmod(f.path("dir"), 0o751) == .ok)

            func check(_ when: String) {
                let s = Posix.stat(f.path("file")).1
                #expect(s.st_mode == S_IFREG | 0o640, "\(when)")
                #expect(s.st_uid == 1234 && s.st_gid == 5678, "\(when)")
                let d = Posix.stat(f.path("dir")).1
                #expect(d.st_mode == S_IFDIR | 0o751, "\(when)")
                #expect(d.st_uid == 0 && d.st_gid == 4321, "\(when)")
            }
            check("at once")
            #expect(f.eventually { f.spoolEntryFiles().isEmpty && (try? f.remoteContent("file")) == [1] })
            #expect(f.remoteMetadataIfAny("file", "posix.mode") == .number(0o640))
            #expect(f.remoteMetadataIfAny("file", "posix.uid") == .number(1234))
            #expect(f.remoteMetadataIfAny("dir", "posix.gid") == .number(4321))
            f.unmount()
            try f.mountAgain()
            check("after the remount")
        }
    }

    @Test func ownershipAndModeDefaultsComeFromOptions() throws {
        try MountedRoset.with(options: ["uid=1234", "gid=2345", "umask=027"]) { f in
            let root = try f.rootId
            _ = try f.api.createFolder(name: "remote-dir", parentId: root, metadata: nil)
            try f.uploadRemote(name: "remote-file", bytes: [1, 2, 3])
            let d = Posix.stat(f.path("remote-dir")).1
            #expect(d.st_mode == S_IFDIR | 0o750)
            #expect(d.st_uid == 1234 && d.st_gid == 2345)
            let file = Posix.stat(f.path("remote-file")).1
            #expect(file.st_mode == S_IFREG | 0o640)
            #expect(file.st_uid == 1234 && file.st_gid == 2345)
            let root0 = Posix.stat(f.mountpoint).1
            #expect(root0.st_uid == 1234 && root0.st_gid == 2345)

            f.unmount()
            try f.mountAgain(options: ["file_mode=0600", "dir_mode=0711", "cache_ttl=1"])
            #expect(Posix.stat(f.path("remote-dir")).1.st_mode == S_IFDIR | 0o711)
            #expect(Posix.stat(f.path("remote-file")).1.st_mode == S_IFREG | 0o600)
            #expect(Posix.stat(f.path("remote-file")).1.st_uid == 0)
        }
    }

    @Test func defaultPermissionsMakeTheKernelEnforceModes() throws {
        try MountedRoset.with(options: ["allow_other", "default_permissions"]) { f in
            let opts = Posix.mountOptions(MountProcess_resolved(f.mountpoint))
            #expect(opts.contains("default_permissions"), "\(opts)")
            #expect(opts.contains("allow_other"), "\(opts)")
            // The scratch folder must be traversable by `nobody`.
            chmod(f.scratch.path, 0o755)
            #expect(Posix.write(f.path("secret"), Array("s".utf8)) == .ok)
            #expect(Posix.chmod(f.path("secret"), 0o600) == .ok)
            #expect(Posix.write(f.path("public"), Array("p".utf8)) == .ok)
            #expect(Posix.chmod(f.path("public"), 0o644) == .ok)
            let nobody: UInt32 = 65534
            let (denied, err) = Posix.runAs(uid: nobody, gid: nobody, "cat '\(f.path("secret"))'")
            #expect(denied != 0)
            #expect(err.contains("Permission denied"), "\(err)")
            #expect(Posix.runAs(uid: nobody, gid: nobody, "cat '\(f.path("public"))'").0 == 0)
            let (writeDenied, werr) = Posix.runAs(uid: nobody, gid: nobody, "echo x >> '\(f.path("public"))'")
            #expect(writeDenied != 0 && werr.contains("Permission denied"), "\(werr)")
            let (mkdirDenied, _) = Posix.runAs(uid: nobody, gid: nobody, "mkdir '\(f.path("nope"))'")
            #expect(mkdirDenied != 0)
            #expect(Posix.chmod(f.path("secret"), 0o604) == .ok)
            #expect(Posix.runAs(uid: nobody, gid: nobody, "cat '\(f.path("secret"))'").0 == 0)
            #expect(Posix.read(f.path("public")).1 == Array("p".utf8))
        }
    }
}

/// realpath(3), as /proc/mounts shows mount points.
func MountProcess_resolved(_ path: String) -> String {
    guard let r = realpath(path, nil) else { return path }
    defer { free(r) }
    return String(cString: r)
}
