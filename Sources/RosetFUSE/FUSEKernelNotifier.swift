// RosetFS's KernelCacheNotifier over libfuse's notify calls. Invariants: a call after the
// session is gone (unmounted, destroyed) does nothing; `detach` waits (up to five seconds) for
// the calls in flight before the session is destroyed; no lock is held during a call (an entry
// invalidation waits for its folder's lock in the kernel, which a request being answered may
// hold: a lock held here meanwhile would stall every other notification, that request's own
// included). A refusal from the kernel (ENOENT: it held nothing for that inode or name) is the
// normal case and not logged.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import CFuse
import Logging
import RosetFS

final class FUSEKernelNotifier: KernelCacheNotifier, @unchecked Sendable {
    private let state = NSCondition()
    private var session: OpaquePointer?
    private var inFlight = 0
    private let logger: Logger

    init(session: OpaquePointer, logger: Logger) {
        self.session = session
        self.logger = logger
    }

    /// The session is about to be destroyed: later calls do nothing, and calls in flight get up
    /// to five seconds to end (an unmount must not hang on a notification the kernel holds).
    func detach() {
        state.lock()
        session = nil
        let deadline = Date().addingTimeInterval(5)
        while inFlight > 0, state.wait(until: deadline) {}
        let stuck = inFlight
        state.unlock()
        if stuck > 0 { logger.warning("\(stuck) kernel cache notification(s) still in flight at unmount") }
    }

    private func withSession(_ body: (OpaquePointer) -> Int32, _ what: @autoclosure () -> String) {
        state.lock()
        guard let session else { state.unlock(); return }
        inFlight += 1
        state.unlock()
        let result = body(session)
        state.lock()
        inFlight -= 1
        state.broadcast()
        state.unlock()
        if result != 0 && result != -ENOENT && result != -ENOTCONN {
            logger.debug("kernel cache notification \(what()) failed: \(String(cString: strerror(-result)))")
        }
    }

    func invalidateInode(_ inode: InodeNumber, pages: Bool) {
        // Offset -1: attributes only; offset 0, length 0: attributes and every page.
        withSession({ fuse_lowlevel_notify_inval_inode($0, fuse_ino_t(inode), pages ? 0 : -1, 0) }, "inval_inode \(inode)")
    }

    func invalidateEntry(parent: InodeNumber, name: String) {
        withSession({ session in
            name.withCString { fuse_lowlevel_notify_inval_entry(session, fuse_ino_t(parent), $0, strlen($0)) }
        }, "inval_entry \(parent)/\(name)")
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
