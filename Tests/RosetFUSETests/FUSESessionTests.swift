// Real mounts through /dev/fuse: every request reaches the filesystem through real syscalls and
// every errno comes back to the caller.
import CFuse
import Foundation
import RosetFS
import RosetFUSE
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Linux values the Glibc module does not import.
let utimeNow = (1 << 30) - 1
let xattrCreate: Int32 = 1
let xattrReplace: Int32 = 2

/// Polls `condition` for up to 10 s: for effects the kernel delivers asynchronously (RELEASE).
func eventually(_ condition: () -> Bool) -> Bool {
    for _ in 0..<200 {
        if condition() { return true }
        usleep(50_000)
    }
    return condition()
}

func errnoOf(_ body: () -> Int32) -> Int32 {
    errno = 0
    let r = body()
    return r == 0 ? 0 : errno
}

func withMount(_ options: FUSEMountOptions = FUSEMountOptions(fsName: "roset:test"),
               _ body: (MountedFileSystem) throws -> Void) throws {
    let m = try MountedFileSystem(options: options)
    defer { m.close() }
    try body(m)
}

@Suite(.serialized)
struct FUSESessionTests {
    @Test func mountShowsAsFuseRosetWithItsName() throws {
        try withMount { m in
            let entry = MountInfo.fsType(of: m.mountpoint)
            #expect(entry?.type == "fuse.roset")
            #expect(entry?.source == "roset:test")
        }
    }

    @Test func createWriteReadStatAndList() throws {
        try withMount { m in
            let payload = Data((0..<300_000).map { UInt8($0 % 251) })
            #expect(FileManager.default.createFile(atPath: m.path("a.bin"), contents: payload))
            #expect(m.fs.count("create") == 1)
            #expect(m.fs.count("write") >= 1)
            #expect(eventually { m.fs.count("release") >= 1 })   // the kernel sends RELEASE after close returns
            let back = try Data(contentsOf: URL(fileURLWithPath: m.path("a.bin")))
            #expect(back == payload)
            #expect(m.fs.count("read") >= 1)
            var st = stat()
            #expect(stat(m.path("a.bin"), &st) == 0)
            #expect(st.st_size == payload.count)
            #expect(st.st_mode & S_IFMT == S_IFREG)

            for i in 0..<600 { _ = FileManager.default.createFile(atPath: m.path(String(format: "f%04d", i)), contents: nil) }
            let names = try FileManager.default.contentsOfDirectory(atPath: m.mountpoint)
            #expect(names.count == 601)
            #expect(Set(names).contains("f0599"))
            #expect(m.fs.count("readdirplus") + m.fs.count("readdir") >= 2)   // 601 entries need several buffers

            // . and .. are listed by readdir(3)
            guard let dir = opendir(m.mountpoint) else { Issue.record("opendir failed"); return }
            var dots = Set<String>()
            while let e = readdir(dir) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name == "." || name == ".." { dots.insert(name) }
            }
            closedir(dir)
            #expect(dots == [".", ".."])
        }
    }

    @Test func errnosComeBack() throws {
        try withMount { m in
            #expect(errnoOf { mkdir(m.path("d"), 0o755) } == 0)
            #expect(errnoOf { mkdir(m.path("d"), 0o755) } == EEXIST)
            _ = FileManager.default.createFile(atPath: m.path("d/inner"), contents: nil)
            #expect(errnoOf { rmdir(m.path("d")) } == ENOTEMPTY)
            #expect(errnoOf { unlink(m.path("d")) } == EISDIR)
            var st = stat()
            #expect(errnoOf { stat(m.path("missing"), &st) } == ENOENT)
            let long = String(repeating: "n", count: 256)
            #expect(errnoOf { stat(m.path(long), &st) } == ENAMETOOLONG)
            #expect(errnoOf { link(m.path("d/inner"), m.path("hard")) } == EPERM)
            #expect(errnoOf { mkfifo(m.path("fifo"), 0o644) } == EPERM)
            #expect(errnoOf { unlink(m.path("d/inner")) } == 0)
            #expect(eventually { m.fs.count("forget") >= 1 })   // the unlinked inode is evicted and forgotten
            #expect(errnoOf { rmdir(m.path("d")) } == 0)
            #expect(m.fs.count("rmdir") == 2)
            #expect(m.fs.count("mkdir") >= 1)
        }
    }

    @Test func openErrorsAreMapped() throws {
        try withMount { m in
            _ = FileManager.default.createFile(atPath: m.path(InMemoryFileSystem.failingWithUnexpectedError), contents: nil)
            _ = FileManager.default.createFile(atPath: m.path(InMemoryFileSystem.failingWithEACCES), contents: nil)
            errno = 0
            let fd1 = open(m.path(InMemoryFileSystem.failingWithUnexpectedError), O_RDONLY)
            #expect(fd1 == -1 && errno == EIO)
            errno = 0
            let fd2 = open(m.path(InMemoryFileSystem.failingWithEACCES), O_RDONLY)
            #expect(fd2 == -1 && errno == EACCES)
        }
    }

    @Test func renameWithFlags() throws {
        try withMount { m in
            _ = FileManager.default.createFile(atPath: m.path("a"), contents: Data("A".utf8))
            _ = FileManager.default.createFile(atPath: m.path("b"), contents: Data("B".utf8))
            // The VFS refuses NOREPLACE over an existing name itself; to a new name the flag reaches the FS.
            #expect(errnoOf { roset_renameat2(AT_FDCWD, m.path("a"), AT_FDCWD, m.path("b"), renameNoReplace) } == EEXIST)
            #expect(errnoOf { roset_renameat2(AT_FDCWD, m.path("a"), AT_FDCWD, m.path("c"), renameNoReplace) } == 0)
            #expect(m.fs.lastRenameFlags == renameNoReplace)
            #expect(errnoOf { rename(m.path("c"), m.path("a")) } == 0)
            #expect(errnoOf { roset_renameat2(AT_FDCWD, m.path("a"), AT_FDCWD, m.path("b"), renameExchange) } == EINVAL)
            #expect(m.fs.lastRenameFlags == renameExchange)
            #expect(errnoOf { rename(m.path("a"), m.path("b")) } == 0)
            let bContent = try String(contentsOfFile: m.path("b"), encoding: .utf8)
            #expect(bContent == "A")
            #expect(!FileManager.default.fileExists(atPath: m.path("a")))
            #expect(errnoOf { mkdir(m.path("full"), 0o755) } == 0)
            _ = FileManager.default.createFile(atPath: m.path("full/x"), contents: nil)
            #expect(errnoOf { mkdir(m.path("empty"), 0o755) } == 0)
            #expect(errnoOf { rename(m.path("empty"), m.path("full")) } == ENOTEMPTY)
        }
    }

    @Test func symlinkAndReadlink() throws {
        try withMount { m in
            #expect(errnoOf { symlink("some/target", m.path("ln")) } == 0)
            var buf = [CChar](repeating: 0, count: 256)
            let n = readlink(m.path("ln"), &buf, buf.count)
            #expect(n == 11)
            #expect(String(decoding: buf[0..<max(n, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self) == "some/target")
            #expect(m.fs.count("readlink") >= 1)
        }
    }

    @Test func setattrTruncateChmodChownTimes() throws {
        try withMount { m in
            _ = FileManager.default.createFile(atPath: m.path("f"), contents: Data(repeating: 7, count: 1000))
            #expect(errnoOf { truncate(m.path("f"), 10) } == 0)
            #expect(m.fs.lastSetattr?.size == 10)
            #expect(errnoOf { truncate(m.path("f"), 5000) } == 0)
            var st = stat()
            _ = stat(m.path("f"), &st)
            #expect(st.st_size == 5000)
            #expect(errnoOf { chmod(m.path("f"), 0o600) } == 0)
            #expect(m.fs.lastSetattr?.mode.map { $0 & 0o7777 } == 0o600)
            _ = stat(m.path("f"), &st)
            #expect(st.st_mode & 0o7777 == 0o600)
            #expect(errnoOf { chown(m.path("f"), 1234, 5678) } == 0)
            #expect(m.fs.lastSetattr?.uid == 1234 && m.fs.lastSetattr?.gid == 5678)
            var times = [timespec(tv_sec: 1_600_000_000, tv_nsec: 5), timespec(tv_sec: 1_650_000_000, tv_nsec: 7)]
            #expect(errnoOf { utimensat(AT_FDCWD, m.path("f"), &times, 0) } == 0)
            #expect(m.fs.lastSetattr?.accessTime == .set(seconds: 1_600_000_000, nanoseconds: 5))
            #expect(m.fs.lastSetattr?.modificationTime == .set(seconds: 1_650_000_000, nanoseconds: 7))
            _ = stat(m.path("f"), &st)
            #expect(st.st_mtim.tv_sec == 1_650_000_000)
            var now = [timespec(tv_sec: 0, tv_nsec: utimeNow), timespec(tv_sec: 0, tv_nsec: utimeNow)]
            #expect(errnoOf { utimensat(AT_FDCWD, m.path("f"), &now, 0) } == 0)
            #expect(m.fs.lastSetattr?.modificationTime == .now)
        }
    }

    @Test func extendedAttributes() throws {
        try withMount { m in
            _ = FileManager.default.createFile(atPath: m.path("x"), contents: nil)
            let value: [UInt8] = [0xff, 0x00, 0x41, 0x80]
            #expect(errnoOf { Int32(setxattr(m.path("x"), "user.bin", value, value.count, 0)) } == 0)
            #expect(errnoOf { Int32(setxattr(m.path("x"), "user.bin", value, value.count, xattrCreate)) } == EEXIST)
            #expect(errnoOf { Int32(setxattr(m.path("x"), "user.none", value, value.count, xattrReplace)) } == ENODATA)
            #expect(getxattr(m.path("x"), "user.bin", nil, 0) == 4)       // size-0 query returns the length
            var small = [UInt8](repeating: 0, count: 2)
            errno = 0
            #expect(getxattr(m.path("x"), "user.bin", &small, 2) == -1 && errno == ERANGE)
            var buf = [UInt8](repeating: 0, count: 16)
            let n = getxattr(m.path("x"), "user.bin", &buf, 16)
            #expect(n == 4 && Array(buf[0..<4]) == value)
            errno = 0
            #expect(getxattr(m.path("x"), "user.absent", &buf, 16) == -1 && errno == ENODATA)
            _ = setxattr(m.path("x"), "user.two", [1], 1, 0)
            let listSize = listxattr(m.path("x"), nil, 0)
            #expect(listSize == "user.bin\0user.two\0".utf8.count)
            var list = [CChar](repeating: 0, count: 64)
            let ln = listxattr(m.path("x"), &list, list.count)
            let names = String(decoding: list[0..<max(ln, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                .split(separator: "\0").map(String.init)
            #expect(names == ["user.bin", "user.two"])
            var tiny = [CChar](repeating: 0, count: 3)
            errno = 0
            #expect(listxattr(m.path("x"), &tiny, 3) == -1 && errno == ERANGE)
            #expect(errnoOf { removexattr(m.path("x"), "user.bin") } == 0)
            errno = 0
            #expect(getxattr(m.path("x"), "user.bin", nil, 0) == -1 && errno == ENODATA)
            #expect(errnoOf { Int32(setxattr(m.path("x"), "trusted.t", value, value.count, 0)) } == ENOTSUP)
            #expect(m.fs.count("removexattr") == 1)
        }
    }

    @Test func statfsAndFsyncReachTheFileSystem() throws {
        try withMount { m in
            var v = statvfs()
            #expect(statvfs(m.mountpoint, &v) == 0)
            #expect(UInt64(v.f_blocks) == m.fs.statistics.totalBlocks)
            #expect(UInt64(v.f_bsize) == m.fs.statistics.blockSize)
            #expect(UInt64(v.f_namemax) == 255)
            let fd = open(m.path("s"), O_CREAT | O_WRONLY, 0o644)
            #expect(fd >= 0)
            #expect(write(fd, "abc", 3) == 3)
            #expect(fsync(fd) == 0)
            #expect(close(fd) == 0)
            #expect(m.fs.count("fsync") == 1)
            #expect(m.fs.count("flush") >= 1)
            #expect(access(m.path("s"), R_OK) == 0)
            #expect(m.fs.count("access") >= 1)
        }
    }

    @Test func blockSizeOptionShowsInStat() throws {
        try withMount(FUSEMountOptions(fsName: "roset:test", blockSize: 1 << 20)) { m in
            _ = FileManager.default.createFile(atPath: m.path("b"), contents: Data([1]))
            var st = stat()
            #expect(stat(m.path("b"), &st) == 0)
            #expect(st.st_blksize == 1 << 20)
        }
    }

    @Test func readOnlyAndVFSFlagsReachTheKernel() throws {
        let options = FUSEMountOptions(fsName: "roset:test", readOnly: true, kernelFlags: [.noexec, .noatime])
        try withMount(options) { m in
            #expect(errnoOf { mkdir(m.path("d"), 0o755) } == EROFS)
            #expect(m.fs.count("mkdir") == 0)
            var v = statvfs()
            #expect(statvfs(m.mountpoint, &v) == 0)
            #expect(v.f_flag & UInt(ST_RDONLY) != 0)
            #expect(v.f_flag & UInt(8) /* ST_NOEXEC */ != 0)
            #expect(v.f_flag & UInt(1024) /* ST_NOATIME */ != 0)
        }
    }

    @Test func fuseAndKernelOptionsAreAccepted() throws {
        let options = FUSEMountOptions(fsName: "roset:with,comma", allowOther: true, defaultPermissions: true,
                                       kernelFlags: [.suid, .dev, .exec, .relatime, .sync, .dirsync],
                                       maxRead: 131072, maxThreads: 8, maxIdleThreads: 2)
        try withMount(options) { m in
            let text = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
            let line = text.split(separator: "\n").first { $0.contains(" \(m.mountpoint) ") }.map(String.init) ?? ""
            #expect(line.contains("allow_other"))
            #expect(line.contains("default_permissions"))
            #expect(line.contains("max_read=131072"))
            #expect(line.contains("roset:with,comma"))
            #expect(!line.contains("nosuid") && !line.contains("nodev"))
            var v = statvfs()
            let rc = statvfs(m.mountpoint, &v)
            #expect(rc == 0, "statvfs: \(String(cString: strerror(errno)))")
            #expect(v.f_flag & UInt(16) != 0)   // ST_SYNCHRONOUS
        }
    }

    @Test func optionStringEscapesAndOmitsKernelDefaults() {
        let o = FUSEMountOptions(fsName: "roset:a,b", readOnly: true, allowRoot: true, kernelFlags: [.relatime, .atime, .nosuid])
        let s = o.fuseOptionStringForTesting
        // max_read is always given: its default (992 KiB) is not the kernel's.
        #expect(s == "fsname=roset:a\\,b,subtype=roset,ro,allow_root,nosuid,max_read=1015808")
    }

    @Test func stopEndsTheLoopShutsDownOnceAndUnmounts() throws {
        let m = try MountedFileSystem()
        defer { m.close() }
        #expect(MountInfo.isMountPoint(m.mountpoint))
        m.session.stop(grace: 3)
        #expect(m.waitForLoop())
        #expect(m.result == 0)
        #expect(!MountInfo.isMountPoint(m.mountpoint))
        #expect(m.fs.shutdownGraces == [3])
    }

    @Test func externalUnmountEndsTheLoopWithTheConfiguredGrace() throws {
        let m = try MountedFileSystem()
        defer { m.close() }
        #expect(umount2(m.mountpoint, 0) == 0)
        #expect(m.waitForLoop())
        #expect(m.fs.shutdownGraces == [7])
        #expect(!MountInfo.isMountPoint(m.mountpoint))
    }

    @Test func mountRefusesBadMountpoints() throws {
        let dir = try TemporaryDirectoryForErrors()
        defer { dir.remove() }
        let fs = InMemoryFileSystem()
        let missing = FUSESession(fileSystem: fs, mountpoint: dir.path + "/nope", options: FUSEMountOptions(fsName: "roset:x"))
        #expect(throws: FUSEMountError.mountpointMissing(dir.path + "/nope")) { try missing.mount() }
        let file = dir.path + "/file"
        _ = FileManager.default.createFile(atPath: file, contents: nil)
        let notFolder = FUSESession(fileSystem: fs, mountpoint: file, options: FUSEMountOptions(fsName: "roset:x"))
        #expect(throws: FUSEMountError.mountpointNotAFolder(file)) { try notFolder.mount() }

        let m = try MountedFileSystem()
        defer { m.close() }
        let again = FUSESession(fileSystem: fs, mountpoint: m.mountpoint, options: FUSEMountOptions(fsName: "roset:x"))
        do {
            try again.mount()
            Issue.record("mounting twice succeeded")
        } catch let e as FUSEMountError {
            #expect(e == .alreadyMounted(m.mountpoint))
            #expect(e.description.contains("already mounted"))
        }
    }
}

struct TemporaryDirectoryForErrors {
    let path: String
    init() throws {
        path = NSTemporaryDirectory() + "roset-fuse-err-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
}
