// What happens around the uploader: completion (caches patched with the returned node, entry
// removed from the spool only now), start-up recovery, and shutdown.
//
// Recovery (runs inside init, before the mount is reported live, so no read can miss a pending
// file): sealed and uploading entries resume (completed parts kept while the token is valid);
// entries still open at the crash are uploaded as `NAME.recovered-<UTC>` beside the original;
// a new version whose node changed on the server since its base goes to `NAME.conflict-<UTC>`;
// a data file whose checksum does not match, or with no valid record, goes to dead/ with a reason.
import Foundation
import Logging
import Metrics
import RosetClient
import RosetMetrics

extension RosetFileSystem: UploadDelegate {
    func uploadAssignedNode(_ entry: SpoolEntry, oldKey: String, newKey: String) {
        pendingIndex.rekey(entry, from: oldKey, to: newKey, isLive: entry.isLive)
        inodes.rekey(from: oldKey, to: newKey)
    }

    func uploadReplacesConcurrentVersion(_ e: SpoolEntry, current: Node) {
        let (name, base) = e.cond.withLock { (e.record.target.name, e.record.target.baseVersionId ?? e.record.target.baseEtag ?? "?") }
        stateLock.withLock { concurrentWrites += 1 }
        Counter(label: RosetMetricNames.concurrentWrites).increment()
        logger.warning("another writer replaced this file since it was opened here; this upload becomes the newest version and theirs stays in the file's version history",
                       metadata: ["name": "\(name)", "node": "\(current.id)", "opened on": "\(base)",
                                  "replaced": "\(current.versionId ?? current.etag ?? "?")"])
    }

    func uploadCompleted(_ e: SpoolEntry, generation: Int, node: Node) {
        e.cond.lock()
        guard e.generation == generation, e.phase == .completing else { e.cond.unlock(); return }
        let oldKey = e.key
        try? e.persist(spool, state: .complete, durable: false, now: now)
        TestCrashPoint.reached(.afterComplete)
        e.phase = .done
        e.completedGeneration = generation
        let size = e.record.size
        let dropMtime = e.dropRemoteMtime
        // Keep the key stable for anyone resolving the entry's inode from now on.
        e.record.target.nodeId = node.id
        // The uploaded bytes seed the disk cache, so that reading the file back downloads nothing.
        if dataCache != nil, Int64(size) == node.size { seedDataCache(node: node, data: e.data) }
        // Caches and index are switched to the node before anyone waiting (unlink, rename,
        // fsync) proceeds, so their own patches come after this one.
        // A rename may have moved the file while complete was in flight: the entry's target is
        // the newer truth for where it lives.
        e.removeFiles(spool)
        var stored = node
        stored.parentId = e.record.target.parentId
        stored.name = e.record.target.name
        cache.store(stored)
        unregister(e, aliasTo: node.id)
        if oldKey != node.id { inodes.rekey(from: oldKey, to: node.id) }
        e.cond.broadcast()
        e.cond.unlock()

        budget.release(size)
        budget.drainEnded()
        logger.debug("upload confirmed", metadata: ["node": "\(node.id)", "bytes": "\(size)"])
        if dropMtime, node.metadata[PosixMetadata.mtime] != nil {
            if let updated = try? controlPlane.updateNode(id: node.id, parentId: nil, name: nil,
                                                         metadata: [PosixMetadata.mtime: .null]) {
                cache.store(updated)
            }
        }
    }

    /// Copies an uploaded file's spool data into the disk cache on a background queue; at most
    /// `seedBacklogLimit` bytes wait, beyond which files are left to be fetched on first read.
    /// The data file stays readable while this holds it (Spool: it is reused only once its last
    /// reference is gone).
    func seedDataCache(node: Node, data: SpoolDataFile) {
        guard let dataCache else { return }
        let size = node.size
        guard seedBacklog.reserve(size) else { return }
        let key = Self.objectKey(of: node)
        seedBacklog.queue.async { [seedBacklog] in
            dataCache.seed(objectKey: key, objectSize: size, fd: data.fd)
            seedBacklog.release(size)
        }
    }

    func uploadFailed(_ e: SpoolEntry, error: Error, permanent: Bool) -> Bool {
        // A request the server keeps refusing as malformed (4xx other than 401/403/404/408/409/429)
        // will not succeed by retrying: the entry becomes a dead letter, kept, never deleted.
        let refused = (error as? RosetError)?.kind == .badRequest
        e.cond.lock()
        guard refused, e.failedAttempts >= tuning.attemptsBeforeReporting, e.isLive, e.phase == .queued else {
            e.cond.unlock()
            logger.error("upload keeps failing; the data stays in the spool and is retried",
                         metadata: ["entry": "\(e.id)", "path": "\(spool.dataPath(e.id))", "permanent": "\(permanent)",
                                    "error": "\(error)"])
            return false
        }
        e.phase = .cancelled
        e.generation += 1
        e.reportedFailure = error
        let size = e.record.size
        let target = e.record.target
        e.cond.broadcast()
        e.cond.unlock()
        let dead = spool.moveToDeadLetter(entryId: e.id, reason: "upload failed permanently: \(error)")
        unregister(e)
        budget.drainEnded()
        budget.release(size)
        logger.error("upload failed permanently; kept as a dead letter",
                     metadata: ["path": "\(dead)", "name": "\(target.name)", "error": "\(error)"])
        return true
    }

    func isPendingNode(_ nodeId: String) -> Bool { pending(key: nodeId) != nil }

    func uploadTargetMissing(_ e: SpoolEntry, generation: Int) {
        let target = e.cond.withLock { e.record.target }
        // Only when the server confirms the folder (or the node) is really gone.
        if let nodeId = target.nodeId {
            if (try? controlPlane.node(id: nodeId)) != nil { return }
        } else if (try? controlPlane.node(id: target.parentId)) != nil {
            return
        }
        guard let lostAndFound = lostAndFoundFolder() else { return }
        e.cond.lock()
        guard e.generation == generation, e.isLive else { e.cond.unlock(); return }
        e.record.target = SpoolTarget(parentId: lostAndFound, name: "\(target.name).\(e.id.prefix(8))")
        e.forgetUploadSession()
        try? e.persist(spool, state: e.record.state == .open ? .open : .sealed, durable: true, now: now)
        reindex(e, target: e.record.target)
        let name = e.record.target.name
        e.cond.unlock()
        logger.warning("the target folder is gone; the file goes to lost+found", metadata: ["name": "\(name)"])
    }

    /// `lost+found` at the mount root, created when first needed.
    func lostAndFoundFolder() -> String? {
        if let found = try? controlPlane.resolve(name: "lost+found", in: rootId), found.type == .folder { return found.id }
        do {
            let made = try controlPlane.createFolder(name: "lost+found", parentId: rootId, metadata: nil)
            cache.store(made)
            return made.id
        } catch let e as RosetError where e.existingNodeId != nil {
            return e.existingNodeId
        } catch {
            logger.error("cannot create lost+found: \(error)")
            return nil
        }
    }

    // MARK: recovery

    static func utcStamp(_ date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return f.string(from: date)
    }

    func recoverSpool() {
        let scan = spool.scan()
        for torn in scan.tornRecords {
            logger.error("spool: torn journal record", metadata: ["file": "\(spool.journalFolder)/\(torn.file)", "problem": "\(torn.problem)"])
        }
        for id in scan.unreadableEntries {
            let dead = spool.moveToDeadLetter(entryId: id, reason: "no valid journal record (torn or unreadable)")
            logger.error("spool: entry without a valid journal record kept as a dead letter", metadata: ["path": "\(dead)"])
        }
        for id in scan.orphanData {
            let dead = spool.moveToDeadLetter(entryId: id, reason: "data file without journal record")
            logger.warning("spool: data file without journal record kept as a dead letter", metadata: ["path": "\(dead)"])
        }
        let stamp = Self.utcStamp(now)
        let entriesWithLayout1Files = scan.entriesWithLayout1Files
        var resumed = 0
        for var record in scan.records.sorted(by: { $0.createdAt < $1.createdAt }) {
            let id = record.entryId
            if record.state == .complete {
                spool.remove(entryId: id, data: nil, strayFiles: entriesWithLayout1Files.contains(id))
                continue
            }
            guard let data = try? SpoolDataFile(path: spool.dataPath(id), create: false) else {
                let dead = spool.moveToDeadLetter(entryId: id, reason: "journal record without data file")
                logger.error("spool: record without data kept as a dead letter", metadata: ["path": "\(dead)"])
                continue
            }
            if record.state == .open && record.hasContent != true && record.target.nodeId != nil && !record.target.createdByUpload {
                // An existing file opened for writing but never changed: nothing to recover.
                spool.remove(entryId: id, data: nil, strayFiles: entriesWithLayout1Files.contains(id))
                continue
            }
            if record.state == .open {
                // Parts streamed before the crash: give up that session (and the empty node its
                // init made); the content goes up whole under the new name.
                if let token = record.upload?.token { try? controlPlane.abortUpload(token: token) }
                // Written up to the crash but never closed: never over the original.
                record.target = SpoolTarget(parentId: record.target.parentId, name: "\(record.target.name).recovered-\(stamp)")
                record.size = data.size()
                record.upload = nil
                record.crc32c = (try? data.crc32c()) ?? ""
                record.sha256 = nil
                record.format = JournalRecord.currentFormat
                record.sequence += 1
                record.state = .sealed
                do {
                    try data.sync()
                    spool.syncFolder(spool.dataFolder)
                    try spool.write(record, durable: true)
                } catch {
                    logger.error("spool: cannot seal recovered entry \(id): \(error)")
                    continue
                }
                logger.warning("spool: file open at the crash recovered under a new name", metadata: ["name": "\(record.target.name)"])
            } else {
                guard data.matches(record) else {
                    let dead = spool.moveToDeadLetter(entryId: id, reason: "data checksum does not match its journal record")
                    logger.error("spool: data checksum mismatch, kept as a dead letter", metadata: ["path": "\(dead)"])
                    continue
                }
                if let nodeId = record.target.nodeId, !record.target.createdByUpload, record.upload == nil,
                   let current = try? controlPlane.node(id: nodeId),
                   (record.target.baseEtag != nil && current.etag != record.target.baseEtag)
                    || (record.target.baseVersionId != nil && current.versionId != record.target.baseVersionId) {
                    record.target = SpoolTarget(parentId: current.parentId ?? record.target.parentId,
                                                name: "\(current.name).conflict-\(stamp)")
                    record.sequence += 1
                    try? spool.write(record, durable: true)
                    logger.warning("spool: the remote file changed since this version was written; uploading beside it",
                                   metadata: ["name": "\(record.target.name)"])
                }
            }
            let entry = SpoolEntry(id: id, record: record, data: data, phase: .queued, materialized: true,
                                   modifiedAt: Date(timeIntervalSince1970: record.modifiedAt))
            entry.runningChecksum = nil
            entry.hasStrayJournalFiles = entriesWithLayout1Files.contains(id)
            if register(entry) !== entry { continue }
            budget.adjust(record.size)
            budget.drainStarted()
            uploader.enqueue(entry)
            resumed += 1
        }
        if resumed > 0 { logger.info("spool: resuming \(resumed) pending upload(s)") }
    }

    // MARK: shutdown

    public func shutdown(grace: Double) {
        let first = stateLock.withLock { () -> Bool in
            defer { shuttingDown = true }
            return !shuttingDown
        }
        guard first else { return }
        logger.info("read cache: peak \(blockCache.peakUsedBytes >> 20) of \(blockCache.capacityBytes >> 20) MiB, \(blockCache.freshlyMappedBytes >> 20) MiB mapped afresh, \(blockCache.prefetchRequestCount) prefetch requests, \(blockCache.pipeBytesServed >> 20) MiB answered from pipes")
        if config.readOnly { return }
        let deadline = Date().addingTimeInterval(max(0, grace))
        uploader.hurryEverythingFromNowOn()
        // A new mount of this spool started meanwhile waits for the lock instead of failing.
        publishStatus(.draining, drainUntil: deadline)
        for e in liveEntries {
            e.cond.lock()
            if e.phase == .writing && e.materialized && !e.unlinked { try? seal(e) }
            e.cond.unlock()
        }
        while Date() < deadline {
            let busy = liveEntries.contains { e in e.cond.withLock { e.phase == .queued || e.phase == .uploading || e.phase == .completing } }
            if !busy { break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        uploader.stop()
        budget.stop()
        let remaining = liveEntries
        if remaining.isEmpty {
            logger.info("shutdown: every upload is confirmed; the spool is empty")
        } else {
            let bytes = remaining.reduce(Int64(0)) { total, e in total + e.cond.withLock { e.record.size } }
            logger.warning("shutdown: \(remaining.count) file(s), \(bytes) bytes stay sealed in the spool for the next mount",
                           metadata: ["spool": "\(spool.folder)"])
            for e in remaining {
                let t = e.cond.withLock { e.record.target }
                logger.info("shutdown: pending", metadata: ["name": "\(t.name)", "parent": "\(t.parentId)", "entry": "\(e.id)"])
            }
        }
        publishStatus(.stopped)
        spool.unlock()
    }
}
