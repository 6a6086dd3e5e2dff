// RosetFS's KernelCacheNotifier over libfuse's notify calls. Invariants: a call after the
// session is gone (unmounted, destroyed) does nothing; the session pointer is read under a lock
// that `detach` takes before the session is destroyed, and held during the call so it cannot be
// destroyed under one. A refusal from the kernel (ENOENT: it held nothing for that inode or
// name) is the normal case and not logged.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import CFuse
import Logging
import RosetFS

final class FUSEKernelNotifier: KernelCacheNotifier, @unchecked Sendable {
    private let lock = NSLock()
    private var session: OpaquePointer?
    private let logger: Logger

    init(session: OpaquePointer, logger: Logger) {
        self.session = session
        self.logger = logger
    }

    /// The session is about to be destroyed: later calls do nothing.
    func detach() { lock.withLock { session = nil } }

    func invalidateInode(_ inode: InodeNumber, pages: Bool) {
        lock.withLock {
            guard let session else { return }
            // Offset -1: attributes only; offset 0, length 0: attributes and every page.
            let result = fuse_lowlevel_notify_inval_inode(session, fuse_ino_t(inode), pages ? 0 : -1, 0)
            report(result, "inval_inode \(inode)")
        }
    }

    func invalidateEntry(parent: InodeNumber, name: String) {
        lock.withLock {
            guard let session else { return }
            let result = name.withCString { fuse_lowlevel_notify_inval_entry(session, fuse_ino_t(parent), $0, strlen($0)) }
            report(result, "inval_entry \(parent)/\(name)")
        }
    }

    private func report(_ result: Int32, _ what: String) {
        if result != 0 && result != -ENOENT && result != -ENOTCONN {
            logger.debug("kernel cache notification \(what) failed: \(String(cString: strerror(-result)))")
        }
    }
}

/// The client side of `mount.roset invalidate`: asks the daemon serving `path` to drop its caches
/// for it (getxattr of the reserved name; <sys/xattr.h> is reachable through CFuse only).
public enum MountInvalidation {
    /// 0 when the daemon took the request, else the errno of the getxattr.
    public static func request(path: String) -> Int32 {
        getxattr(path, invalidateAttributeName, nil, 0) >= 0 ? 0 : errno
    }
}
