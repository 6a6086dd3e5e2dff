// The fuse_lowlevel_ops table: one named function per operation, the table built from them at
// the end (as libfuse's passthrough_ll.c builds lo_oper). Each operation is a C function pointer
// that finds the dispatcher through fuse_req_userdata, makes exactly one FileSystemOperations call
// and exactly one fuse_reply_* (FSError → its errno, any other error → EIO). Operations run on
// libfuse's worker threads and may block; the filesystem does its own locking.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import CFuse
import RosetFS

// Helpers shared by the operations.
enum LowLevelOperations {
    /// Capabilities: readdirplus always (no AUTO heuristics), parallel lookups and reads, atomic
    /// O_TRUNC, 1 MiB writes, replies spliced from pipes (fuse_reply_data; buffers still go by
    /// writev). max_readahead cannot raise the kernel's 128 KiB window (the kernel takes the
    /// minimum); KernelReadAhead raises it after INIT. No writeback cache: every write must reach
    /// the spool through `write`, in order, so close can seal exactly what was written.
    static func negotiate(_ conn: UnsafeMutablePointer<fuse_conn_info>, maxRead: UInt32?) {
        let capable = conn.pointee.capable
        var want = conn.pointee.want
        for cap in [FUSE_CAP_READDIRPLUS, FUSE_CAP_ASYNC_READ, FUSE_CAP_PARALLEL_DIROPS, FUSE_CAP_ATOMIC_O_TRUNC,
                    FUSE_CAP_AUTO_INVAL_DATA, FUSE_CAP_SPLICE_WRITE] {
            let bit = UInt32(cap)
            if capable & bit != 0 { want |= bit }
        }
        want &= ~UInt32(FUSE_CAP_READDIRPLUS_AUTO)
        want &= ~UInt32(FUSE_CAP_WRITEBACK_CACHE)
        conn.pointee.want = want
        conn.pointee.max_write = 1 << 20
        conn.pointee.max_readahead = 1 << 20
        conn.pointee.max_background = 64
        conn.pointee.congestion_threshold = 48
        conn.pointee.time_gran = 1
        // libfuse refuses the session when init and the max_read= option disagree.
        if let maxRead { conn.pointee.max_read = maxRead }
    }

    static func apply(_ reply: OpenReply, to fi: UnsafeMutablePointer<fuse_file_info>) {
        fi.pointee.fh = reply.handle
        roset_fi_set_keep_cache(fi, reply.keepCache ? 1 : 0)
        roset_fi_set_direct_io(fi, reply.directIO ? 1 : 0)
    }

    static func attributeChanges(_ attr: stat, toSet: Int32) -> AttributeChanges {
        var c = AttributeChanges()
        if toSet & FUSE_SET_ATTR_MODE != 0 { c.mode = attr.st_mode }
        if toSet & FUSE_SET_ATTR_UID != 0 { c.uid = attr.st_uid }
        if toSet & FUSE_SET_ATTR_GID != 0 { c.gid = attr.st_gid }
        if toSet & FUSE_SET_ATTR_SIZE != 0 { c.size = Int64(attr.st_size) }
        if toSet & FUSE_SET_ATTR_ATIME_NOW != 0 {
            c.accessTime = .now
        } else if toSet & FUSE_SET_ATTR_ATIME != 0 {
            c.accessTime = .set(seconds: attr.st_atim.tv_sec, nanoseconds: attr.st_atim.tv_nsec)
        }
        if toSet & FUSE_SET_ATTR_MTIME_NOW != 0 {
            c.modificationTime = .now
        } else if toSet & FUSE_SET_ATTR_MTIME != 0 {
            c.modificationTime = .set(seconds: attr.st_mtim.tv_sec, nanoseconds: attr.st_mtim.tv_nsec)
        }
        return c
    }

    /// Size 0 asks for the length; a buffer too small is ERANGE; otherwise the bytes.
    static func replyXattr(_ req: fuse_req_t?, _ bytes: [UInt8], size: Int) {
        if size == 0 {
            _ = fuse_reply_xattr(req, bytes.count)
        } else if bytes.count > size {
            _ = fuse_reply_err(req, ERANGE)
        } else {
            _ = bytes.withUnsafeBytes { fuse_reply_buf(req, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) }
        }
    }

    /// Fills one reply buffer of the kernel's size. An entry that does not fit is refused (`add`
    /// returns false) before it is counted, so readdirplus lookups match what the kernel got.
    static func readDirectory(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ size: Int, _ offset: off_t,
                              _ fi: UnsafeMutablePointer<fuse_file_info>?, plus: Bool) {
        let d = RequestDispatcher.from(req)
        let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: max(size, 1))
        defer { buffer.deallocate() }
        var used = 0
        var handedOut: [InodeNumber] = []
        do {
            try d.fs.readdir(inode: ino, handle: fi?.pointee.fh ?? 0, offset: Int64(offset), plus: plus) { entry in
                let remaining = size - used
                let written: Int
                if plus {
                    var p: fuse_entry_param
                    if let e = entry.entry {
                        p = d.entryParam(e)
                    } else {
                        // `.`/`..`: no lookup counted; ino 0 tells the kernel not to make an entry.
                        p = fuse_entry_param()
                        p.attr.st_ino = __ino_t(entry.inode)
                        p.attr.st_mode = entry.mode
                    }
                    written = fuse_add_direntry_plus(req, buffer + used, remaining, entry.name, &p, off_t(entry.nextOffset))
                } else {
                    var st = Glibc.stat()
                    st.st_ino = __ino_t(entry.inode)
                    st.st_mode = entry.mode
                    written = fuse_add_direntry(req, buffer + used, remaining, entry.name, &st, off_t(entry.nextOffset))
                }
                if written > remaining { return false }
                used += written
                if plus, entry.entry != nil { handedOut.append(entry.inode) }
                return true
            }
            if fuse_reply_buf(req, buffer, used) != 0 {
                for inode in handedOut { d.fs.forget(inode: inode, lookups: 1) }
            }
        } catch {
            if used > 0 {
                // Entries already accepted (and counted) are delivered; the error shows on the next call.
                if fuse_reply_buf(req, buffer, used) != 0 {
                    for inode in handedOut { d.fs.forget(inode: inode, lookups: 1) }
                }
            } else {
                d.replyError(req, error, plus ? "readdirplus" : "readdir")
            }
        }
    }
}

// MARK: - The operations, one function each, in the order of fuse_lowlevel_ops

private func onInit(_ userdata: UnsafeMutableRawPointer?, _ conn: UnsafeMutablePointer<fuse_conn_info>?) {
    guard let conn, let userdata else { return }
    let d = Unmanaged<RequestDispatcher>.fromOpaque(userdata).takeUnretainedValue()
    LowLevelOperations.negotiate(conn, maxRead: d.maxRead)
}

private func onDestroy(_ userdata: UnsafeMutableRawPointer?) {
    guard let userdata else { return }
    let d = Unmanaged<RequestDispatcher>.fromOpaque(userdata).takeUnretainedValue()
    d.shutdownFileSystemOnce()
}

private func onLookup(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>?) {
    let d = RequestDispatcher.from(req)
    guard let name = String(fuseName: name) else { _ = fuse_reply_err(req, ENOENT); return }
    d.replyEntry(req, "lookup") { try d.fs.lookup(parent: parent, name: name) }
}

private func onForget(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ nlookup: UInt64) {
    RequestDispatcher.from(req).fs.forget(inode: ino, lookups: nlookup)
    fuse_reply_none(req)
}

private func onForgetMulti(_ req: fuse_req_t?, _ count: Int, _ forgets: UnsafeMutablePointer<fuse_forget_data>?) {
    let d = RequestDispatcher.from(req)
    if let forgets {
        for f in UnsafeBufferPointer(start: forgets, count: count) {
            d.fs.forget(inode: f.ino, lookups: f.nlookup)
        }
    }
    fuse_reply_none(req)
}

private func onGetattr(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
    let d = RequestDispatcher.from(req)
    d.replyAttr(req, "getattr") { try d.fs.getattr(inode: ino, handle: fi?.pointee.fh) }
}

private func onSetattr(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ attr: UnsafeMutablePointer<stat>?, _ toSet: Int32,
                       _ fi: UnsafeMutablePointer<fuse_file_info>?) {
    let d = RequestDispatcher.from(req)
    guard let attr else { _ = fuse_reply_err(req, EINVAL); return }
    let changes = LowLevelOperations.attributeChanges(attr.pointee, toSet: toSet)
    let context = RequestDispatcher.context(req)
    d.replyAttr(req, "setattr") {
        try d.fs.setattr(inode: ino, changes: changes, handle: fi?.pointee.fh, context: context)
    }
}

private func onReadlink(_ req: fuse_req_t?, _ ino: fuse_ino_t) {
    let d = RequestDispatcher.from(req)
    do {
        let target = try d.fs.readlink(inode: ino)
        _ = fuse_reply_readlink(req, target)
    } catch {
        d.replyError(req, error, "readlink")
    }
}

private func onMknod(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>?, _ mode: mode_t,
                     _ rdev: dev_t) {
    let d = RequestDispatcher.from(req)
    guard let name = String(fuseName: name) else { _ = fuse_reply_err(req, EINVAL); return }
    let context = RequestDispatcher.context(req)
    d.replyEntry(req, "mknod") {
        try d.fs.mknod(parent: parent, name: name, mode: mode, rdev: UInt64(rdev), context: context)
    }
}

private func onMkdir(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>?, _ mode: mode_t) {
    let d = RequestDispatcher.from(req)
    guard let name = String(fuseName: name) else { _ = fuse_reply_err(req, EINVAL); return }
    let context = RequestDispatcher.context(req)
    d.replyEntry(req, "mkdir") { try d.fs.mkdir(parent: parent, name: name, mode: mode, context: context) }
}

private func onUnlink(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>?) {
    let d = RequestDispatcher.from(req)
    guard let name = String(fuseName: name) else { _ = fuse_reply_err(req, ENOENT); return }
    d.replyStatus(req, "unlink") { try d.fs.unlink(parent: parent, name: name) }
}

private func onRmdir(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>?) {
    let d = RequestDispatcher.from(req)
    guard let name = String(fuseName: name) else { _ = fuse_reply_err(req, ENOENT); return }
    d.replyStatus(req, "rmdir") { try d.fs.rmdir(parent: parent, name: name) }
}

private func onSymlink(_ req: fuse_req_t?, _ link: UnsafePointer<CChar>?, _ parent: fuse_ino_t,
                       _ name: UnsafePointer<CChar>?) {
    let d = RequestDispatcher.from(req)
    guard let name = String(fuseName: name), let target = String(fuseName: link) else {
        _ = fuse_reply_err(req, EINVAL); return
    }
    let context = RequestDispatcher.context(req)
    d.replyEntry(req, "symlink") {
        try d.fs.symlink(target: target, parent: parent, name: name, context: context)
    }
}

private func onRename(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>?,
                      _ newParent: fuse_ino_t, _ newName: UnsafePointer<CChar>?, _ flags: UInt32) {
    let d = RequestDispatcher.from(req)
    guard let name = String(fuseName: name), let newName = String(fuseName: newName) else {
        _ = fuse_reply_err(req, EINVAL); return
    }
    d.replyStatus(req, "rename") {
        try d.fs.rename(parent: parent, name: name, newParent: newParent, newName: newName, flags: flags)
    }
}

private func onLink(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ newParent: fuse_ino_t, _ newName: UnsafePointer<CChar>?) {
    let d = RequestDispatcher.from(req)
    guard let newName = String(fuseName: newName) else { _ = fuse_reply_err(req, EINVAL); return }
    d.replyEntry(req, "link") { try d.fs.link(inode: ino, newParent: newParent, newName: newName) }
}

private func onOpen(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
    let d = RequestDispatcher.from(req)
    guard let fi else { _ = fuse_reply_err(req, EINVAL); return }
    do {
        let reply = try d.fs.open(inode: ino, flags: fi.pointee.flags, context: RequestDispatcher.context(req))
        LowLevelOperations.apply(reply, to: fi)
        if fuse_reply_open(req, fi) != 0 {
            // The opener went away before it got the handle: nobody will release it.
            try? d.fs.release(inode: ino, handle: reply.handle)
        }
    } catch {
        d.replyError(req, error, "open")
    }
}

private func onCreate(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>?, _ mode: mode_t,
                      _ fi: UnsafeMutablePointer<fuse_file_info>?) {
    let d = RequestDispatcher.from(req)
    guard let fi else { _ = fuse_reply_err(req, EINVAL); return }
    guard let name = String(fuseName: name) else { _ = fuse_reply_err(req, EINVAL); return }
    do {
        let (entry, open) = try d.fs.create(parent: parent, name: name, mode: mode, flags: fi.pointee.flags,
                                            context: RequestDispatcher.context(req))
        LowLevelOperations.apply(open, to: fi)
        var p = d.entryParam(entry)
        if fuse_reply_create(req, &p, fi) != 0 {
            try? d.fs.release(inode: p.ino, handle: open.handle)
            d.fs.forget(inode: p.ino, lookups: 1)
        }
    } catch {
        d.replyError(req, error, "create")
    }
}

private func onRead(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ size: Int, _ offset: off_t,
                    _ fi: UnsafeMutablePointer<fuse_file_info>?) {
    let d = RequestDispatcher.from(req)
    guard let fi else { _ = fuse_reply_err(req, EBADF); return }
    do {
        // Sent from the buffers the filesystem hands over (the block cache's own memory for
        // cached content): the kernel copies them once, into the reader's pages.
        // A sequential reader's read-ahead may come as pipes instead: libfuse splices them
        // into the kernel, and the bytes never enter this process.
        try d.fs.read(inode: ino, handle: fi.pointee.fh, offset: Int64(offset), size: size, reply: { buffers in
            var vectors = buffers.filter { $0.count > 0 }.map {
                iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count)
            }
            if vectors.isEmpty {
                _ = fuse_reply_buf(req, nil, 0)
            } else {
                _ = fuse_reply_iov(req, &vectors, Int32(vectors.count))
            }
        }, pipeReply: { segments in
            let fds = segments.map { $0.fd }
            let counts = segments.map { $0.count }
            _ = roset_reply_pipes(req, fds, counts, segments.count)
        })
    } catch {
        d.replyError(req, error, "read")
    }
}

private func onWrite(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ buf: UnsafePointer<CChar>?, _ size: Int,
                     _ offset: off_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
    let d = RequestDispatcher.from(req)
    guard let fi else { _ = fuse_reply_err(req, EBADF); return }
    do {
        let data = UnsafeRawBufferPointer(start: buf, count: size)
        let written = try d.fs.write(inode: ino, handle: fi.pointee.fh, offset: Int64(offset), data: data)
        _ = fuse_reply_write(req, written)
    } catch {
        d.replyError(req, error, "write")
    }
}

private func onFlush(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
    let d = RequestDispatcher.from(req)
    guard let fi else { _ = fuse_reply_err(req, EBADF); return }
    d.replyStatus(req, "flush") { try d.fs.flush(inode: ino, handle: fi.pointee.fh) }
}

private func onRelease(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
    let d = RequestDispatcher.from(req)
    guard let fi else { _ = fuse_reply_err(req, EBADF); return }
    d.replyStatus(req, "release") { try d.fs.release(inode: ino, handle: fi.pointee.fh) }
}

private func onFsync(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ datasync: Int32,
                     _ fi: UnsafeMutablePointer<fuse_file_info>?) {
    let d = RequestDispatcher.from(req)
    guard let fi else { _ = fuse_reply_err(req, EBADF); return }
    d.replyStatus(req, "fsync") { try d.fs.fsync(inode: ino, handle: fi.pointee.fh, dataOnly: datasync != 0) }
}

private func onOpendir(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
    let d = RequestDispatcher.from(req)
    guard let fi else { _ = fuse_reply_err(req, EINVAL); return }
    do {
        let reply = try d.fs.opendir(inode: ino)
        LowLevelOperations.apply(reply, to: fi)
        if fuse_reply_open(req, fi) != 0 { d.fs.releasedir(inode: ino, handle: reply.handle) }
    } catch {
        d.replyError(req, error, "opendir")
    }
}

private func onReaddir(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ size: Int, _ offset: off_t,
                       _ fi: UnsafeMutablePointer<fuse_file_info>?) {
    LowLevelOperations.readDirectory(req, ino, size, offset, fi, plus: false)
}

private func onReaddirplus(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ size: Int, _ offset: off_t,
                           _ fi: UnsafeMutablePointer<fuse_file_info>?) {
    LowLevelOperations.readDirectory(req, ino, size, offset, fi, plus: true)
}

private func onReleasedir(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
    let d = RequestDispatcher.from(req)
    if let fi { d.fs.releasedir(inode: ino, handle: fi.pointee.fh) }
    _ = fuse_reply_err(req, 0)
}

private func onStatfs(_ req: fuse_req_t?, _ ino: fuse_ino_t) {
    let d = RequestDispatcher.from(req)
    do {
        let s = try d.fs.statfs(inode: ino)
        var v = statvfs()
        v.f_bsize = UInt(s.blockSize)
        v.f_frsize = UInt(s.fragmentSize)
        v.f_blocks = UInt(s.totalBlocks)
        v.f_bfree = UInt(s.freeBlocks)
        v.f_bavail = UInt(s.availableBlocks)
        v.f_files = UInt(s.totalFiles)
        v.f_ffree = UInt(s.freeFiles)
        v.f_favail = UInt(s.freeFiles)
        v.f_namemax = UInt(s.maxNameLength)
        _ = fuse_reply_statfs(req, &v)
    } catch {
        d.replyError(req, error, "statfs")
    }
}

private func onSetxattr(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ name: UnsafePointer<CChar>?,
                        _ value: UnsafePointer<CChar>?, _ size: Int, _ flags: Int32) {
    let d = RequestDispatcher.from(req)
    guard let name = String(fuseName: name) else { _ = fuse_reply_err(req, EINVAL); return }
    let bytes: [UInt8] = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
    d.replyStatus(req, "setxattr") { try d.fs.setxattr(inode: ino, name: name, value: bytes, flags: flags) }
}

private func onGetxattr(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ name: UnsafePointer<CChar>?, _ size: Int) {
    let d = RequestDispatcher.from(req)
    guard let name = String(fuseName: name) else { _ = fuse_reply_err(req, ENODATA); return }
    do {
        LowLevelOperations.replyXattr(req, try d.fs.getxattr(inode: ino, name: name), size: size)
    } catch {
        d.replyError(req, error, "getxattr")
    }
}

private func onListxattr(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ size: Int) {
    let d = RequestDispatcher.from(req)
    do {
        var bytes = [UInt8]()
        for name in try d.fs.listxattr(inode: ino) {
            bytes.append(contentsOf: name.utf8)
            bytes.append(0)
        }
        LowLevelOperations.replyXattr(req, bytes, size: size)
    } catch {
        d.replyError(req, error, "listxattr")
    }
}

private func onRemovexattr(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ name: UnsafePointer<CChar>?) {
    let d = RequestDispatcher.from(req)
    guard let name = String(fuseName: name) else { _ = fuse_reply_err(req, ENODATA); return }
    d.replyStatus(req, "removexattr") { try d.fs.removexattr(inode: ino, name: name) }
}

private func onAccess(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ mask: Int32) {
    let d = RequestDispatcher.from(req)
    let context = RequestDispatcher.context(req)
    d.replyStatus(req, "access") { try d.fs.access(inode: ino, mask: mask, context: context) }
}

// MARK: - The table

extension LowLevelOperations {
    /// The table libfuse calls, built from the named operations above (as passthrough_ll.c's lo_oper).
    static func makeTable() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.`init` = onInit
        ops.destroy = onDestroy
        ops.lookup = onLookup
        ops.forget = onForget
        ops.forget_multi = onForgetMulti
        ops.getattr = onGetattr
        ops.setattr = onSetattr
        ops.readlink = onReadlink
        ops.mknod = onMknod
        ops.mkdir = onMkdir
        ops.unlink = onUnlink
        ops.rmdir = onRmdir
        ops.symlink = onSymlink
        ops.rename = onRename
        ops.link = onLink
        ops.open = onOpen
        ops.create = onCreate
        ops.read = onRead
        ops.write = onWrite
        ops.flush = onFlush
        ops.release = onRelease
        ops.fsync = onFsync
        ops.opendir = onOpendir
        ops.readdir = onReaddir
        ops.readdirplus = onReaddirplus
        ops.releasedir = onReleasedir
        ops.statfs = onStatfs
        ops.setxattr = onSetxattr
        ops.getxattr = onGetxattr
        ops.listxattr = onListxattr
        ops.removexattr = onRemovexattr
        ops.access = onAccess
        return ops
    }
}
