// Names: lookup, readdir, mkdir, rmdir, unlink, rename, symlink. Invariants: an error of the
// control plane maps to its errno; each mutation patches the caches (and the pending index)
// before returning; a folder's readdir cookies index a per-handle snapshot taken at offset 0, so
// they stay valid while the folder changes.
//
// rename over an existing file: a pending (spooled) source is retargeted to upload as a new
// version of the target node (UploadRequest(nodeId:)); a remote source is moved after the target
// is deleted (the protocol has no replace-on-rename and no server-side copy; the deleted target
// stays in the server's trash if the move then fails).
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import RosetClient

extension RosetFileSystem {
    public func lookup(parent: InodeNumber, name: String, context: RequestContext) throws -> EntryReply {
        if name.utf8.count > 255 { throw FSError(ENAMETOOLONG) }
        let parentId = try folderId(parent)
        try authorize(.execute, on: parent, context: context)
        if name == "." { return entryReply(key: parentId, attributes: try attributes(forKey: parentId, inode: 0)) }
        guard let child = try findChild(parentId, name) else { throw FSError(ENOENT) }
        return entryReply(child)
    }

    public func forget(inode: InodeNumber, lookups: UInt64) {
        inodes.forget(inode, lookups: lookups)
        if inodes.key(of: inode) == nil { pendingIndex.forgetOpens(inode: inode) }
    }

    public func getattr(inode: InodeNumber, handle: FileHandleID?) throws -> AttributeReply {
        do {
            if unlinkedEntry(handle) == nil {
                let key = try key(of: inode)
                return AttributeReply(attributes: try attributes(forKey: key, inode: inode), timeout: config.cacheTTL)
            }
        } catch let error as FSError where error.errno == ENOENT {
            // fstat comes without a handle: an unlinked file still open for writing answers from its entry.
            guard let file = openHandles.writers(of: inode).first(where: { f in f.entry.map { e in e.cond.withLock { e.unlinked } } ?? false }),
                  let e = file.entry else { throw error }
            return unlinkedAttributes(e, inode: inode)
        }
        return unlinkedAttributes(unlinkedEntry(handle)!, inode: inode)
    }

    /// What an unlinked file still open shows: its spooled size and times, no links.
    private func unlinkedAttributes(_ e: SpoolEntry, inode: InodeNumber) -> AttributeReply {
        var attributes = attributes(of: e, inode: inode)
        attributes.linkCount = 0
        return AttributeReply(attributes: attributes, timeout: 0)
    }

    public func readlink(inode: InodeNumber) throws -> String {
        let key = try key(of: inode)
        var metadata: [String: JSONValue]
        if let e = pending(key: key) {
            metadata = e.cond.withLock { e.record.metadata ?? [:] }
            if let id = e.cond.withLock({ e.record.target.nodeId }), let n = cache.lastKnownNode(id) {
                metadata.merge(n.metadata) { own, _ in own }
            }
        } else {
            metadata = try currentNode(try settled(key)).metadata
        }
        guard PosixMetadata.isSymlink(metadata), let target = metadata[PosixMetadata.symlinkTarget]?.stringValue else {
            throw FSError(EINVAL)
        }
        return target
    }

    // MARK: folders

    public func mkdir(parent: InodeNumber, name: String, mode: UInt32, context: RequestContext) throws -> EntryReply {
        try checkWritable()
        try Self.checkName(name)
        let parentId = try folderId(parent)
        try authorize([.write, .execute], on: parent, context: context)
        if try findChild(parentId, name) != nil { throw FSError(EEXIST) }
        let metadata = try ownershipMetadata(mode: mode, isFolder: true, parent: parent, context: context)
        let node = try remote("mkdir") {
            try controlPlane.createFolder(name: name, parentId: parentId, metadata: metadata)
        }
        cache.store(node)
        cache.touchFolder(parentId)
        // A folder this mount just made is empty: caching that listing answers the lookups of
        // the names about to be created in it locally, instead of one resolve round trip each.
        cache.storeListing(node.id, children: [], permanent: false, observed: cache.changeCount)
        return entryReply(.remote(node))
    }

    /// The children of a folder as this mount sees them: the listing (cached or fetched; a
    /// committed folder through its manifest, cached without expiry) with pending files laid over.
    func listChildren(_ folderId: String, fresh: Bool = false) throws -> [(name: String, child: Child)] {
        // Pending files first: an upload that completes meanwhile has put its node into the
        // listing before it leaves the pending index, so it is in one of the two.
        let pendingFiles = pendingChildren(of: folderId)
        var nodes: [Node] = []
        var cached = false
        if !fresh, let listing = cache.listing(folderId) {
            nodes = listing.compactMap { cache.node($0.id) }
            // A child's node dropped or expired since (found deleted, invalidated): the listing
            // is stale; fetch it again.
            cached = nodes.count == listing.count
        }
        if !cached {
            let folder = try currentNode(folderId)
            let observed = cache.changeCount
            var fetched: [Node]?
            if folder.isCommitted {
                do { fetched = try controlPlane.manifest(of: folderId) }
                catch { logger.warning("manifest of \(folderId) failed, listing children instead: \(error)") }
            }
            if fetched == nil { fetched = try remote("list children") { try controlPlane.children(of: folderId) } }
            // A name this mount removed (or found absent) within the TTL stays absent, as lookup
            // says: the server may still list it for a moment, e.g. the node an upload's init
            // made for a file unlinked meanwhile, until the uploader deletes it.
            nodes = fetched!.filter { isUsable($0, in: folderId) && !cache.isKnownAbsent(folderId, name: $0.name) }
            cache.storeListing(folderId, children: nodes, permanent: folder.isCommitted, observed: observed)
        }
        var result: [(name: String, child: Child)] = []
        var index: [String: Int] = [:]
        for node in nodes where index[node.name] == nil {
            index[node.name] = result.count
            result.append((node.name, pending(key: node.id).map { .pending($0) } ?? .remote(node)))
        }
        for (e, name) in pendingFiles {
            if let i = index[name] { result[i].child = .pending(e) }
            else { index[name] = result.count; result.append((name, .pending(e))) }
        }
        return result
    }

    public func rmdir(parent: InodeNumber, name: String, context: RequestContext) throws {
        try checkWritable()
        if name.utf8.count > 255 { throw FSError(ENAMETOOLONG) }
        let parentId = try folderId(parent)
        try authorize(.execute, on: parent, context: context)
        guard let child = try findChild(parentId, name) else { throw FSError(ENOENT) }
        guard case .remote(let node) = child, node.type == .folder else { throw FSError(ENOTDIR) }
        try authorizeRemoval(of: child, in: parent, context: context)
        if !(try listChildren(node.id, fresh: true)).isEmpty { throw FSError(ENOTEMPTY) }
        try remote("rmdir") { try controlPlane.deleteNode(id: node.id) }
        cache.removeChild(parentId, name: name)
        cache.touchFolder(parentId)
        cache.removeNode(node.id)
    }

    /// Deletes `child` at the control plane: a stored node, or a pending file (its upload is
    /// cancelled first, and a node that upload already created is deleted too; ENOENT there means
    /// it is gone already). The caller updates the folder's listing.
    func delete(_ child: Child, reason: String, call: String) throws {
        switch child {
        case .remote(let node):
            try remote(call) { try controlPlane.deleteNode(id: node.id) }
            cache.removeNode(node.id)
        case .pending(let e):
            if let nodeId = cancel(e, reason: reason) {
                do { try remote(call) { try controlPlane.deleteNode(id: nodeId) } }
                catch let err as FSError where err.errno == ENOENT {}
                cache.removeNode(nodeId)
            }
        }
    }

    // MARK: files

    public func unlink(parent: InodeNumber, name: String, context: RequestContext) throws {
        try checkWritable()
        if name.utf8.count > 255 { throw FSError(ENAMETOOLONG) }
        let parentId = try folderId(parent)
        try authorize(.execute, on: parent, context: context)
        guard let child = try findChild(parentId, name) else { throw FSError(ENOENT) }
        if child.isFolder { throw FSError(EISDIR) }
        try authorizeRemoval(of: child, in: parent, context: context)
        try delete(child, reason: "unlinked", call: "unlink")
        cache.removeChild(parentId, name: name)
        cache.touchFolder(parentId)
    }

    /// Cancels a live entry (unlink, replaced by a rename). Returns the node id the entry's
    /// file has on the server (pre-existing, or created by its init), if any.
    @discardableResult
    func cancel(_ e: SpoolEntry, reason: String, waitForInit: Bool = false) -> String? {
        e.cond.lock()
        // By default not waiting for an init in flight: the uploader deletes the node it made
        // when it sees the cancel. A caller that reuses the node (rename over) waits for it.
        while e.phase == .completing || e.materializing || (waitForInit && e.initInFlight) { e.cond.wait() }
        let nodeId = e.record.target.nodeId
        guard e.isLive else { e.cond.unlock(); return nodeId }
        let token = e.record.upload?.token
        let wasDraining = e.phase == .queued || e.phase == .uploading
        e.generation += 1
        e.phase = .cancelled
        e.unlinked = true
        let keepData = e.writers > 0
        let size = e.record.size
        e.cond.broadcast()
        e.cond.unlock()
        unregister(e)
        if wasDraining { budget.drainEnded() }
        if !keepData {
            e.removeFiles(spool)
            budget.release(size)
        }
        logger.debug("spool entry cancelled", metadata: ["entry": "\(e.id)", "reason": "\(reason)"])
        if let token { try? controlPlane.abortUpload(token: token) }
        return nodeId
    }

    public func symlink(target: String, parent: InodeNumber, name: String, context: RequestContext) throws -> EntryReply {
        try checkWritable()
        try Self.checkName(name)
        if target.utf8.count > 4095 || target.isEmpty { throw FSError(target.isEmpty ? ENOENT : ENAMETOOLONG) }
        let parentId = try folderId(parent)
        try authorize([.write, .execute], on: parent, context: context)
        if try findChild(parentId, name) != nil { throw FSError(EEXIST) }
        var metadata = try ownershipMetadata(mode: 0o777, isFolder: false, parent: parent, context: context)
        metadata[PosixMetadata.type] = .string("symlink")
        metadata[PosixMetadata.symlinkTarget] = .string(target)
        return try createEmptyNode(parentId: parentId, name: name, metadata: metadata)
    }

    /// A sealed empty spool entry carrying `metadata` (symlinks, special files).
    private func createEmptyNode(parentId: String, name: String, metadata: [String: JSONValue]) throws -> EntryReply {
        let e = try newEntry(target: SpoolTarget(parentId: parentId, name: name), metadata: metadata, materialized: true)
        e.cond.lock()
        do { try seal(e) } catch { e.cond.unlock(); _ = cancel(e, reason: "seal failed"); throw error }
        e.cond.unlock()
        cache.clearAbsent(parentId, name: name)
        cache.touchFolder(parentId)
        return entryReply(.pending(e))
    }

    /// A regular file is an empty new file; a FIFO, socket or device node is an empty node whose
    /// type and device number live in its metadata (the kernel, not the daemon, serves its opens).
    public func mknod(parent: InodeNumber, name: String, mode: UInt32, rdev: UInt64, context: RequestContext) throws -> EntryReply {
        let format = mode & UInt32(S_IFMT)
        if format != UInt32(S_IFREG) && format != 0 {
            guard let typeName = PosixMetadata.specialTypeName(format: format) else { throw FSError(EINVAL) }
            try checkWritable()
            try Self.checkName(name)
            let parentId = try folderId(parent)
            try authorize([.write, .execute], on: parent, context: context)
            if try findChild(parentId, name) != nil { throw FSError(EEXIST) }
            var metadata = try ownershipMetadata(mode: mode & 0o7777, isFolder: false, parent: parent, context: context)
            metadata[PosixMetadata.type] = .string(typeName)
            if format == UInt32(S_IFCHR) || format == UInt32(S_IFBLK) { metadata[PosixMetadata.rdev] = .string(String(rdev)) }
            return try createEmptyNode(parentId: parentId, name: name, metadata: metadata)
        }
        let (entry, open) = try create(parent: parent, name: name, mode: mode, flags: O_WRONLY | O_EXCL, context: context)
        try release(inode: entry.attributes.inode, handle: open.handle)
        return entry
    }

    // MARK: rename

    public func rename(parent: InodeNumber, name: String, newParent: InodeNumber, newName: String, flags: UInt32,
                       context: RequestContext) throws {
        try checkWritable()
        if flags & renameExchange != 0 || flags & ~(renameNoReplace | renameExchange) != 0 { throw FSError(EINVAL) }
        if name.utf8.count > 255 { throw FSError(ENAMETOOLONG) }
        try Self.checkName(newName)
        let srcParent = try folderId(parent)
        let dstParent = try folderId(newParent)
        guard let src = try findChild(srcParent, name) else {
            logger.debug("rename: source not found", metadata: ["name": "\(name)"])
            throw FSError(ENOENT)
        }
        try authorizeRemoval(of: src, in: parent, context: context)
        try authorize([.write, .execute], on: newParent, context: context)
        if config.checksAccess, src.isFolder, srcParent != dstParent {
            // A folder that moves has its `..` entry rewritten: it must be writable.
            try AccessPolicy.check(.write, on: nodeAccess(src), by: Caller(context))
        }
        if srcParent == dstParent && name == newName { return }
        let dst = try findChild(dstParent, newName)
        if let dst { try authorizeRemoval(of: dst, in: newParent, context: context) }
        if src.isFolder {
            try checkNotInside(folder: src.key, destination: dstParent)
        }
        if let dst {
            if flags & renameNoReplace != 0 { throw FSError(EEXIST) }
            if src.key == dst.key { return }
            if src.isFolder && !dst.isFolder { throw FSError(ENOTDIR) }
            if !src.isFolder && dst.isFolder { throw FSError(EISDIR) }
            if dst.isFolder, !(try listChildren(dst.key, fresh: true)).isEmpty { throw FSError(ENOTEMPTY) }
        }
        if case .pending(let e) = src, let moved = try renamePending(e, from: (srcParent, name), to: (dstParent, newName), over: dst) {
            cache.removeChild(srcParent, name: name)
            cache.clearAbsent(dstParent, name: newName)
            if let node = moved { cache.store(node) }
            cache.touchFolder(srcParent)
            cache.touchFolder(dstParent)
            return
        }
        // A remote node (or a pending new version of one): replace the target, then move.
        let nodeId = src.key
        if let dst {
            try delete(dst, reason: "replaced by rename", call: "rename: delete target")
            cache.removeChild(dstParent, name: newName)
        }
        let node = try remote("rename") {
            try controlPlane.updateNode(id: nodeId, parentId: srcParent == dstParent ? nil : dstParent,
                                        name: name == newName ? nil : newName, metadata: nil)
        }
        if case .pending(let e) = src {
            e.cond.lock()
            // An entry that finished meanwhile is out of the index and its records are gone:
            // writing a record or indexing it again would leave a stray record and a dead entry.
            if e.isLive {
                e.record.target.parentId = dstParent
                e.record.target.name = newName
                try? e.persist(spool, state: e.record.state, durable: e.record.state != .open, now: now)
                reindex(e, target: e.record.target)
            }
            e.cond.unlock()
        }
        cache.removeChild(srcParent, name: name)
        cache.store(node)
        cache.touchFolder(srcParent)
        cache.touchFolder(dstParent)
    }

    /// EINVAL when `destination` is `folder` or inside it.
    private func checkNotInside(folder: String, destination: String) throws {
        var current: String? = destination
        var steps = 0
        while let id = current, id != rootId, steps < 4096 {
            if id == folder { throw FSError(EINVAL) }
            current = try (cache.lastKnownNode(id) ?? currentNode(id)).parentId
            steps += 1
        }
    }

    /// Renames a spooled file that is not (yet) a pre-existing node. Returns nil when the entry
    /// turned out to be something else (completed meanwhile; the caller moves the node), else
    /// the node the server now has for it, if any.
    private func renamePending(_ e: SpoolEntry, from: (String, String), to: (String, String), over dst: Child?) throws -> Node?? {
        e.cond.lock()
        // An init in flight is not waited for: the uploader moves or drops the node it creates.
        while e.phase == .completing || e.materializing { e.cond.wait() }
        let ownsNode = e.record.target.nodeId == nil || e.record.target.createdByUpload
        guard e.isLive, ownsNode else { e.cond.unlock(); return nil }
        e.cond.unlock()

        // What the entry becomes: a new version of the target file, or a new file at the new name.
        var replacedNode: Node?
        switch dst {
        case .remote(let n)?: replacedNode = n
        case .pending(let d)?:
            if let id = cancel(d, reason: "replaced by rename", waitForInit: true) {
                if d.cond.withLock({ d.record.target.createdByUpload }), (try? controlPlane.node(id: id)) == nil {
                    // That node existed only through d's first upload, which the cancel just
                    // aborted (the server drops a node that never got content): there is nothing
                    // to become a version of, so the entry takes the name (saving twice while the
                    // first save uploads).
                    cache.removeNode(id)
                } else {
                    replacedNode = cache.lastKnownNode(id) ?? Node(id: id, parentId: to.0, name: to.1, type: .file)
                }
            }
        case nil: break
        }

        e.cond.lock()
        while e.phase == .completing || e.materializing { e.cond.wait() }
        guard e.isLive else { e.cond.unlock(); return nil }
        let oldKey = e.key
        var target = e.record.target
        var toDelete: String?
        var movedNode: Node?
        if let replacedNode {
            // Our own pending node (from init) gives way to the target's node.
            if target.createdByUpload, let own = target.nodeId { toDelete = own }
            target = SpoolTarget(parentId: to.0, name: to.1, nodeId: replacedNode.id, createdByUpload: false,
                                 baseEtag: replacedNode.etag, baseVersionId: replacedNode.versionId, baseSize: replacedNode.size)
        } else {
            target.parentId = to.0
            target.name = to.1
        }
        let restart = replacedNode != nil && (e.phase == .uploading || e.record.upload != nil || e.initInFlight)
        let token = restart ? e.record.upload?.token : nil
        if restart {
            e.generation += 1
            e.forgetUploadSession()
            if e.phase == .uploading { e.phase = .queued }
        }
        let moveOwnNode = replacedNode == nil && target.createdByUpload ? target.nodeId : nil
        // The new target is visible at once: an init in flight sees it when it returns and
        // moves (or drops) the node it created.
        e.record.target = target
        do { try e.persist(spool, state: e.record.state, durable: e.record.state != .open, now: now) }
        catch { logger.error("rename: journal record not written: \(error)") }
        reindex(e, target: target)
        let newKey = e.key
        let requeue = restart && e.phase == .queued
        e.cond.unlock()

        if let moveOwnNode {
            // Init already created the node under the old name: move it on the server.
            movedNode = try remote("rename") {
                try controlPlane.updateNode(id: moveOwnNode, parentId: from.0 == to.0 ? nil : to.0,
                                            name: from.1 == to.1 ? nil : to.1, metadata: nil)
            }
        }
        if newKey != oldKey {
            pendingIndex.rekey(e, from: oldKey, to: newKey)
            inodes.rekey(from: oldKey, to: newKey)
        }
        if let token { try? controlPlane.abortUpload(token: token) }
        if let toDelete {
            logger.debug("rename: own pending node gives way", metadata: ["node": "\(toDelete)", "to": "\(newKey)"])
            try? controlPlane.deleteNode(id: toDelete)
            cache.removeNode(toDelete)
        }
        if requeue { uploader.enqueue(e) }
        return .some(movedNode)
    }

    // MARK: readdir

    public func opendir(inode: InodeNumber, context: RequestContext) throws -> OpenReply {
        _ = try folderId(inode)
        try authorize(.read, on: inode, context: context)
        let handle = DirectoryHandle(inode: inode)
        return OpenReply(handle: openHandles.add(handle), keepCache: false)
    }

    public func readdir(inode: InodeNumber, handle: FileHandleID, offset: Int64, plus: Bool,
                        add: (DirectoryEntry) -> Bool) throws {
        let folder = try folderId(inode)
        guard let dir = openHandles.directory(handle) else { throw FSError(EBADF) }
        var items = dir.lock.withLock { offset == 0 ? nil : dir.items }
        if items == nil {
            let children = try listChildren(folder)
            items = [DirectoryHandle.Item(name: ".", child: nil), DirectoryHandle.Item(name: "..", child: nil)]
                + children.map { DirectoryHandle.Item(name: $0.name, child: $0.child) }
            dir.lock.withLock { dir.items = items }
        }
        guard let items, offset >= 0 else { return }
        var index = Int(offset)
        while index < items.count {
            let item = items[index]
            let next = Int64(index + 1)
            let accepted: Bool
            if let child = item.child {
                var attrs = attributes(of: child, inode: 0)
                if plus {
                    let entry = entryReply(key: child.key, attributes: attrs)
                    accepted = add(DirectoryEntry(name: item.name, inode: entry.attributes.inode, mode: entry.attributes.mode,
                                                  nextOffset: next, entry: entry))
                    if !accepted { inodes.forget(entry.attributes.inode, lookups: 1) }
                } else {
                    attrs.inode = inodes.peek(child.key)
                    accepted = add(DirectoryEntry(name: item.name, inode: attrs.inode, mode: attrs.mode, nextOffset: next, entry: nil))
                }
            } else {
                // `.` and `..`: not counted as lookups.
                let key = item.name == "." ? folder : ((try? currentNode(folder))?.parentId ?? folder)
                let selfKey = folder == rootId ? folder : key
                var attrs = (try? attributes(forKey: selfKey, inode: 0))
                    ?? FileAttributes(inode: 0, size: 0, mode: UInt32(S_IFDIR) | config.effectiveDirMode, linkCount: 2,
                                      uid: config.uid, gid: config.gid, accessTime: timespec(), modificationTime: timespec(),
                                      changeTime: timespec())
                attrs.inode = item.name == "." ? inode : (folder == rootId ? rootInode : (inodes.existingInode(for: key) ?? rootInode))
                let entry = plus ? EntryReply(attributes: attrs, entryTimeout: 0, attributeTimeout: 0) : nil
                accepted = add(DirectoryEntry(name: item.name, inode: attrs.inode, mode: attrs.mode, nextOffset: next, entry: entry))
            }
            if !accepted { return }
            index += 1
        }
    }

    public func releasedir(inode: InodeNumber, handle: FileHandleID) {
        openHandles.removeDirectory(handle)
    }
}
