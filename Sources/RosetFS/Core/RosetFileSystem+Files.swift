// File content: open, create, read, write, flush, release, fsync, truncate. Invariants: every
// written byte goes to the entry's spool data file (never only memory); create, write and close
// make no network call (an existing file's content is downloaded once, before the first write
// that needs it); close seals (data fsynced, then a durable journal record) and the uploader
// takes it from there; fsync returns once the upload is confirmed.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Metrics
import RosetClient
import RosetMetrics

extension RosetFileSystem {
    // MARK: entries

    /// Creates a spool entry (data file + `open` record) and indexes it.
    func newEntry(target: SpoolTarget, metadata: [String: JSONValue]?, materialized: Bool, baseSize: Int64 = 0) throws -> SpoolEntry {
        let id = UUID().uuidString.lowercased()
        let data = try spool.createDataFile(id)
        let t = now
        let record = JournalRecord(entryId: id, sequence: 0, state: .open, target: target, size: materialized ? 0 : baseSize,
                                   sha256: nil, metadata: metadata, upload: nil, createdAt: t.timeIntervalSince1970,
                                   updatedAt: t.timeIntervalSince1970, modifiedAt: t.timeIntervalSince1970)
        let entry = SpoolEntry(id: id, record: record, data: data, phase: .writing, materialized: materialized, modifiedAt: t)
        do {
            try spool.write(record, durable: false)
        } catch {
            spool.remove(entryId: id, data: data)
            throw error
        }
        let winner = register(entry)
        if winner !== entry {
            spool.remove(entryId: id, data: data)
            return winner
        }
        return entry
    }

    /// Seals an entry in `.writing` (caller holds its cond): data fsynced, then a durable record.
    func seal(_ e: SpoolEntry) throws {
        guard e.phase == .writing else { return }
        try e.data.sync()
        spool.syncFolder(spool.dataFolder)
        if let sum = e.runningChecksum, sum.count == e.record.size {
            e.record.crc32c = sum.hexDigest()
        } else {
            e.record.crc32c = try e.data.crc32c()
        }
        e.record.sha256 = nil
        e.record.format = JournalRecord.currentFormat
        try e.persist(spool, state: .sealed, durable: true, now: now)
        e.phase = .queued
        e.failedAttempts = 0
        e.reportedFailure = nil
        budget.drainStarted()
        uploader.enqueue(e, size: e.record.size)
    }

    /// Puts a sealed (or uploading) entry back into `.writing` (caller holds cond, not busy).
    func reopen(_ e: SpoolEntry) {
        guard e.phase == .queued || e.phase == .uploading else { return }
        e.generation += 1
        e.phase = .writing
        dropUploadSession(e)
        e.record.crc32c = nil
        e.record.sha256 = nil
        try? e.persist(spool, state: .open, durable: false, now: now)
        budget.drainEnded()
    }

    /// Forgets the entry's upload session, whose parts no longer match the content (caller holds
    /// cond; persisting is the caller's business).
    func dropUploadSession(_ e: SpoolEntry) {
        // Aborting the upload whose init created the node would make the server drop that node
        // (it never got content), and the next attempt's init(nodeId:) would find nothing: such
        // a token is left to expire instead.
        let token = e.record.target.createdByUpload ? nil : e.record.upload?.token
        e.forgetUploadSession()
        if let token {
            let cp = controlPlane
            DispatchQueue.global().async { try? cp.abortUpload(token: token) }
        }
    }

    /// The entry that writes to the file behind `key` go to, with one more writer attached.
    func attachWriter(key: String, truncate: Bool) throws -> SpoolEntry {
        while true {
            if let e = pending(key: key) {
                e.cond.lock()
                e.waitWhileBusy()
                if !e.isLive {
                    // A finished entry left in the index would make this loop spin forever.
                    e.cond.unlock()
                    unregister(e)
                    continue
                }
                reopen(e)
                e.writers += 1
                if truncate {
                    do { try truncateLocked(e, to: 0) } catch { e.writers -= 1; e.cond.unlock(); throw error }
                }
                e.cond.unlock()
                return e
            }
            if InodeTable.isSpoolKey(key) { return try attachWriter(key: try settled(key), truncate: truncate) }
            let node = try currentNode(key)
            if node.type == .folder { throw FSError(EISDIR) }
            let target = SpoolTarget(parentId: node.parentId ?? rootId, name: node.name, nodeId: node.id, createdByUpload: false,
                                     baseEtag: node.etag, baseVersionId: node.versionId, baseSize: node.size)
            let e = try newEntry(target: target, metadata: nil, materialized: truncate || node.size == 0, baseSize: node.size)
            e.cond.lock()
            if !e.isLive || e.phase != .writing && e.phase != .queued { e.cond.unlock(); continue }
            reopen(e)
            e.writers += 1
            if truncate && e.record.size != 0 { try? truncateLocked(e, to: 0) }
            e.cond.unlock()
            return e
        }
    }

    /// Detaches a writer; the last one seals (or discards an unlinked or unchanged entry).
    func detachWriter(_ e: SpoolEntry) throws {
        e.cond.lock()
        e.writers = max(0, e.writers - 1)
        guard e.writers == 0 else { e.cond.unlock(); return }
        if e.phase == .cancelled && e.unlinked {
            let size = e.record.size
            e.cond.unlock()
            e.removeFiles(spool)
            budget.release(size)
            return
        }
        if e.phase == .writing && !e.materialized {
            // Opened for writing but never changed: nothing to upload.
            e.cond.unlock()
            cancel(e, reason: "unchanged")
            return
        }
        defer { e.cond.unlock() }
        try seal(e)
    }

    /// Brings an existing file's content into the data file (caller holds cond; it is released
    /// during the download, with `materializing` keeping others out).
    func materializeLocked(_ e: SpoolEntry) throws {
        guard !e.materialized else { return }
        guard let nodeId = e.record.target.nodeId else { e.materialized = true; return }
        e.materializing = true
        let data = e.data
        e.cond.unlock()
        var sum = CRC32C()
        var total: Int64 = 0
        var failure: Error?
        do {
            let reader = try remote("download for write") {
                try SignedURLReader(nodeId: nodeId, controlPlane: controlPlane, store: store)
            }
            budget.reserve(reader.size)
            var buffer = [UInt8](repeating: 0, count: tuning.materializeChunk)
            while total < reader.size {
                let n = try remote("download for write") {
                    try buffer.withUnsafeMutableBytes { try reader.read(offset: total, into: $0) }
                }
                if n <= 0 { break }
                try buffer.withUnsafeBytes { try data.pwrite(UnsafeRawBufferPointer(rebasing: $0[0..<n]), offset: total) }
                buffer.withUnsafeBytes { sum.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                total += Int64(n)
            }
            budget.adjust(total - reader.size)
        } catch {
            failure = error
        }
        e.cond.lock()
        e.materializing = false
        e.cond.broadcast()
        if let failure { throw failure }
        e.materialized = true
        e.record.size = total
        e.runningChecksum = sum
    }

    func truncateLocked(_ e: SpoolEntry, to size: Int64) throws {
        if size == 0 && !e.materialized {
            e.materialized = true
        } else {
            try materializeLocked(e)
        }
        let old = e.record.size
        try e.data.truncate(to: size)
        budget.adjust(size - old)
        e.record.size = size
        if size == 0 {
            e.runningChecksum = CRC32C()
        } else if let sum = e.runningChecksum, sum.count > size || size > old {
            e.runningChecksum = nil
        }
        markWritten(e)
    }

    func markWritten(_ e: SpoolEntry) {
        e.modifiedAt = now
        e.writeCount += 1
        if e.record.hasContent != true {
            e.record.hasContent = true
            if e.record.state == .open { try? e.persist(spool, state: .open, durable: false, now: now) }
        }
        e.explicitMtime = nil
        e.record.metadata?[PosixMetadata.mtime] = nil
        if e.record.target.nodeId != nil { e.dropRemoteMtime = true }
        // A streamed session holds parts of what was there: a change below them ends it.
        if e.phase == .writing, e.record.upload != nil, (e.runningChecksum?.count ?? -1) < uploader.streamedExtent(e) {
            dropUploadSession(e)
        }
    }

    // MARK: open

    func openSignature(key: String) throws -> String {
        if let e = pending(key: key) {
            return e.cond.withLock { "spool:\(e.id):\(e.writeCount):\(e.record.size)" }
        }
        let n = try currentNode(try settled(key))
        return "\(n.id):\(n.etag ?? ""):\(n.versionId ?? ""):\(n.size):\(n.updatedAt.timeIntervalSince1970)"
    }

    func keepCache(inode: InodeNumber, signature: String) -> Bool {
        pendingIndex.recordOpen(inode: inode, signature: signature)
    }

    func addHandle(_ file: OpenFile) -> FileHandleID {
        openHandles.add(file)
    }

    func openFile(_ id: FileHandleID) throws -> OpenFile {
        guard let h = openHandles.file(id) else { throw FSError(EBADF) }
        return h
    }

    public func open(inode: InodeNumber, flags: Int32, context: RequestContext) throws -> OpenReply {
        let key = try key(of: inode)
        let accessMode = flags & O_ACCMODE
        let writable = accessMode == O_WRONLY || accessMode == O_RDWR
        if writable || flags & O_TRUNC != 0 { try checkWritable() }
        var want: AccessWant = []
        if accessMode == O_RDONLY || accessMode == O_RDWR { want.insert(.read) }
        if writable || flags & O_TRUNC != 0 { want.insert(.write) }
        try authorize(want, on: inode, context: context)
        if pending(key: key) == nil, !InodeTable.isSpoolKey(key) {
            let node = try revalidatedNode(key, inode: inode)
            if node.type == .folder { throw FSError(EISDIR) }
        }
        var entry: SpoolEntry?
        if writable {
            entry = try attachWriter(key: key, truncate: flags & O_TRUNC != 0)
        }
        let file = OpenFile(inode: inode, writable: writable, entry: entry, openedBy: context.uid)
        if !writable, pending(key: key) == nil {
            try prepareReader(file, key: try settled(key))
        }
        let signature = try openSignature(key: key)
        return OpenReply(handle: addHandle(file), keepCache: keepCache(inode: inode, signature: signature),
                         directIO: bypassesPageCache(flags: flags))
    }

    /// Close-to-open (docs/SEMANTICS.md): the node behind an open, asked for again when its
    /// cached copy is older than `revalidateAfter` (one GET of the node). When its content
    /// changed (etag, version or size) the kernel's attributes of the inode are dropped here and
    /// its pages by the open's reply (its keep-cache signature differs), so the size and bytes
    /// this open reads are the new ones (the daemon's blocks are keyed by etag). When it is gone,
    /// the kernel's entry for its name is dropped and the open fails with ENOENT; so it does when
    /// the node was renamed or moved elsewhere (the new name is found by lookup). Read-only
    /// mounts, committed folders' children and `close_to_open=0` keep the cached node for the
    /// whole cache_ttl.
    func revalidatedNode(_ id: String, inode: InodeNumber) throws -> Node {
        guard config.closeToOpen, !config.readOnly, let (age, permanent) = cache.age(ofNode: id),
              !permanent, age >= config.revalidateAfter, let old = cache.lastKnownNode(id) else {
            return try currentNode(id)
        }
        let fresh: Node
        do {
            fresh = try remote("GET node") { try controlPlane.node(id: id) }
        } catch let e as FSError where e.errno == ENOENT {
            Counter(label: RosetMetricNames.openRevalidations, dimensions: [("result", "gone")]).increment()
            cache.removeNode(id)
            if let parentId = old.parentId {
                cache.removeChild(parentId, name: old.name)
                dropKernelEntry(parentId: parentId, name: old.name)
            }
            throw e
        }
        cache.store(fresh)
        let changed = fresh.etag != old.etag || fresh.versionId != old.versionId || fresh.size != old.size
        Counter(label: RosetMetricNames.openRevalidations, dimensions: [("result", changed ? "changed" : "unchanged")]).increment()
        if changed {
            logger.debug("open: changed elsewhere, cached content dropped", metadata: ["node": "\(id)"])
            // Attributes only: the size the kernel holds would cut reads of a longer file short.
            // The pages go with this open's reply (its keep-cache signature differs).
            notifier?.invalidateInode(inode, pages: false)
        }
        if let parentId = old.parentId, fresh.parentId != old.parentId || fresh.name != old.name {
            // Renamed elsewhere: the name this open came through is gone, as a lookup would say.
            cache.removeChild(parentId, name: old.name)
            dropKernelEntry(parentId: parentId, name: old.name)
            throw FSError(ENOENT)
        }
        return fresh
    }

    /// The kernel's entry for a name that is gone, dropped off the request's thread: the
    /// request may hold the folder's lock in the kernel (create), which the notify call takes.
    func dropKernelEntry(parentId: String, name: String) {
        guard let notifier, let parent = inodes.existingInode(for: parentId) else { return }
        DispatchQueue.global().async { notifier.invalidateEntry(parent: parent, name: name) }
    }

    /// With the direct_io option every handle skips the kernel's page cache. Without it a
    /// write-only handle still does: nothing can read through it, and the cache copy of every
    /// written byte cost as much CPU as the spool write itself (2 cores).
    func bypassesPageCache(flags: Int32) -> Bool { config.directIO || flags & O_ACCMODE == O_WRONLY }

    /// What the block cache files a node's content under: a new version is a new key.
    static func objectKey(of node: Node) -> String {
        "\(node.id):\(node.etag ?? node.versionId ?? String(node.updatedAt.timeIntervalSince1970)):\(node.size)"
    }

    /// A reader over the node's current content (signed URL fetched now, cached per handle).
    func prepareReader(_ file: OpenFile, key: String) throws {
        let node = try currentNode(key)
        let objectKey = Self.objectKey(of: node)
        if file.lock.withLock({ file.readerKey == objectKey && file.reader != nil }) { return }
        var source: RangeSource
        let size: Int64
        do {
            let signed = try remote("open") { try SignedURLReader(nodeId: node.id, controlPlane: controlPlane, store: store) }
            (source, size) = (signed, signed.size)
            // With the disk cache on, every byte passes through the memory cache to reach the disk
            // (no splicing of pipes past it): the next epoch is then read from local disk.
            if let dataCache, size > 0 {
                source = DiskCachedSource(cache: dataCache, upstream: signed, objectKey: objectKey, objectSize: size)
            }
        } catch let error as FSError where error.errno == ENOENT && node.size == 0 && node.etag == nil && node.versionId == nil {
            // Another client's upload that has not completed yet: the node exists (the server
            // shows it from init on) but has no content. It reads as the empty file stat shows.
            (source, size) = (NoContent(), 0)
        }
        let reader = ObjectReader(objectKey: objectKey, size: size, source: source, cache: blockCache,
                                  kernelReadAhead: Int64(config.kernelReadAheadKB) * 1024)
        file.lock.withLock {
            file.reader?.close()
            file.reader = reader
            file.readerKey = objectKey
        }
    }

    public func create(parent: InodeNumber, name: String, mode: UInt32, flags: Int32,
                       context: RequestContext) throws -> (EntryReply, OpenReply) {
        try checkWritable()
        try Self.checkName(name)
        let parentId = try folderId(parent)
        try authorize(.execute, on: parent, context: context)
        if let existing = try findChild(parentId, name) {
            if flags & O_EXCL != 0 { throw FSError(EEXIST) }
            if existing.isFolder { throw FSError(EISDIR) }
            let entry = entryReply(existing)
            do {
                let inode = entry.attributes.inode
                let open = try self.open(inode: inode, flags: flags, context: context)
                let attrs = try attributes(forKey: try key(of: inode), inode: inode)
                return (EntryReply(attributes: attrs, entryTimeout: entryTimeout, attributeTimeout: config.cacheTTL), open)
            } catch {
                inodes.forget(entry.attributes.inode, lookups: 1)
                throw error
            }
        }
        try authorize(.write, on: parent, context: context)
        let metadata = try ownershipMetadata(mode: mode, isFolder: false, parent: parent, context: context)
        let e = try newEntry(target: SpoolTarget(parentId: parentId, name: name), metadata: metadata, materialized: true)
        e.cond.withLock { e.writers += 1 }
        cache.clearAbsent(parentId, name: name)
        cache.touchFolder(parentId)
        let entry = entryReply(.pending(e))
        let file = OpenFile(inode: entry.attributes.inode, writable: true, entry: e, openedBy: context.uid)
        let id = addHandle(file)
        let signature = (try? openSignature(key: e.key)) ?? ""
        return (entry, OpenReply(handle: id, keepCache: keepCache(inode: entry.attributes.inode, signature: signature),
                                 directIO: bypassesPageCache(flags: flags)))
    }

    // MARK: read / write

    public func read(inode: InodeNumber, handle: FileHandleID, offset: Int64, size: Int,
                     reply: ([UnsafeRawBufferPointer]) -> Void) throws {
        try read(inode: inode, handle: handle, offset: offset, size: size, reply: reply, pipeReply: nil)
    }

    public func read(inode: InodeNumber, handle: FileHandleID, offset: Int64, size: Int,
                     reply: ([UnsafeRawBufferPointer]) -> Void, pipeReply: ([(fd: Int32, count: Int)]) -> Void) throws {
        guard config.spliceRead else {
            return try read(inode: inode, handle: handle, offset: offset, size: size, reply: reply, pipeReply: nil)
        }
        // Optional closures escape by type; this one is only used during the call.
        try withoutActuallyEscaping(pipeReply) { pipes in
            try read(inode: inode, handle: handle, offset: offset, size: size, reply: reply, pipeReply: .some(pipes))
        }
    }

    /// Pending content comes from the spool; the object's through its reader (pipes allowed
    /// when `pipeReply` is given).
    private func read(inode: InodeNumber, handle: FileHandleID, offset: Int64, size: Int,
                      reply: ([UnsafeRawBufferPointer]) -> Void, pipeReply: (([(fd: Int32, count: Int)]) -> Void)?) throws {
        let file = try openFile(handle)
        // A handle's own entry first: after an unlink it alone holds the data (the name is gone).
        if let e = file.entry ?? (try? key(of: inode)).flatMap({ pending(key: $0) }) {
            e.cond.lock()
            while e.materializing { e.cond.wait() }
            let readable = e.materialized && (e.isLive || e.unlinked)
            let length = e.record.size
            let data = e.data
            e.cond.unlock()
            if readable {
                guard offset < length, size > 0 else { reply([]); return }
                let bytes = try data.pread(offset: offset, count: Int(min(Int64(size), length - offset)))
                bytes.withUnsafeBytes { reply([$0]) }
                return
            }
        }
        // The upload may have completed meanwhile: the spool key has become a node id.
        let current = try self.key(of: inode)
        if InodeTable.isSpoolKey(current) { throw FSError(EIO) }
        try prepareReader(file, key: current)
        guard let reader = file.lock.withLock({ file.reader }) else { throw FSError(EIO) }
        try remote("read") { try reader.read(offset: offset, length: size, reply: reply, pipeReply: pipeReply) }
    }

    public func write(inode: InodeNumber, handle: FileHandleID, offset: Int64, data: UnsafeRawBufferPointer) throws -> Int {
        let file = try openFile(handle)
        guard file.writable, let e = file.entry else { throw FSError(EBADF) }
        if config.readOnly { throw FSError(EROFS) }
        guard offset >= 0 else { throw FSError(EINVAL) }
        e.cond.lock()
        e.waitWhileBusy()
        if e.phase == .done {
            // Sealed by a flush and already uploaded while this handle stayed open: continue in a new entry.
            e.cond.unlock()
            let key = try key(of: inode)
            let fresh = try attachWriter(key: key, truncate: false)
            file.entry = fresh
            try? detachWriter(e)
            return try write(inode: inode, handle: handle, offset: offset, data: data)
        }
        if stateLock.withLock({ shuttingDown }) && e.phase != .writing { e.cond.unlock(); throw FSError(EROFS) }
        reopen(e)
        do { try materializeLocked(e) } catch { e.cond.unlock(); throw error }
        let end = offset + Int64(data.count)
        let growth = max(0, end - e.record.size)
        let dataFile = e.data
        e.cond.unlock()

        budget.reserve(growth)
        do {
            try dataFile.pwrite(data, offset: offset)
        } catch {
            budget.release(growth)
            throw error
        }

        e.cond.lock()
        let old = e.record.size
        let newSize = max(old, end)
        e.record.size = newSize
        budget.adjust((newSize - old) - growth)
        if var sum = e.runningChecksum {
            if offset == sum.count { sum.update(data); e.runningChecksum = sum } else { e.runningChecksum = nil }
        }
        markWritten(e)
        uploader.streamFullParts(e)
        e.cond.unlock()
        if file.lock.withLock({ file.clearsSetIDOnWrite }) { try clearSetIDAfterWrite(file, key: e.key) }
        return data.count
    }

    /// Linux clears set-user-ID (and set-group-ID of a group-executable file) when anyone but
    /// root writes; a write that bypasses the kernel's page cache leaves that to the file system.
    func clearSetIDAfterWrite(_ file: OpenFile, key: String) throws {
        file.lock.withLock { file.clearsSetIDOnWrite = false }
        let mode = try attributes(forKey: key, inode: file.inode).mode & 0o7777
        let cleared = AccessPolicy.clearedAfterWrite(mode)
        if cleared != mode { try applyMetadata(key: key, patch: [PosixMetadata.mode: .number(Double(cleared))]) }
    }

    // MARK: close / fsync

    public func flush(inode: InodeNumber, handle: FileHandleID) throws {
        let file = try openFile(handle)
        guard file.writable, let e = file.entry else { return }
        e.cond.lock()
        e.waitWhileBusy()
        var generation = e.generation
        if e.phase == .writing && e.writers == 1 && !e.unlinked && e.materialized {
            do { try seal(e) } catch { e.cond.unlock(); throw error }
            generation = e.generation
        }
        e.cond.unlock()
        if config.closeWait {
            uploader.hurry(e)
            try waitForUpload(e, generation: generation)
        }
    }

    public func release(inode: InodeNumber, handle: FileHandleID) throws {
        guard let file = openHandles.removeFile(handle) else { throw FSError(EBADF) }
        file.lock.withLock { file.reader?.close(); file.reader = nil }
        if file.writable, let e = file.entry { try detachWriter(e) }
    }

    public func fsync(inode: InodeNumber, handle: FileHandleID, dataOnly: Bool) throws {
        let key = try key(of: inode)
        let file = try? self.openFile(handle)
        guard let e = file?.entry ?? pending(key: key) else { return }
        e.cond.lock()
        e.waitWhileBusy()
        if e.phase == .writing && e.materialized && !e.unlinked {
            do { try seal(e) } catch { e.cond.unlock(); throw error }
        }
        let generation = e.generation
        e.cond.unlock()
        uploader.hurry(e)
        try waitForUpload(e, generation: generation)
    }

    /// Blocks until `generation` (or a newer one) of the entry is confirmed; EIO once the upload
    /// failed `attemptsBeforeReporting` times in a row (it keeps being retried in the background).
    func waitForUpload(_ e: SpoolEntry, generation: Int) throws {
        e.cond.lock()
        defer { e.cond.unlock() }
        while true {
            if e.phase == .cancelled && e.reportedFailure != nil && e.completedGeneration < generation { throw FSError(EIO) }
            if e.completedGeneration >= generation || e.phase == .cancelled { return }
            if e.phase == .done { return }
            if e.reportedFailure != nil && e.generation == generation {
                throw FSError(EIO)
            }
            if e.phase == .writing && e.generation != generation && e.writers > 0 {
                // Reopened by another writer: what we waited for is superseded by content not yet closed.
                return
            }
            e.cond.wait()
        }
    }

    // MARK: setattr

    public func setattr(inode: InodeNumber, changes: AttributeChanges, handle: FileHandleID?,
                        context: RequestContext) throws -> AttributeReply {
        try checkWritable()
        if let e = unlinkedEntry(handle) {
            // ftruncate/fchmod through a descriptor of an unlinked file: only its spooled data is left.
            if let size = changes.size {
                guard size >= 0 else { throw FSError(EINVAL) }
                e.cond.lock()
                defer { e.cond.unlock() }
                try truncateLocked(e, to: size)
            }
            return try getattr(inode: inode, handle: handle)
        }
        let key = try key(of: inode)
        let current = NodeAccess(try attributes(forKey: key, inode: inode))
        let explicitTimes = [changes.accessTime, changes.modificationTime].contains { if case .set = $0 { true } else { false } }
        let timesNow = changes.accessTime == .now || changes.modificationTime == .now
        let storedMode = try AccessPolicy.checkChange(
            node: current, mode: changes.mode, uid: changes.uid, gid: changes.gid, size: changes.size,
            explicitTimes: explicitTimes, timesNow: timesNow, hasHandle: handle != nil, by: Caller(context))
        if let size = changes.size {
            guard size >= 0 else { throw FSError(EINVAL) }
            if pending(key: key) == nil {
                if try currentNode(try settled(key)).type == .folder { throw FSError(EISDIR) }
            }
            let e = try attachWriter(key: key, truncate: size == 0)
            e.cond.lock()
            var failure: Error?
            do { try truncateLocked(e, to: size) } catch { failure = error }
            e.cond.unlock()
            try detachWriter(e)
            if let failure = failure as? FSError, failure.errno == EFBIG {
                logger.warning("truncate: the spool's file system cannot hold a file of this size",
                               metadata: ["size": "\(size)", "spool": "\(config.spoolDirectory)"])
            }
            if let failure { throw failure }
        }
        var patch: [String: JSONValue] = [:]
        if let mode = storedMode { patch[PosixMetadata.mode] = .number(Double(mode)) }
        if let uid = changes.uid { patch[PosixMetadata.uid] = .number(Double(uid)) }
        if let gid = changes.gid { patch[PosixMetadata.gid] = .number(Double(gid)) }
        var mtime: timespec?
        if let t = changes.modificationTime {
            mtime = timespecOf(t, now: now)
            patch[PosixMetadata.mtime] = PosixMetadata.encode(mtime!)
        }
        if let t = changes.accessTime { patch[PosixMetadata.atime] = PosixMetadata.encode(timespecOf(t, now: now)) }
        if !patch.isEmpty { try applyMetadata(key: key, patch: patch, explicitMtime: mtime) }
        return try getattr(inode: inode, handle: handle)
    }

    /// Merges `patch` (`.null` deletes) into the metadata of the file behind `key`: into the
    /// entry's record while its node does not exist yet, else on the server.
    func applyMetadata(key: String, patch: [String: JSONValue], explicitMtime: timespec? = nil) throws {
        if let e = pending(key: key) {
            e.cond.lock()
            // An init in flight carries the old metadata; the uploader sends the difference after it.
            while e.phase == .completing || e.materializing { e.cond.wait() }
            if let explicitMtime { e.explicitMtime = explicitMtime; e.dropRemoteMtime = false }
            e.statusChangedAt = now
            if e.isLive && e.record.target.nodeId == nil {
                var md = e.record.metadata ?? [:]
                for (k, v) in patch { md[k] = v == .null ? nil : v }
                e.record.metadata = md
                do { try e.persist(spool, state: e.record.state, durable: e.record.state != .open, now: now) }
                catch { e.cond.unlock(); throw error }
                e.cond.unlock()
                return
            }
            let nodeId = e.record.target.nodeId
            e.cond.unlock()
            if let nodeId {
                try updateMetadata(nodeId: nodeId, patch: patch)
                // The entry's own metadata (from create) lies over the node's in stat and
                // getxattr: keep it in step, or the old values would hide the new ones.
                e.cond.withLock {
                    guard var md = e.record.metadata else { return }
                    for (k, v) in patch { md[k] = v == .null ? nil : v }
                    e.record.metadata = md
                }
                return
            }
        }
        try updateMetadata(nodeId: try settled(key), patch: patch)
    }

    func updateMetadata(nodeId: String, patch: [String: JSONValue]) throws {
        let node = try remote("update metadata") { try controlPlane.updateNode(id: nodeId, parentId: nil, name: nil, metadata: patch) }
        cache.store(node)
    }
}


/// The content of a node whose first upload has not completed: nothing.
private final class NoContent: RangeSource {
    func read(offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int { 0 }
}
