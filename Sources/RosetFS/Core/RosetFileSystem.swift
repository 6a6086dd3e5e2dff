// RosetFS's FileSystemOperations over a ControlPlane and an ObjectStore. This file holds the
// shared state and helpers; the operations live in RosetFileSystem+*.swift.
//
// Invariants
// - No lock is held across a network call. Locks: `stateLock` (shutdown flag), the pending
//   index's, the open handles', the caches' and the inode table's own locks are leaves; an
//   entry's `cond` may be held while taking a leaf lock, never the other way round.
// - A file with a live spool entry shows the entry (size, mtime, content): read your own writes.
//   The entry is indexed (PendingIndex) by its inode key(s) and by its (parentId, name) location.
// - Every mutation this mount makes patches the metadata cache before it returns.
// - With subdir=, `rootId` is that folder: it is resolved once, at init, and nothing above it is
//   ever shown (the kernel answers `..` of the mount's root itself, and readdir's `..` of the
//   root names the root).
// - Permissions: RosetFileSystem+Access.swift (ownership rules always; mode bits where the
//   kernel does not check them, on a mount others reach without default_permissions).
//
// Decisions where the issue is silent
// - New files carry `posix.mode` from create/mkdir, and `posix.uid`/`posix.gid` only when the
//   caller differs from the mount's uid=/gid=.
// - A new file whose name was taken on the server by another client before its upload becomes a
//   new version of that node (last close wins), logged.
// - Opening an existing file for writing and closing it without a write uploads nothing.
// - fsync/close-wait report EIO after `attemptsBeforeReporting` consecutive failures; the upload
//   keeps being retried in the background (a 400-class refusal becomes a dead letter).
// - Folders show size 0 and link count 2; symlinks are empty file nodes with posix.type/symlink.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Metrics
import RosetClient
import RosetMetrics

public final class RosetFileSystem: FileSystemOperations, @unchecked Sendable {
    let config: FileSystemConfiguration
    let controlPlane: ControlPlane
    let store: ObjectStore
    let logger: Logger
    let tuning: FileSystemTuning
    let rootId: String
    let inodes: InodeTable
    let cache: MetadataCache
    let spool: Spool
    let budget: SpoolBudget
    let uploader: Uploader
    let blockCache: BlockCache
    /// The persistent data cache below `blockCache`; nil when turned off.
    public let dataCache: DiskDataCache?
    /// Uploaded files waiting to seed `dataCache`.
    let seedBacklog = DataCacheSeedBacklog()

    /// Pending files by key, location and id; spool-key aliases; open signatures.
    let pendingIndex = PendingIndex<SpoolEntry>()
    /// Open files and folders by handle.
    let openHandles = OpenHandles()

    /// Guards `shuttingDown`, `kernelNotifier` and `concurrentWrites`.
    let stateLock = NSLock()
    var shuttingDown = false
    /// Set once by the FUSE layer; nil in tests without a mount.
    var kernelNotifier: KernelCacheNotifier?
    /// Uploads that replaced a version another machine had made since this one was opened.
    var concurrentWrites = 0

    /// Resolves the root (fails on a bad key), takes the spool lock, resumes sealed spool entries.
    public convenience init(configuration: FileSystemConfiguration, controlPlane: ControlPlane, store: ObjectStore,
                            logger: Logger) throws {
        try self.init(configuration: configuration, controlPlane: controlPlane, store: store, logger: logger,
                      tuning: FileSystemTuning())
    }

    init(configuration: FileSystemConfiguration, controlPlane: ControlPlane, store: ObjectStore, logger: Logger,
         tuning: FileSystemTuning) throws {
        config = configuration
        self.controlPlane = controlPlane
        self.store = store
        self.logger = logger
        self.tuning = tuning
        let root = try Self.resolveServedRoot(controlPlane: controlPlane, subdir: configuration.subdir)
        rootId = root.id
        let inodes = InodeTable(rootKey: root.id)
        self.inodes = inodes
        cache = MetadataCache(ttl: configuration.cacheTTL, negativeTTL: configuration.negativeTTL, now: tuning.now,
                              isHeld: { inodes.existingInode(for: $0) != nil })
        cache.store(root)
        blockCache = BlockCache(capacityBytes: max(1, configuration.cacheSizeMB) << 20)
        spool = try Spool(base: configuration.spoolDirectory, apiURL: configuration.apiURL, mountId: configuration.mountId,
                          attach: !configuration.readOnly, onWait: { logger.notice("\($0)") })
        if let base = configuration.dataCacheDirectory, configuration.dataCacheMaxMB != 0 {
            dataCache = DiskDataCache(folder: base + "/" + URL(fileURLWithPath: spool.folder).lastPathComponent,
                                      boundBytes: configuration.dataCacheMaxMB.map { Int64($0) << 20 },
                                      minFreeBytes: configuration.dataCacheMinFreeMB.map { Int64($0) << 20 },
                                      logger: logger)
        } else {
            dataCache = nil
        }
        budget = SpoolBudget(capacityBytes: Int64(max(1, configuration.spoolMaxMB)) << 20)
        let partSize = tuning.partSizeBytes ?? (Int64(max(5, configuration.partSizeMB)) << 20)
        uploader = Uploader(controlPlane: controlPlane, store: store, spool: spool, logger: logger, tuning: tuning,
                            partSize: partSize, concurrency: configuration.uploadConcurrency,
                            uploadDelay: configuration.uploadDelay, streaming: tuning.streamParts)
        uploader.delegate = self
        if !configuration.readOnly {
            recoverSpool()
            uploader.start()
        }
        // Read-only: the spool is not touched (not even created); whatever is spooled waits
        // for the next read-write mount.
    }

    var now: Date { tuning.now() }

    /// The mount's root, or the folder subdir= names under it, walked one name at a time.
    static func resolveServedRoot(controlPlane: ControlPlane, subdir: String?) throws -> Node {
        var node = try controlPlane.resolveRoot()
        guard node.type == .folder else {
            throw SpoolError(description: "the mount root \(node.id) is not a folder")
        }
        guard let subdir else { return node }
        var walked: [Substring] = []
        for name in subdir.split(separator: "/") {
            walked.append(name)
            guard let child = try controlPlane.resolve(name: String(name), in: node.id) else {
                throw SubdirError(description: "subdir=\(subdir): there is no folder /\(walked.joined(separator: "/")) in this mount")
            }
            guard child.type == .folder else {
                throw SubdirError(description: "subdir=\(subdir): /\(walked.joined(separator: "/")) is a file, not a folder")
            }
            node = child
        }
        return node
    }

    public func attachKernelNotifier(_ notifier: KernelCacheNotifier) {
        stateLock.withLock { kernelNotifier = notifier }
    }

    var notifier: KernelCacheNotifier? { stateLock.withLock { kernelNotifier } }

    var concurrentWriteCount: Int { stateLock.withLock { concurrentWrites } }

    // MARK: errors

    /// Runs a control-plane call, turning its failure into the errno a filesystem gives.
    func remote<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let e as RosetError {
            switch e.kind {
            case .notFound: logger.debug("\(what): not found")
            case .decoding: logger.error("\(what): the server's answer does not decode: \(e)")
            default: logger.warning("\(what) failed: \(e)")
            }
            if e.code == "CYCLE_DETECTED" { throw FSError(EINVAL) }
            throw FSError(e.errno)
        } catch let e as FSError {
            throw e
        } catch {
            logger.error("\(what) failed: \(error)")
            throw FSError(EIO)
        }
    }

    func checkWritable() throws {
        if config.readOnly { throw FSError(EROFS) }
        if stateLock.withLock({ shuttingDown }) { throw FSError(EROFS) }
    }

    static func checkName(_ name: String) throws {
        if name.utf8.count > 255 { throw FSError(ENAMETOOLONG) }
        if name.isEmpty || name == "." || name == ".." || name.contains("/") || name.contains("\u{0}") {
            throw FSError(EINVAL)
        }
    }

    /// A server name this host can show; anything else is skipped with a log line.
    func isUsable(_ node: Node, in folderId: String) -> Bool {
        let name = node.name
        if name.isEmpty || name == "." || name == ".." || name.contains("/") || name.contains("\u{0}") || name.utf8.count > 255 {
            logger.warning("skipping a child whose name is not usable here",
                           metadata: ["folder": "\(folderId)", "node": "\(node.id)", "name": "\(name.debugDescription)"])
            return false
        }
        return true
    }

    // MARK: pending index

    func pending(key: String) -> SpoolEntry? { pendingIndex.entry(key: key) }

    func pending(at parentId: String, _ name: String) -> SpoolEntry? { pendingIndex.entry(at: parentId, name) }

    /// Registers a new entry unless another live one already answers to `key`; returns the winner.
    func register(_ entry: SpoolEntry) -> SpoolEntry {
        let target = entry.record.target
        return pendingIndex.register(entry, id: entry.id, key: entry.key, parentId: target.parentId, name: target.name)
    }

    func unregister(_ entry: SpoolEntry, aliasTo nodeId: String? = nil) {
        pendingIndex.unregister(entry, id: entry.id, aliasTo: nodeId)
    }

    /// Re-indexes an entry after its target changed (caller may hold the entry's cond).
    func reindex(_ entry: SpoolEntry, target: SpoolTarget) {
        pendingIndex.move(entry, toParent: target.parentId, name: target.name, nodeId: target.nodeId)
    }

    func pendingChildren(of folderId: String) -> [(entry: SpoolEntry, name: String)] {
        pendingIndex.entries.compactMap { e in
            e.cond.withLock { e.isLive && e.record.target.parentId == folderId ? (e, e.record.target.name) : nil }
        }
    }

    var liveEntries: [SpoolEntry] { pendingIndex.entries }

    // MARK: nodes

    /// A key whose spool entry is gone: the node id its upload became, or ENOENT.
    func settled(_ key: String) throws -> String {
        guard InodeTable.isSpoolKey(key) else { return key }
        guard let alias = pendingIndex.alias(of: key) else { throw FSError(ENOENT) }
        return alias
    }

    func key(of inode: InodeNumber) throws -> String {
        guard let key = inodes.key(of: inode) else { throw FSError(ENOENT) }
        if InodeTable.isSpoolKey(key), let alias = pendingIndex.alias(of: key) {
            inodes.rekey(from: key, to: alias)
            return alias
        }
        return key
    }

    /// The node, from the cache while fresh, else fetched.
    func currentNode(_ id: String) throws -> Node {
        if let n = cache.node(id) {
            Counter(label: RosetMetricNames.metadataCacheHits).increment()
            return n
        }
        Counter(label: RosetMetricNames.metadataCacheMisses).increment()
        do {
            let n = try remote("GET node") { try controlPlane.node(id: id) }
            cache.store(n)
            return n
        } catch let e as FSError where e.errno == ENOENT {
            cache.removeNode(id)
            throw e
        }
    }

    /// The folder id behind `inode`, or ENOTDIR/ENOENT.
    func folderId(_ inode: InodeNumber) throws -> String {
        let key = try key(of: inode)
        if key == rootId { return key }
        if InodeTable.isSpoolKey(key) || pending(key: key) != nil { throw FSError(ENOTDIR) }
        let node = try cache.lastKnownNode(key) ?? currentNode(key)
        guard node.type == .folder else { throw FSError(ENOTDIR) }
        return key
    }

    enum Child {
        case pending(SpoolEntry)
        case remote(Node)

        var key: String {
            switch self {
            case .pending(let e): return e.cond.withLock { e.key }
            case .remote(let n): return n.id
            }
        }
        var isFolder: Bool { if case .remote(let n) = self { return n.type == .folder } else { return false } }
    }

    /// What `name` in `parentId` is: a pending file, a remote node, or nothing.
    func findChild(_ parentId: String, _ name: String) throws -> Child? {
        if let e = pending(at: parentId, name) { return .pending(e) }
        if cache.isKnownAbsent(parentId, name: name) { return nil }
        if let known = cache.childId(parentId, name: name) {
            guard let id = known else { return nil }
            // Stored with the listing or later, so fresh unless forgotten (invalidate).
            if let n = cache.node(id) { return .remote(n) }
        }
        let found = try remote("resolve") { try controlPlane.resolve(name: name, in: parentId) }
        // A pending file may have appeared while we asked.
        if let e = pending(at: parentId, name) { return .pending(e) }
        guard let node = found, isUsable(node, in: parentId) else {
            cache.storeAbsent(parentId, name: name)
            return nil
        }
        if let e = pending(key: node.id) { return .pending(e) }
        cache.store(node)
        return .remote(node)
    }

    // MARK: attributes

    func attributes(of node: Node, inode: InodeNumber) -> FileAttributes {
        let md = node.metadata
        let mtime = PosixMetadata.time(md[PosixMetadata.mtime]) ?? timespecOf(node.updatedAt)
        let atime = PosixMetadata.time(md[PosixMetadata.atime]) ?? mtime
        let ctime = timespecOf(max(node.updatedAt, node.createdAt))
        let uid = PosixMetadata.number(md[PosixMetadata.uid]) ?? config.uid
        let gid = PosixMetadata.number(md[PosixMetadata.gid]) ?? config.gid
        if node.type == .folder {
            let perm = PosixMetadata.number(md[PosixMetadata.mode]).map { $0 & 0o7777 } ?? config.effectiveDirMode
            let links = UInt32(2 + (cache.subfolderCount(node.id) ?? 0))
            return FileAttributes(inode: inode, size: 0, mode: UInt32(S_IFDIR) | perm, linkCount: links, uid: uid, gid: gid,
                                  accessTime: atime, modificationTime: mtime, changeTime: ctime)
        }
        if PosixMetadata.isSymlink(md) {
            let target = md[PosixMetadata.symlinkTarget]?.stringValue ?? ""
            return FileAttributes(inode: inode, size: Int64(target.utf8.count), mode: UInt32(S_IFLNK) | 0o777, linkCount: 1,
                                  uid: uid, gid: gid, accessTime: atime, modificationTime: mtime, changeTime: ctime)
        }
        let perm = PosixMetadata.number(md[PosixMetadata.mode]).map { $0 & 0o7777 } ?? config.effectiveFileMode
        if let format = PosixMetadata.specialFormat(md) {
            var attrs = FileAttributes(inode: inode, size: 0, mode: format | perm, linkCount: 1, uid: uid, gid: gid,
                                       accessTime: atime, modificationTime: mtime, changeTime: ctime)
            attrs.rdev = PosixMetadata.deviceNumber(md)
            return attrs
        }
        return FileAttributes(inode: inode, size: node.size, mode: UInt32(S_IFREG) | perm, linkCount: 1, uid: uid, gid: gid,
                              accessTime: atime, modificationTime: mtime, changeTime: ctime)
    }

    /// A pending file: the entry's size and times over the base node's (or the entry's) metadata.
    func attributes(of entry: SpoolEntry, inode: InodeNumber) -> FileAttributes {
        entry.cond.lock()
        let target = entry.record.target
        let size = entry.record.size
        let modified = entry.explicitMtime ?? (entry.writeCount > 0 || target.nodeId == nil || target.createdByUpload
                                               ? timespecOf(entry.modifiedAt) : nil)
        let created = Date(timeIntervalSince1970: entry.record.createdAt)
        let ownMetadata = entry.record.metadata ?? [:]
        let statusChanged = entry.statusChangedAt
        entry.cond.unlock()
        var base = target.nodeId.flatMap { cache.lastKnownNode($0) }
            ?? Node(id: InodeTable.spoolKey(entry.id), parentId: target.parentId, name: target.name, type: .file,
                    createdAt: created, updatedAt: entry.modifiedAt)
        for (k, v) in ownMetadata { base.metadata[k] = v == .null ? nil : v }
        var attrs = attributes(of: base, inode: inode)
        if !PosixMetadata.isSymlink(base.metadata) && PosixMetadata.specialFormat(base.metadata) == nil { attrs.size = size }
        if let modified {
            attrs.modificationTime = modified
            if base.metadata[PosixMetadata.atime] == nil { attrs.accessTime = modified }
            attrs.changeTime = timespecOf(entry.modifiedAt)
        }
        if let statusChanged {
            let changed = timespecOf(statusChanged)
            if (changed.tv_sec, changed.tv_nsec) > (attrs.changeTime.tv_sec, attrs.changeTime.tv_nsec) { attrs.changeTime = changed }
        }
        return attrs
    }

    func attributes(of child: Child, inode: InodeNumber) -> FileAttributes {
        switch child {
        case .pending(let e): return attributes(of: e, inode: inode)
        case .remote(let n): return attributes(of: n, inode: inode)
        }
    }

    /// Current attributes of whatever `key` is.
    func attributes(forKey key: String, inode: InodeNumber) throws -> FileAttributes {
        if let e = pending(key: key) { return attributes(of: e, inode: inode) }
        return attributes(of: try currentNode(try settled(key)), inode: inode)
    }

    /// Hands an entry for `key` to the kernel (one lookup counted).
    func entryReply(key: String, attributes: FileAttributes) -> EntryReply {
        var attrs = attributes
        attrs.inode = inodes.bind(key)
        return EntryReply(attributes: attrs, entryTimeout: entryTimeout, attributeTimeout: config.cacheTTL)
    }

    func entryReply(_ child: Child) -> EntryReply {
        entryReply(key: child.key, attributes: attributes(of: child, inode: 0))
    }

    // MARK: not supported

    public func link(inode: InodeNumber, newParent: InodeNumber, newName: String) throws -> EntryReply {
        throw FSError(config.readOnly ? EROFS : EPERM)
    }

    public func statfs(inode: InodeNumber) throws -> FileSystemStatistics {
        // Object storage has no fixed capacity: report 1 PiB, mostly free, and plenty of inodes,
        // so df shows believable numbers rather than 0 or an error.
        let blockSize: UInt64 = 4096
        let total: UInt64 = (1 << 50) / blockSize
        let used = UInt64(max(0, budget.used)) / blockSize
        return FileSystemStatistics(blockSize: blockSize, fragmentSize: blockSize, totalBlocks: total,
                                    freeBlocks: total - used, availableBlocks: total - used,
                                    totalFiles: 1 << 32, freeFiles: (1 << 32) - UInt64(inodes.count), maxNameLength: 255)
    }

    public func access(inode: InodeNumber, mask: Int32, context: RequestContext) throws {
        let key = try key(of: inode)
        let attrs = try attributes(forKey: key, inode: inode)
        if mask == F_OK { return }
        if mask & W_OK != 0 && config.readOnly { throw FSError(EROFS) }
        let want = AccessWant(rawValue: UInt32(mask & (R_OK | W_OK | X_OK)))
        try AccessPolicy.check(want, on: NodeAccess(attrs), by: Caller(context))
    }
}

/// subdir= names no folder of the mount: the mount fails with this message.
public struct SubdirError: Error, CustomStringConvertible, Sendable {
    public let description: String
}
