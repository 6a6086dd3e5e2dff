// The Swift object behind fuse_req_userdata: the filesystem and the few settings the reply side
// needs. Invariants: every request gets exactly one reply; `shutdown` of the filesystem runs at
// most once, whichever comes first of a signal-driven stop and FUSE destroy.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import RosetFS
import CFuse

final class RequestDispatcher: @unchecked Sendable {
    let fs: FileSystemOperations
    let blockSizeOverride: UInt32?
    let maxRead: UInt32?
    let logger: Logger
    let shutdownGrace: Double
    private let shutdownState = NSCondition()
    private var shutdownStarted = false
    private var shutdownFinished = false

    init(fs: FileSystemOperations, blockSizeOverride: UInt32?, maxRead: UInt32?, shutdownGrace: Double, logger: Logger) {
        self.fs = fs; self.blockSizeOverride = blockSizeOverride; self.maxRead = maxRead
        self.shutdownGrace = shutdownGrace; self.logger = logger
    }

    /// Runs fs.shutdown once. A later caller waits until that first shutdown has finished, so
    /// nobody unmounts or exits while pending uploads still have their grace time.
    func shutdownFileSystemOnce(grace: Double? = nil) {
        shutdownState.lock()
        if shutdownStarted {
            while !shutdownFinished { shutdownState.wait() }
            shutdownState.unlock()
            return
        }
        shutdownStarted = true
        shutdownState.unlock()

        let g = grace ?? shutdownGrace
        logger.info("stopping the filesystem: no new writes, up to \(g) s for pending uploads")
        fs.shutdown(grace: g)
        logger.info("filesystem stopped")

        shutdownState.lock()
        shutdownFinished = true
        shutdownState.broadcast()
        shutdownState.unlock()
    }

    static func from(_ req: fuse_req_t?) -> RequestDispatcher {
        Unmanaged<RequestDispatcher>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
    }

    static func context(_ req: fuse_req_t?) -> RequestContext {
        guard let ctx = fuse_req_ctx(req) else { return RequestContext(uid: 0, gid: 0, pid: 0) }
        let c = ctx.pointee
        return RequestContext(uid: c.uid, gid: c.gid, pid: c.pid, umask: UInt32(c.umask))
    }

    // MARK: - Conversions

    func makeStat(_ a: FileAttributes) -> Glibc.stat {
        var st = Glibc.stat()
        st.st_ino = __ino_t(a.inode)
        st.st_mode = a.mode
        st.st_rdev = __dev_t(a.rdev)
        st.st_nlink = UInt(a.linkCount)
        st.st_uid = a.uid
        st.st_gid = a.gid
        st.st_size = Int(a.size)
        st.st_blksize = Int(blockSizeOverride ?? a.blockSize)
        st.st_blocks = Int((a.size + 511) / 512)
        st.st_atim = a.accessTime
        st.st_mtim = a.modificationTime
        st.st_ctim = a.changeTime
        return st
    }

    func entryParam(_ e: EntryReply) -> fuse_entry_param {
        var p = fuse_entry_param()
        p.ino = e.attributes.inode
        p.generation = e.generation
        p.attr = makeStat(e.attributes)
        p.attr_timeout = e.attributeTimeout
        p.entry_timeout = e.entryTimeout
        return p
    }

    // MARK: - Error replies

    /// FSError carries its errno; anything else is a bug or an unexpected failure: EIO, logged.
    func replyError(_ req: fuse_req_t?, _ error: Error, _ op: StaticString) {
        if let e = error as? FSError {
            _ = fuse_reply_err(req, e.errno)
        } else {
            logger.error("\(op): unexpected error \(String(describing: error)); answering EIO")
            _ = fuse_reply_err(req, EIO)
        }
    }

    /// Runs `body`, answering `fuse_reply_err(0)` on success.
    func replyStatus(_ req: fuse_req_t?, _ op: StaticString, _ body: () throws -> Void) {
        do {
            try body()
            _ = fuse_reply_err(req, 0)
        } catch {
            replyError(req, error, op)
        }
    }

    func replyEntry(_ req: fuse_req_t?, _ op: StaticString, _ body: () throws -> EntryReply) {
        do {
            var p = entryParam(try body())
            if fuse_reply_entry(req, &p) != 0 {
                // The kernel did not take the entry (request interrupted): its lookup never counted.
                fs.forget(inode: p.ino, lookups: 1)
            }
        } catch {
            replyError(req, error, op)
        }
    }

    func replyAttr(_ req: fuse_req_t?, _ op: StaticString, _ body: () throws -> AttributeReply) {
        do {
            let r = try body()
            var st = makeStat(r.attributes)
            _ = fuse_reply_attr(req, &st, r.timeout)
        } catch {
            replyError(req, error, op)
        }
    }
}

extension String {
    /// Names from the kernel are bytes; a name that is not UTF-8 cannot exist remotely.
    init?(fuseName: UnsafePointer<CChar>?) {
        guard let fuseName else { return nil }
        self.init(validatingCString: fuseName)
    }
}
