// A small in-memory FileSystemOperations for the FUSE layer's tests: POSIX-like semantics and
// errnos, a record of every call, and a few names that fail on purpose. Test-only; the real
// filesystem is RosetFS.
import Foundation
import RosetFS
#if canImport(Glibc)
import Glibc
#endif

final class InMemoryFileSystem: FileSystemOperations, @unchecked Sendable {
    final class Node {
        let inode: InodeNumber
        var mode: UInt32
        var uid: UInt32 = 0, gid: UInt32 = 0
        var data: [UInt8] = []
        var children: [String: InodeNumber] = [:]
        var target: String?
        var xattrs: [String: [UInt8]] = [:]
        var atime = timespec(tv_sec: 1_700_000_000, tv_nsec: 0)
        var mtime = timespec(tv_sec: 1_700_000_000, tv_nsec: 0)
        var parent: InodeNumber
        init(inode: InodeNumber, mode: UInt32, parent: InodeNumber) {
            self.inode = inode; self.mode = mode; self.parent = parent
        }
        var isFolder: Bool { mode & S_IFMT == S_IFDIR }
    }

    /// Names with planned failures.
    static let failingWithUnexpectedError = "unexpected-error"   // open throws a non-FSError → EIO
    static let failingWithEACCES = "eacces"                      // open throws FSError(EACCES)

    private let lock = NSLock()
    private var nodes: [InodeNumber: Node] = [:]
    private var nextInode: InodeNumber = 2
    private var nextHandle: FileHandleID = 1
    private(set) var calls: [String: Int] = [:]
    private(set) var lastSetattr: AttributeChanges?
    private(set) var lastRenameFlags: UInt32?
    private(set) var shutdownGraces: [Double] = []
    private(set) var lookupCounts: [InodeNumber: Int64] = [:]
    let statistics = FileSystemStatistics(blockSize: 65536, fragmentSize: 4096, totalBlocks: 1 << 30,
                                          freeBlocks: 1 << 29, availableBlocks: 1 << 28, totalFiles: 1 << 20,
                                          freeFiles: 1 << 19, maxNameLength: 255)

    init() {
        nodes[rootInode] = Node(inode: rootInode, mode: S_IFDIR | 0o777, parent: rootInode)
    }

    func count(_ op: String) -> Int { lock.withLock { calls[op] ?? 0 } }
    private func record(_ op: String) { calls[op, default: 0] += 1 }

    // MARK: helpers (lock held)
    private func node(_ ino: InodeNumber) throws -> Node {
        guard let n = nodes[ino] else { throw FSError(ESTALE) }
        return n
    }
    private func folder(_ ino: InodeNumber) throws -> Node {
        let n = try node(ino)
        guard n.isFolder else { throw FSError(ENOTDIR) }
        return n
    }
    private func checkName(_ name: String) throws {
        if name.utf8.count > 255 { throw FSError(ENAMETOOLONG) }
    }
    private func attributes(_ n: Node) -> FileAttributes {
        FileAttributes(inode: n.inode, size: Int64(n.target?.utf8.count ?? n.data.count), mode: n.mode,
                       linkCount: n.isFolder ? 2 : 1, uid: n.uid, gid: n.gid, accessTime: n.atime,
                       modificationTime: n.mtime, changeTime: n.mtime)
    }
    private func entry(_ n: Node) -> EntryReply {
        lookupCounts[n.inode, default: 0] += 1
        return EntryReply(attributes: attributes(n), entryTimeout: 0, attributeTimeout: 0)
    }
    private func add(_ parent: InodeNumber, _ name: String, mode: UInt32, context: RequestContext) throws -> Node {
        try checkName(name)
        let p = try folder(parent)
        if p.children[name] != nil { throw FSError(EEXIST) }
        let n = Node(inode: nextInode, mode: mode, parent: parent)
        n.uid = context.uid; n.gid = context.gid
        nextInode += 1
        nodes[n.inode] = n
        p.children[name] = n.inode
        return n
    }

    // MARK: FileSystemOperations
    func lookup(parent: InodeNumber, name: String, context: RequestContext) throws -> EntryReply {
        try lock.withLock {
            record("lookup")
            try checkName(name)
            guard let ino = try folder(parent).children[name] else { throw FSError(ENOENT) }
            return entry(try node(ino))
        }
    }
    func forget(inode: InodeNumber, lookups: UInt64) {
        lock.withLock { record("forget"); lookupCounts[inode, default: 0] -= Int64(lookups) }
    }
    func getattr(inode: InodeNumber, handle: FileHandleID?) throws -> AttributeReply {
        try lock.withLock {
            record("getattr")
            return AttributeReply(attributes: attributes(try node(inode)), timeout: 0)
        }
    }
    func setattr(inode: InodeNumber, changes: AttributeChanges, handle: FileHandleID?,
                 context: RequestContext) throws -> AttributeReply {
        try lock.withLock {
            record("setattr")
            lastSetattr = changes
            let n = try node(inode)
            if let m = changes.mode { n.mode = (n.mode & S_IFMT) | (m & 0o7777) }
            if let u = changes.uid { n.uid = u }
            if let g = changes.gid { n.gid = g }
            if let s = changes.size {
                if s < n.data.count { n.data.removeLast(n.data.count - Int(s)) } else {
                    n.data += [UInt8](repeating: 0, count: Int(s) - n.data.count)
                }
            }
            func time(_ t: TimeChange) -> timespec {
                switch t {
                case .now: var ts = timespec(); clock_gettime(CLOCK_REALTIME, &ts); return ts
                case .set(let s, let ns): return timespec(tv_sec: s, tv_nsec: ns)
                }
            }
            if let a = changes.accessTime { n.atime = time(a) }
            if let m = changes.modificationTime { n.mtime = time(m) }
            return AttributeReply(attributes: attributes(n), timeout: 0)
        }
    }
    func readlink(inode: InodeNumber) throws -> String {
        try lock.withLock {
            record("readlink")
            guard let t = try node(inode).target else { throw FSError(EINVAL) }
            return t
        }
    }
    func mknod(parent: InodeNumber, name: String, mode: UInt32, rdev: UInt64, context: RequestContext) throws -> EntryReply {
        try lock.withLock {
            record("mknod")
            guard mode & S_IFMT == S_IFREG else { throw FSError(EPERM) }
            return entry(try add(parent, name, mode: mode, context: context))
        }
    }
    func mkdir(parent: InodeNumber, name: String, mode: UInt32, context: RequestContext) throws -> EntryReply {
        try lock.withLock {
            record("mkdir")
            return entry(try add(parent, name, mode: S_IFDIR | (mode & 0o7777), context: context))
        }
    }
    func unlink(parent: InodeNumber, name: String, context: RequestContext) throws {
        try lock.withLock {
            record("unlink")
            let p = try folder(parent)
            guard let ino = p.children[name] else { throw FSError(ENOENT) }
            if try node(ino).isFolder { throw FSError(EISDIR) }
            p.children[name] = nil
        }
    }
    func rmdir(parent: InodeNumber, name: String, context: RequestContext) throws {
        try lock.withLock {
            record("rmdir")
            let p = try folder(parent)
            guard let ino = p.children[name] else { throw FSError(ENOENT) }
            let n = try node(ino)
            guard n.isFolder else { throw FSError(ENOTDIR) }
            guard n.children.isEmpty else { throw FSError(ENOTEMPTY) }
            p.children[name] = nil
        }
    }
    func symlink(target: String, parent: InodeNumber, name: String, context: RequestContext) throws -> EntryReply {
        try lock.withLock {
            record("symlink")
            let n = try add(parent, name, mode: S_IFLNK | 0o777, context: context)
            n.target = target
            return entry(n)
        }
    }
    func rename(parent: InodeNumber, name: String, newParent: InodeNumber, newName: String, flags: UInt32, context: RequestContext) throws {
        try lock.withLock {
            record("rename")
            lastRenameFlags = flags
            if flags & renameExchange != 0 { throw FSError(EINVAL) }
            try checkName(newName)
            let from = try folder(parent), to = try folder(newParent)
            guard let ino = from.children[name] else { throw FSError(ENOENT) }
            if let existing = to.children[newName] {
                if flags & renameNoReplace != 0 { throw FSError(EEXIST) }
                let e = try node(existing)
                if e.isFolder && !e.children.isEmpty { throw FSError(ENOTEMPTY) }
            }
            from.children[name] = nil
            to.children[newName] = ino
            try node(ino).parent = newParent
        }
    }
    func link(inode: InodeNumber, newParent: InodeNumber, newName: String) throws -> EntryReply {
        lock.withLock { record("link") }
        throw FSError(EPERM)
    }
    func open(inode: InodeNumber, flags: Int32, context: RequestContext) throws -> OpenReply {
        try lock.withLock {
            record("open")
            let n = try node(inode)
            let name = nodes[n.parent]?.children.first { $0.value == inode }?.key
            if name == Self.failingWithUnexpectedError { throw CocoaError(.fileReadUnknown) }
            if name == Self.failingWithEACCES { throw FSError(EACCES) }
            if flags & O_TRUNC != 0 { n.data = [] }
            nextHandle += 1
            return OpenReply(handle: nextHandle, keepCache: true)
        }
    }
    func create(parent: InodeNumber, name: String, mode: UInt32, flags: Int32,
                context: RequestContext) throws -> (EntryReply, OpenReply) {
        try lock.withLock {
            record("create")
            let n = try add(parent, name, mode: S_IFREG | (mode & 0o7777), context: context)
            nextHandle += 1
            return (entry(n), OpenReply(handle: nextHandle))
        }
    }
    func read(inode: InodeNumber, handle: FileHandleID, offset: Int64, size: Int,
              reply: ([UnsafeRawBufferPointer]) -> Void) throws {
        let bytes: [UInt8] = try lock.withLock {
            record("read")
            let data = try node(inode).data
            guard offset < data.count else { return [] }
            return Array(data[Int(offset)..<min(data.count, Int(offset) + size)])
        }
        // Two buffers when there is more than a byte, so the FUSE layer's vector reply is exercised.
        bytes.withUnsafeBytes { all in
            let half = all.count / 2
            reply(all.count > 1 ? [UnsafeRawBufferPointer(rebasing: all[..<half]), UnsafeRawBufferPointer(rebasing: all[half...])] : [all])
        }
    }
    func write(inode: InodeNumber, handle: FileHandleID, offset: Int64, data: UnsafeRawBufferPointer) throws -> Int {
        try lock.withLock {
            record("write")
            let n = try node(inode)
            let end = Int(offset) + data.count
            if n.data.count < end { n.data += [UInt8](repeating: 0, count: end - n.data.count) }
            n.data.replaceSubrange(Int(offset)..<end, with: data)
            return data.count
        }
    }
    func flush(inode: InodeNumber, handle: FileHandleID) throws { lock.withLock { record("flush") } }
    func release(inode: InodeNumber, handle: FileHandleID) throws { lock.withLock { record("release") } }
    func fsync(inode: InodeNumber, handle: FileHandleID, dataOnly: Bool) throws { lock.withLock { record("fsync") } }
    func opendir(inode: InodeNumber, context: RequestContext) throws -> OpenReply {
        try lock.withLock {
            record("opendir")
            _ = try folder(inode)
            nextHandle += 1
            return OpenReply(handle: nextHandle)
        }
    }
    func readdir(inode: InodeNumber, handle: FileHandleID, offset: Int64, plus: Bool,
                 add: (DirectoryEntry) -> Bool) throws {
        // Snapshot under the lock, then hand out without it (add may call back into forget? no,
        // but keep the lock short as the real filesystem would).
        let list: [(String, Node, Bool)] = try lock.withLock {
            record(plus ? "readdirplus" : "readdir")
            let f = try folder(inode)
            var l: [(String, Node, Bool)] = [(".", f, true), ("..", try node(f.parent), true)]
            for (name, ino) in f.children.sorted(by: { $0.key < $1.key }) { l.append((name, try node(ino), false)) }
            return l
        }
        var index = Int(offset)
        while index < list.count {
            let (name, n, dots) = list[index]
            let e: EntryReply? = (plus && !dots)
                ? EntryReply(attributes: lock.withLock { attributes(n) }, entryTimeout: 0, attributeTimeout: 0) : nil
            let accepted = add(DirectoryEntry(name: name, inode: n.inode, mode: n.mode, nextOffset: Int64(index + 1), entry: e))
            if !accepted { break }
            if e != nil { lock.withLock { lookupCounts[n.inode, default: 0] += 1 } }
            index += 1
        }
    }
    func releasedir(inode: InodeNumber, handle: FileHandleID) { lock.withLock { record("releasedir") } }
    func statfs(inode: InodeNumber) throws -> FileSystemStatistics {
        lock.withLock { record("statfs") }
        return statistics
    }
    func setxattr(inode: InodeNumber, name: String, value: [UInt8], flags: Int32, context: RequestContext) throws {
        try lock.withLock {
            record("setxattr")
            guard name.hasPrefix("user.") else { throw FSError(ENOTSUP) }
            let n = try node(inode)
            if flags & xattrCreate != 0 && n.xattrs[name] != nil { throw FSError(EEXIST) }
            if flags & xattrReplace != 0 && n.xattrs[name] == nil { throw FSError(ENODATA) }
            n.xattrs[name] = value
        }
    }
    func getxattr(inode: InodeNumber, name: String) throws -> [UInt8] {
        try lock.withLock {
            record("getxattr")
            guard name.hasPrefix("user.") else { throw FSError(ENOTSUP) }
            guard let v = try node(inode).xattrs[name] else { throw FSError(ENODATA) }
            return v
        }
    }
    func listxattr(inode: InodeNumber) throws -> [String] {
        try lock.withLock {
            record("listxattr")
            return try node(inode).xattrs.keys.sorted()
        }
    }
    func removexattr(inode: InodeNumber, name: String, context: RequestContext) throws {
        try lock.withLock {
            record("removexattr")
            let n = try node(inode)
            guard n.xattrs.removeValue(forKey: name) != nil else { throw FSError(ENODATA) }
        }
    }
    func access(inode: InodeNumber, mask: Int32, context: RequestContext) throws {
        try lock.withLock {
            record("access")
            _ = try node(inode)
        }
    }
    func shutdown(grace: Double) {
        lock.withLock { record("shutdown"); shutdownGraces.append(grace) }
    }
}
