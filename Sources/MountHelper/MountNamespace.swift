// mount(8)'s -N: enter another mount namespace before mounting. setns(CLONE_NEWNS) requires a
// single-threaded process, so this runs before daemonizing and before any thread exists.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import CMount

public enum MountNamespace {
    /// `namespace` is a path (/proc/PID/ns/mnt, /proc/PID/fd/N, a bind-mounted ns file) or a PID.
    public static func enter(_ namespace: String) throws {
        let path = Int(namespace) != nil ? "/proc/\(namespace)/ns/mnt" : namespace
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw MountHelperError("cannot open mount namespace \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        guard roset_setns_mount(fd) == 0 else {
            throw MountHelperError("cannot enter mount namespace \(path): \(String(cString: strerror(errno)))")
        }
    }
}
