// POSIX behaviour beyond permissions, through a real mount: special files (FIFO, Unix socket,
// device node) kept as metadata-only nodes that survive a remount, a file unlinked while open
// that stays usable through its descriptor, folder times and link counts
// that follow the folder's entries, and a truncate beyond what
// the spool's file system can hold answering EFBIG (as the same call on that disk does), logged.
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized, .timeLimit(.minutes(10)))
struct FSPosixTests {
    @Test func fifoSocketAndDeviceNodesAreMetadataOnlyNodes() throws {
        try MountedRoset.with { f in
            #expect(mkfifo(f.path("fifo"), 0o640) == 0, "mkfifo: \(errno)")
            #expect(mknod(f.path("tty"), S_IFCHR | 0o600, deviceNumber(4, 64)) == 0, "mknod c: \(errno)")
            #expect(mknod(f.path("disk"), S_IFBLK | 0o600, deviceNumber(8, 1)) == 0, "mknod b: \(errno)")
            let bind = try CapturedRun.run("/usr/bin/python3", ["-I", "-c",
                "import socket; s = socket.socket(socket.AF_UNIX); s.bind('\(f.path("sock"))'); s.close()"])
            #expect(bind.status == 0, "\(bind.stderr)")

            // A FIFO on the mount works as one: the kernel serves it, the daemon only names it.
            let fd = open(f.path("fifo"), O_RDWR)
            #expect(fd >= 0)
            if fd >= 0 {
                #expect(Glibc.write(fd, "hi", 2) == 2)
                var buffer = [UInt8](repeating: 0, count: 2)
                #expect(Glibc.read(fd, &buffer, 2) == 2 && buffer == Array("hi".utf8))
                close(fd)
            }

            func check(_ when: String) {
                let fifo = Posix.stat(f.path("fifo")).1
                #expect(fifo.st_mode == S_IFIFO | 0o640, "\(when): \(String(fifo.st_mode, radix: 8))")
                let tty = Posix.stat(f.path("tty")).1
                #expect(tty.st_mode & S_IFMT == S_IFCHR && tty.st_rdev == deviceNumber(4, 64), "\(when)")
                let disk = Posix.stat(f.path("disk")).1
                #expect(disk.st_mode & S_IFMT == S_IFBLK && disk.st_rdev == deviceNumber(8, 1), "\(when)")
                let sock = Posix.lstat(f.path("sock")).1
                #expect(sock.st_mode & S_IFMT == S_IFSOCK, "\(when)")
                #expect(Set(Posix.listDirectory(f.mountpoint).1).isSuperset(of: ["fifo", "tty", "disk", "sock"]), "\(when)")
            }
            check("before the remount")
            #expect(f.eventually { f.spoolEntryFiles().isEmpty })
            #expect(try f.remoteNode("fifo")?.metadata["posix.type"] == .string("fifo"))
            f.unmount()
            try f.mountAgain()
            check("after the remount")
            #expect(Posix.unlink(f.path("fifo")) == .ok)
            #expect(!Posix.exists(f.path("fifo")))
        }
    }

    /// Creating, removing, renaming or symlinking an entry moves the folder's mtime and ctime
    /// (here, and on the server: after a remount too); nlink is 2 + subfolders.
    @Test func folderTimesAndLinkCountFollowItsEntries() throws {
        try MountedRoset.with { f in
            #expect(Posix.mkdir(f.path("d")) == .ok)
            func times(_ path: String) -> (m: Double, c: Double) {
                let st = Posix.stat(path).1
                return (Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9,
                        Double(st.st_ctim.tv_sec) + Double(st.st_ctim.tv_nsec) / 1e9)
            }
            var last = times(f.path("d"))
            let steps: [(String, () -> Sys)] = [
                ("create", { Posix.write(f.path("d/a"), [1]) }),
                ("mkdir", { Posix.mkdir(f.path("d/sub")) }),
                ("symlink", { Posix.symlink("a", f.path("d/link")) }),
                ("rename", { Posix.rename(f.path("d/a"), f.path("d/b")) }),
                ("unlink", { Posix.unlink(f.path("d/link")) }),
                ("mkfifo", { mkfifo(f.path("d/fifo"), 0o644) == 0 ? .ok : .failed(errno) }),
            ]
            for (name, step) in steps {
                usleep(1_100_000)
                #expect(step() == .ok, "\(name)")
                let now = times(f.path("d"))
                #expect(now.m > last.m && now.c > last.c, "\(name): \(last) -> \(now)")
                last = now
            }
            #expect(Posix.stat(f.path("d")).1.st_nlink == 3)
            #expect(Posix.mkdir(f.path("d/sub2")) == .ok)
            #expect(Posix.stat(f.path("d")).1.st_nlink == 4)
            usleep(1_100_000)
            #expect(Posix.rmdir(f.path("d/sub2")) == .ok)
            #expect(Posix.stat(f.path("d")).1.st_nlink == 3)
            let afterRmdir = times(f.path("d"))
            #expect(afterRmdir.m > last.m)
            #expect(f.eventually { f.spoolEntryFiles().isEmpty })
            f.unmount()
            try f.mountAgain()
            // The server moved the folder's time too (it keeps whole seconds; the step before the
            // rmdir was 1.1 s earlier).
            #expect(times(f.path("d")).m > afterRmdir.m - 1.05)
            _ = Posix.listDirectory(f.path("d"))
            #expect(Posix.stat(f.path("d")).1.st_nlink == 3)
        }
    }

    /// chmod, chown and truncate of a file still waiting for its upload move its ctime, and the
    /// ctime does not go back once the upload completes.
    @Test func pendingFilesCtimeFollowsStatusChanges() throws {
        try MountedRoset.with(options: ["upload_delay_ms=3000"]) { f in
            func ctime() -> Double {
                let st = Posix.stat(f.path("p")).1
                return Double(st.st_ctim.tv_sec) + Double(st.st_ctim.tv_nsec) / 1e9
            }
            #expect(Posix.write(f.path("p"), [1, 2, 3]) == .ok)
            var last = ctime()
            let steps: [(String, () -> Sys)] = [
                ("chmod", { Posix.chmod(f.path("p"), 0o600) }),
                ("chown", { Posix.chown(f.path("p"), 0, 0) }),
                ("truncate", { Posix.truncate(f.path("p"), 1) }),
            ]
            for (name, step) in steps {
                usleep(1_100_000)
                #expect(step() == .ok, "\(name)")
                let now = ctime()
                #expect(now > last, "\(name): \(last) -> \(now)")
                last = now
            }
            #expect(f.eventually { f.spoolEntryFiles().isEmpty })
            f.unmount()
            try f.mountAgain()
            #expect(ctime() >= last - 0.001)
        }
    }

    /// A file unlinked while open stays usable through its descriptor (read, write, fstat with
    /// nlink 0, ftruncate) until the last close, and nothing of it is uploaded.
    @Test func unlinkedWhileOpenKeepsItsDataForItsDescriptors() throws {
        try MountedRoset.with { f in
            let fd = open(f.path("tmp"), O_RDWR | O_CREAT | O_EXCL, 0o600)
            #expect(fd >= 0)
            guard fd >= 0 else { return }
            #expect(pwrite(fd, "Hello", 5, 0) == 5)
            #expect(Posix.unlink(f.path("tmp")) == .ok)
            #expect(!Posix.exists(f.path("tmp")))
            var buffer = [UInt8](repeating: 0, count: 5)
            #expect(pread(fd, &buffer, 5, 0) == 5, "pread: \(errno)")
            #expect(buffer == Array("Hello".utf8))
            #expect(pwrite(fd, " world", 6, 5) == 6, "pwrite: \(errno)")
            var st = stat()
            #expect(fstat(fd, &st) == 0, "fstat: \(errno)")
            #expect(st.st_size == 11 && st.st_nlink == 0, "size \(st.st_size) nlink \(st.st_nlink)")
            #expect(ftruncate(fd, 4) == 0, "ftruncate: \(errno)")
            #expect(fstat(fd, &st) == 0 && st.st_size == 4)
            #expect(pread(fd, &buffer, 5, 0) == 4)
            #expect(close(fd) == 0)
            usleep(1_500_000)
            let remote = try f.remoteNode("tmp")
            #expect(remote == nil)
            #expect(f.eventually(timeout: 5) { f.spoolEntryFiles().isEmpty })
        }
    }

    @Test func truncateBeyondTheSpoolFileSystemIsEFBIG() throws {
        try MountedRoset.with { f in
            // The reference: the same call on a file in the spool's own file system.
            let huge: off_t = 1 << 50
            let probe = f.spoolDirectory + "/efbig-probe"
            let fd = open(probe, O_WRONLY | O_CREAT, 0o600)
            #expect(fd >= 0)
            let localResult = ftruncate(fd, huge) == 0 ? 0 : errno
            close(fd)
            unlink(probe)
            guard localResult == EFBIG else {
                print("skipped: the spool's file system holds files of \(huge) bytes")
                return
            }
            #expect(Posix.write(f.path("big"), [1, 2, 3]) == .ok)
            #expect(Posix.truncate(f.path("big"), Int(huge)) == .failed(EFBIG))
            #expect(Posix.stat(f.path("big")).1.st_size == 3)
            #expect(f.daemonLog.contains("cannot hold a file of this size"), "\(f.daemonLog.suffix(2000))")
        }
    }
}

/// makedev(3), a macro Swift does not import: the glibc encoding of major and minor.
func deviceNumber(_ major: UInt64, _ minor: UInt64) -> dev_t {
    dev_t((major & 0xfff) << 8 | (major & ~0xfff) << 32 | (minor & 0xff) | (minor & ~0xff) << 12)
}
