// Thin wrappers over the system calls the integration tests make against a real mount, each
// returning the errno it failed with so tests can assert on it. Nothing here knows about Roset.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The outcome of a system call: success, or the errno.
enum Sys: Equatable, CustomStringConvertible {
    case ok
    case failed(Int32)

    static func check(_ rc: Int32) -> Sys { rc == 0 ? .ok : .failed(errno) }
    static func check(_ rc: Int) -> Sys { rc >= 0 ? .ok : .failed(errno) }

    var description: String {
        switch self {
        case .ok: return "ok"
        case .failed(let e): return "errno \(e) (\(String(cString: strerror(e))))"
        }
    }
}

enum Posix {
    static func mkdir(_ path: String, _ mode: mode_t = 0o755) -> Sys { .check(Glibc.mkdir(path, mode)) }
    static func rmdir(_ path: String) -> Sys { .check(Glibc.rmdir(path)) }
    static func unlink(_ path: String) -> Sys { .check(Glibc.unlink(path)) }
    static func rename(_ from: String, _ to: String) -> Sys { .check(Glibc.rename(from, to)) }
    static func symlink(_ target: String, _ path: String) -> Sys { .check(Glibc.symlink(target, path)) }
    static func link(_ from: String, _ to: String) -> Sys { .check(Glibc.link(from, to)) }
    static func chmod(_ path: String, _ mode: mode_t) -> Sys { .check(Glibc.chmod(path, mode)) }
    static func chown(_ path: String, _ uid: uid_t, _ gid: gid_t) -> Sys { .check(Glibc.chown(path, uid, gid)) }
    static func truncate(_ path: String, _ size: Int) -> Sys { .check(Glibc.truncate(path, off_t(size))) }
    static func mknodFIFO(_ path: String) -> Sys { .check(Glibc.mknod(path, S_IFIFO | 0o644, 0)) }

    /// renameat2(2) with flags; glibc has it but Swift's Glibc module does not export it.
    static func rename(_ from: String, _ to: String, flags: UInt32) -> Sys {
        typealias Fn = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
        guard let fn = libc("renameat2", as: Fn.self) else { return .failed(ENOSYS) }
        return .check(fn(AT_FDCWD, from, AT_FDCWD, to, flags))
    }

    static func stat(_ path: String) -> (Sys, stat) {
        var st = Glibc.stat()
        let rc = fstatat(AT_FDCWD, path, &st, 0)
        return (.check(rc), st)
    }

    static func lstat(_ path: String) -> (Sys, stat) {
        var st = Glibc.stat()
        let rc = fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW)
        return (.check(rc), st)
    }

    static func exists(_ path: String) -> Bool { lstat(path).0 == .ok }

    static func readlink(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = Glibc.readlink(path, &buf, buf.count)
        guard n >= 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Writes `bytes` to `path` with open(2) flags, in one or more write(2) calls.
    @discardableResult
    static func write(_ path: String, _ bytes: [UInt8], flags: Int32 = O_WRONLY | O_CREAT | O_TRUNC, at offset: Int? = nil) -> Sys {
        let fd = Glibc.open(path, flags, 0o644)
        guard fd >= 0 else { return .failed(errno) }
        defer { Glibc.close(fd) }
        if let offset { guard lseek(fd, off_t(offset), SEEK_SET) >= 0 else { return .failed(errno) } }
        var done = 0
        while done < bytes.count {
            let n = bytes[done...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { return .failed(errno) }
            done += n
        }
        return .ok
    }

    static func read(_ path: String) -> (Sys, [UInt8]) {
        let fd = Glibc.open(path, O_RDONLY)
        guard fd >= 0 else { return (.failed(errno), []) }
        defer { Glibc.close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { return (.failed(errno), out) }
            if n == 0 { return (.ok, out) }
            out.append(contentsOf: buf[0..<n])
        }
    }

    static func listDirectory(_ path: String) -> (Sys, [String]) {
        guard let dir = opendir(path) else { return (.failed(errno), []) }
        defer { closedir(dir) }
        var names: [String] = []
        while let ent = readdir(dir) {
            let name = withUnsafePointer(to: ent.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            names.append(name)
        }
        return (.ok, names)
    }

    /// A libc function that Swift's Glibc module does not export (xattrs, renameat2).
    private static func libc<F>(_ name: String, as type: F.Type) -> F? {
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
        return unsafeBitCast(sym, to: type)
    }

    private typealias SetXattr = @convention(c) (UnsafePointer<CChar>, UnsafePointer<CChar>, UnsafeRawPointer?, Int, Int32) -> Int32
    private typealias GetXattr = @convention(c) (UnsafePointer<CChar>, UnsafePointer<CChar>, UnsafeMutableRawPointer?, Int) -> Int
    private typealias ListXattr = @convention(c) (UnsafePointer<CChar>, UnsafeMutablePointer<CChar>?, Int) -> Int
    private typealias RemoveXattr = @convention(c) (UnsafePointer<CChar>, UnsafePointer<CChar>) -> Int32

    static func setxattr(_ path: String, _ name: String, _ value: [UInt8], flags: Int32 = 0) -> Sys {
        guard let fn = libc("setxattr", as: SetXattr.self) else { return .failed(ENOSYS) }
        return .check(value.withUnsafeBytes { fn(path, name, $0.baseAddress, value.count, flags) })
    }

    /// getxattr with a buffer of `size` bytes; size 0 asks for the length.
    static func getxattr(_ path: String, _ name: String, size: Int = 65536) -> (Sys, [UInt8], Int) {
        var buf = [UInt8](repeating: 0, count: max(size, 1))
        guard let fn = libc("getxattr", as: GetXattr.self) else { return (.failed(ENOSYS), [], -1) }
        let n = buf.withUnsafeMutableBytes { fn(path, name, size == 0 ? nil : $0.baseAddress, size) }
        guard n >= 0 else { return (.failed(errno), [], -1) }
        return (.ok, size == 0 ? [] : Array(buf[0..<n]), n)
    }

    static func listxattr(_ path: String) -> (Sys, [String]) {
        var buf = [CChar](repeating: 0, count: 65536)
        guard let fn = libc("listxattr", as: ListXattr.self) else { return (.failed(ENOSYS), []) }
        let n = fn(path, &buf, buf.count)
        guard n >= 0 else { return (.failed(errno), []) }
        let names = buf[0..<n].split(separator: 0).map { String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        return (.ok, names)
    }

    static func removexattr(_ path: String, _ name: String) -> Sys {
        guard let fn = libc("removexattr", as: RemoveXattr.self) else { return .failed(ENOSYS) }
        return .check(fn(path, name))
    }

    static func statvfs(_ path: String) -> (Sys, statvfs) {
        return volumeStatus(path)
    }
}

/// Reproducible pseudo-random bytes (xorshift64*), so large contents can be checked without
/// keeping a copy: the same seed gives the same bytes.
struct PatternBytes {
    static func make(count: Int, seed: UInt64) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var x = seed | 1
        out.withUnsafeMutableBytes { raw in
            var i = 0
            while i < count {
                x ^= x >> 12; x ^= x << 25; x ^= x >> 27
                var v = x &* 2685821657736338717
                let n = min(8, count - i)
                withUnsafeBytes(of: &v) { raw.baseAddress!.advanced(by: i).copyMemory(from: $0.baseAddress!, byteCount: n) }
                i += n
            }
        }
        return out
    }
}

/// statvfs(3) outside `Posix`, where the name would mean the struct.
private func volumeStatus(_ path: String) -> (Sys, statvfs) {
    var st = statvfs()
    let rc = statvfs(path, &st)
    return (.check(rc), st)
}

// MARK: - Added for the FS* suites: descriptors, times, raw getdents, running as another user.

/// An open descriptor with the calls the write-path tests make on it; `close()` returns the
/// errno close(2) gave (close waits for the flush, and with close_wait for the upload).
final class OpenDescriptor {
    let fd: Int32
    private var closed = false

    init?(_ path: String, _ flags: Int32, _ mode: mode_t = 0o644) {
        let fd = Glibc.open(path, flags, mode)
        guard fd >= 0 else { return nil }
        self.fd = fd
    }

    deinit { if !closed { Glibc.close(fd) } }

    @discardableResult
    func pwrite(_ bytes: [UInt8], at offset: Int) -> Sys {
        var done = 0
        while done < bytes.count {
            let n = bytes[done...].withUnsafeBytes { Glibc.pwrite(fd, $0.baseAddress, $0.count, off_t(offset + done)) }
            guard n > 0 else { return .failed(errno) }
            done += n
        }
        return .ok
    }

    @discardableResult
    func write(_ bytes: [UInt8]) -> Sys {
        var done = 0
        while done < bytes.count {
            let n = bytes[done...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { return .failed(errno) }
            done += n
        }
        return .ok
    }

    func pread(count: Int, at offset: Int) -> (Sys, [UInt8]) {
        var buf = [UInt8](repeating: 0, count: count)
        let n = buf.withUnsafeMutableBytes { Glibc.pread(fd, $0.baseAddress, count, off_t(offset)) }
        guard n >= 0 else { return (.failed(errno), []) }
        return (.ok, Array(buf[0..<n]))
    }

    func fsync() -> Sys { .check(Glibc.fsync(fd)) }

    func close() -> Sys {
        closed = true
        return .check(Glibc.close(fd))
    }
}

extension Posix {
    /// utimensat(2) with explicit atime and mtime (seconds, nanoseconds).
    static func utimens(_ path: String, atime: (Int, Int), mtime: (Int, Int)) -> Sys {
        var times = [timespec(tv_sec: atime.0, tv_nsec: atime.1), timespec(tv_sec: mtime.0, tv_nsec: mtime.1)]
        return .check(utimensat(AT_FDCWD, path, &times, 0))
    }

    /// mknod(2) of a regular file.
    static func mknodRegular(_ path: String) -> Sys { .check(Glibc.mknod(path, S_IFREG | 0o644, 0)) }

    /// Creates an empty file the way touch(1) does (open O_CREAT, close).
    static func touch(_ path: String) -> Sys {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT, 0o644)
        guard fd >= 0 else { return .failed(errno) }
        return .check(Glibc.close(fd))
    }

    /// The names one getdents64(2) call returns with a `bufferSize`-byte buffer, so a test can
    /// interleave changes between the calls of one directory walk. Empty at the end.
    static func getdents(_ fd: Int32, bufferSize: Int = 1024) -> (Sys, [String]) {
        typealias Fn = @convention(c) (Int32, UnsafeMutableRawPointer?, Int) -> Int
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "getdents64") else { return (.failed(ENOSYS), []) }
        let fn = unsafeBitCast(sym, to: Fn.self)
        var buf = [UInt8](repeating: 0, count: bufferSize)
        let n = buf.withUnsafeMutableBytes { fn(fd, $0.baseAddress, bufferSize) }
        guard n >= 0 else { return (.failed(errno), []) }
        var names: [String] = []
        var pos = 0
        // struct linux_dirent64 { u64 d_ino; s64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
        while pos < n {
            let reclen = Int(buf[pos + 16]) | Int(buf[pos + 17]) << 8
            let nameBytes = buf[(pos + 19)..<(pos + reclen)].prefix { $0 != 0 }
            names.append(String(decoding: nameBytes, as: UTF8.self))
            pos += reclen
        }
        return (.ok, names)
    }

    /// Runs `/bin/sh -c command` as `uid`/`gid` (no supplementary groups) through setpriv;
    /// returns the exit status and stderr.
    static func runAs(uid: UInt32, gid: UInt32, _ command: String) -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        p.arguments = ["--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", "/bin/sh", "-c", command]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        do { try p.run() } catch { return (-1, "\(error)") }
        let data = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// The options column of the mount at `path` in /proc/mounts.
    static func mountOptions(_ path: String) -> [String] {
        guard let text = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8) else { return [] }
        var found: [String] = []
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count > 3, f[1] == path { found = f[3].split(separator: ",").map(String.init) }
        }
        return found
    }
}
