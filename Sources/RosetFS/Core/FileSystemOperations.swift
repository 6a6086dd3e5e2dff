// The contract between the FUSE layer (RosetFUSE) and the filesystem core (RosetFS).
// RosetFUSE translates each low-level FUSE request into exactly one call here and the result
// into one fuse_reply_*; it knows nothing else about RosetFS. Every method may be called
// concurrently from libfuse's worker threads and may block. Errors are `FSError(errno)`.
#if canImport(Glibc)
import Glibc
#endif

public typealias InodeNumber = UInt64
public typealias FileHandleID = UInt64

/// The root folder's inode, as FUSE fixes it.
public let rootInode: InodeNumber = 1

public struct FSError: Error, Sendable, Hashable, CustomStringConvertible {
    public var errno: Int32
    public init(_ errno: Int32) { self.errno = errno }
    public var description: String { "errno \(errno) (\(String(cString: strerror(errno))))" }
}

/// What `stat` shows.
public struct FileAttributes: Sendable, Hashable {
    public var inode: InodeNumber
    public var size: Int64
    /// File type and permission bits, as in `st_mode` (S_IFREG | 0o644, ...).
    public var mode: UInt32
    public var linkCount: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var accessTime: timespec
    public var modificationTime: timespec
    public var changeTime: timespec
    public var blockSize: UInt32

    public init(inode: InodeNumber, size: Int64, mode: UInt32, linkCount: UInt32, uid: UInt32, gid: UInt32,
                accessTime: timespec, modificationTime: timespec, changeTime: timespec, blockSize: UInt32 = 4096) {
        self.inode = inode; self.size = size; self.mode = mode; self.linkCount = linkCount
        self.uid = uid; self.gid = gid; self.accessTime = accessTime
        self.modificationTime = modificationTime; self.changeTime = changeTime; self.blockSize = blockSize
    }

    public static func == (a: FileAttributes, b: FileAttributes) -> Bool {
        a.inode == b.inode && a.size == b.size && a.mode == b.mode && a.linkCount == b.linkCount
            && a.uid == b.uid && a.gid == b.gid && a.blockSize == b.blockSize
            && a.accessTime.tv_sec == b.accessTime.tv_sec && a.accessTime.tv_nsec == b.accessTime.tv_nsec
            && a.modificationTime.tv_sec == b.modificationTime.tv_sec
            && a.modificationTime.tv_nsec == b.modificationTime.tv_nsec
            && a.changeTime.tv_sec == b.changeTime.tv_sec && a.changeTime.tv_nsec == b.changeTime.tv_nsec
    }
    public func hash(into h: inout Hasher) { h.combine(inode); h.combine(size); h.combine(mode) }
}

/// Attributes plus how long the kernel may cache them (seconds).
public struct AttributeReply: Sendable, Hashable {
    public var attributes: FileAttributes
    public var timeout: Double
    public init(attributes: FileAttributes, timeout: Double) { self.attributes = attributes; self.timeout = timeout }
}

/// A name → inode binding for the kernel. Every EntryReply handed to the kernel counts one
/// lookup on its inode, which the kernel later returns through `forget`.
public struct EntryReply: Sendable, Hashable {
    public var attributes: FileAttributes
    public var generation: UInt64
    public var entryTimeout: Double
    public var attributeTimeout: Double
    public init(attributes: FileAttributes, generation: UInt64 = 0, entryTimeout: Double, attributeTimeout: Double) {
        self.attributes = attributes; self.generation = generation
        self.entryTimeout = entryTimeout; self.attributeTimeout = attributeTimeout
    }
}

public struct OpenReply: Sendable, Hashable {
    public var handle: FileHandleID
    /// FOPEN_KEEP_CACHE: the object is unchanged since the kernel last cached its pages.
    public var keepCache: Bool
    public var directIO: Bool
    public init(handle: FileHandleID, keepCache: Bool = false, directIO: Bool = false) {
        self.handle = handle; self.keepCache = keepCache; self.directIO = directIO
    }
}

public enum TimeChange: Sendable, Hashable {
    case now
    case set(seconds: Int, nanoseconds: Int)
}

/// The fields of a setattr request that are present.
public struct AttributeChanges: Sendable, Hashable {
    public var mode: UInt32?
    public var uid: UInt32?
    public var gid: UInt32?
    public var size: Int64?
    public var accessTime: TimeChange?
    public var modificationTime: TimeChange?
    public init(mode: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil, size: Int64? = nil,
                accessTime: TimeChange? = nil, modificationTime: TimeChange? = nil) {
        self.mode = mode; self.uid = uid; self.gid = gid; self.size = size
        self.accessTime = accessTime; self.modificationTime = modificationTime
    }
}

/// Who is asking (from fuse_req_ctx).
public struct RequestContext: Sendable, Hashable {
    public var uid: UInt32
    public var gid: UInt32
    public var pid: Int32
    public var umask: UInt32
    public init(uid: UInt32, gid: UInt32, pid: Int32, umask: UInt32 = 0o022) {
        self.uid = uid; self.gid = gid; self.pid = pid; self.umask = umask
    }
}

/// One readdir entry. `nextOffset` is the cookie the kernel passes back to continue after this
/// entry; it stays valid while the folder changes. `entry` is set for readdirplus.
public struct DirectoryEntry: Sendable, Hashable {
    public var name: String
    public var inode: InodeNumber
    public var mode: UInt32
    public var nextOffset: Int64
    public var entry: EntryReply?
    public init(name: String, inode: InodeNumber, mode: UInt32, nextOffset: Int64, entry: EntryReply?) {
        self.name = name; self.inode = inode; self.mode = mode; self.nextOffset = nextOffset; self.entry = entry
    }
}

public struct FileSystemStatistics: Sendable, Hashable {
    public var blockSize: UInt64
    public var fragmentSize: UInt64
    public var totalBlocks: UInt64
    public var freeBlocks: UInt64
    public var availableBlocks: UInt64
    public var totalFiles: UInt64
    public var freeFiles: UInt64
    public var maxNameLength: UInt64
    public init(blockSize: UInt64, fragmentSize: UInt64, totalBlocks: UInt64, freeBlocks: UInt64,
                availableBlocks: UInt64, totalFiles: UInt64, freeFiles: UInt64, maxNameLength: UInt64) {
        self.blockSize = blockSize; self.fragmentSize = fragmentSize; self.totalBlocks = totalBlocks
        self.freeBlocks = freeBlocks; self.availableBlocks = availableBlocks; self.totalFiles = totalFiles
        self.freeFiles = freeFiles; self.maxNameLength = maxNameLength
    }
}

/// RENAME_NOREPLACE / RENAME_EXCHANGE from <linux/fs.h>.
public let renameNoReplace: UInt32 = 1
public let renameExchange: UInt32 = 2

public protocol FileSystemOperations: AnyObject, Sendable {
    func lookup(parent: InodeNumber, name: String) throws -> EntryReply
    func forget(inode: InodeNumber, lookups: UInt64)
    func getattr(inode: InodeNumber, handle: FileHandleID?) throws -> AttributeReply
    func setattr(inode: InodeNumber, changes: AttributeChanges, handle: FileHandleID?,
                 context: RequestContext) throws -> AttributeReply
    func readlink(inode: InodeNumber) throws -> String
    func mknod(parent: InodeNumber, name: String, mode: UInt32, rdev: UInt64, context: RequestContext) throws -> EntryReply
    func mkdir(parent: InodeNumber, name: String, mode: UInt32, context: RequestContext) throws -> EntryReply
    func unlink(parent: InodeNumber, name: String) throws
    func rmdir(parent: InodeNumber, name: String) throws
    func symlink(target: String, parent: InodeNumber, name: String, context: RequestContext) throws -> EntryReply
    func rename(parent: InodeNumber, name: String, newParent: InodeNumber, newName: String, flags: UInt32) throws
    func link(inode: InodeNumber, newParent: InodeNumber, newName: String) throws -> EntryReply
    func open(inode: InodeNumber, flags: Int32, context: RequestContext) throws -> OpenReply
    func create(parent: InodeNumber, name: String, mode: UInt32, flags: Int32,
                context: RequestContext) throws -> (EntryReply, OpenReply)
    /// Up to `size` bytes from `offset` (fewer only at the end of the file), handed to `reply`
    /// as buffers valid only during the call, so that a reply can be sent from the block cache
    /// without a copy. `reply` runs exactly once, unless the read throws.
    func read(inode: InodeNumber, handle: FileHandleID, offset: Int64, size: Int,
              reply: ([UnsafeRawBufferPointer]) -> Void) throws
    /// The same, where the caller can also take the bytes as pipes (read ends with a byte count
    /// each, in order): `pipeReply` then runs instead of `reply` and must move exactly those
    /// bytes out of the pipes before it returns (FUSE splices them into the kernel). Exactly one
    /// of the two runs, unless the read throws.
    func read(inode: InodeNumber, handle: FileHandleID, offset: Int64, size: Int,
              reply: ([UnsafeRawBufferPointer]) -> Void, pipeReply: ([(fd: Int32, count: Int)]) -> Void) throws
    func write(inode: InodeNumber, handle: FileHandleID, offset: Int64, data: UnsafeRawBufferPointer) throws -> Int
    func flush(inode: InodeNumber, handle: FileHandleID) throws
    func release(inode: InodeNumber, handle: FileHandleID) throws
    /// Returns once the file's content is durable in the object store.
    func fsync(inode: InodeNumber, handle: FileHandleID, dataOnly: Bool) throws
    func opendir(inode: InodeNumber) throws -> OpenReply
    /// Entries after the cookie `offset` (0 = from the start, `.` and `..` included), handed
    /// to `add` one by one until it returns false (the reply buffer is full). With `plus`, each
    /// entry `add` accepted counts one lookup on its inode (except `.` and `..`).
    func readdir(inode: InodeNumber, handle: FileHandleID, offset: Int64, plus: Bool,
                 add: (DirectoryEntry) -> Bool) throws
    func releasedir(inode: InodeNumber, handle: FileHandleID)
    func statfs(inode: InodeNumber) throws -> FileSystemStatistics
    func setxattr(inode: InodeNumber, name: String, value: [UInt8], flags: Int32) throws
    func getxattr(inode: InodeNumber, name: String) throws -> [UInt8]
    func listxattr(inode: InodeNumber) throws -> [String]
    func removexattr(inode: InodeNumber, name: String) throws
    func access(inode: InodeNumber, mask: Int32, context: RequestContext) throws
    /// The kernel unmounted (FUSE_DESTROY) or the daemon is stopping: stop taking writes, give
    /// pending uploads up to `grace` seconds, leave the rest sealed in the spool.
    func shutdown(grace: Double)
    /// The FUSE layer hands over how to drop the kernel's caches, once the session exists.
    func attachKernelNotifier(_ notifier: KernelCacheNotifier)
}

/// Drops what the kernel caches for this mount (FUSE's notify calls), for content or names that
/// changed elsewhere. Calls may block briefly and must not be made while holding a lock that a
/// request needs. `invalidateEntry` takes the parent folder's lock in the kernel: it must not
/// run inside a request that holds it (create, mkdir, rename, unlink under that folder).
public protocol KernelCacheNotifier: AnyObject, Sendable {
    /// Drops the inode's attributes, and with `pages` its cached pages too.
    func invalidateInode(_ inode: InodeNumber, pages: Bool)
    /// Drops the kernel's entry for `name` in the folder `parent` (the next use looks it up).
    func invalidateEntry(parent: InodeNumber, name: String)
}

extension FileSystemOperations {
    /// A filesystem that never changes behind the kernel's back needs no notifier.
    public func attachKernelNotifier(_ notifier: KernelCacheNotifier) {}

    /// A filesystem without pipe streams answers every read with buffers.
    public func read(inode: InodeNumber, handle: FileHandleID, offset: Int64, size: Int,
                     reply: ([UnsafeRawBufferPointer]) -> Void, pipeReply: ([(fd: Int32, count: Int)]) -> Void) throws {
        try read(inode: inode, handle: handle, offset: offset, size: size, reply: reply)
    }

    /// The bytes of `read(inode:handle:offset:size:reply:)`, copied into an array.
    public func read(inode: InodeNumber, handle: FileHandleID, offset: Int64, size: Int) throws -> [UInt8] {
        var bytes: [UInt8] = []
        try read(inode: inode, handle: handle, offset: offset, size: size) { bytes = [UInt8](joining: $0) }
        return bytes
    }
}

extension Array where Element == UInt8 {
    /// The bytes of a read reply's buffers, in order, copied out of memory that is valid only
    /// during the reply.
    init(joining buffers: [UnsafeRawBufferPointer]) {
        self.init()
        reserveCapacity(buffers.reduce(0) { $0 + $1.count })
        for buffer in buffers { append(contentsOf: buffer) }
    }
}
