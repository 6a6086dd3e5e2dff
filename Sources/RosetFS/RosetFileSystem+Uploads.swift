// What happens around the uploader: completion (caches patched with the returned node, entry
// removed from the spool only now), start-up recovery, and shutdown.
//
// Recovery (runs inside init, before the mount is reported live, so no read can miss a pending
// file): sealed and uploading entries resume (completed parts kept while the token is valid);
// entries still open at the crash are uploaded as `NAME.recovered-<UTC>` beside the original;
// a new version whose node changed on the server since its base goes to `NAME.conflict-<UTC>`;
// a data file whose sha256 does not match, or with no valid record, goes to dead/ with a reason.
import Foundation
import Logging
import RosetClient

extension RosetFileSystem: UploadDelegate {
    func uploadAssignedNode(_ entry: SpoolEntry, oldKey: String) {
        let newKey = entry.cond.withLock { entry.key }
        stateLock.withLock { if entry.isLive { pendingByKey[newKey] = entry } }
        inodes.rekey(from: oldKey, to: newKey)
    }

    func uploadCompleted(_ e: SpoolEntry, generation: Int, node: Node) {
        e.cond.lock()
        guard e.generation == generation, e.phase == .completing else { e.cond.unlock(); return }
        let oldKey = e.key
        try? e.persist(spool, state: .complete, durable: false, now: now)
        e.phase = .done
        e.completedGeneration = generation
        let size = e.record.size
        let dropMtime = e.dropRemoteMtime
        // Keep the key stable for anyone resolving the entry's inode from now on.
        e.record.target.nodeId = node.id
        // Caches and index change before anyone else sees `.done`: an unlink or rename waiting
        // on the entry must find them settled, or this late store would bring back a node it
        // just removed (unlink right after an upload finished left the name listed).
        cache.store(node)
        unregister(e)
        if oldKey != node.id { inodes.rekey(from: oldKey, to: node.id) }
        e.cond.broadcast()
        e.cond.unlock()

        spool.remove(entryId: e.id)
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

    func uploadFailed(_ entry: SpoolEntry, error: Error, permanent: Bool) {
        logger.error("upload keeps failing; the data stays in the spool and is retried",
                     metadata: ["entry": "\(entry.id)", "path": "\(spool.dataPath(entry.id))", "permanent": "\(permanent)",
                                "error": "\(error)"])
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
        var resumed = 0
        for var record in scan.records.sorted(by: { $0.createdAt < $1.createdAt }) {
            let id = record.entryId
            if record.state == .complete {
                spool.remove(entryId: id)
                continue
            }
            guard let data = try? SpoolDataFile(path: spool.dataPath(id), create: false) else {
                let dead = spool.moveToDeadLetter(entryId: id, reason: "journal record without data file")
                logger.error("spool: record without data kept as a dead letter", metadata: ["path": "\(dead)"])
                continue
            }
            if record.state == .open {
                // Written up to the crash but never closed: never over the original.
                record.target = SpoolTarget(parentId: record.target.parentId, name: "\(record.target.name).recovered-\(stamp)")
                record.size = data.size()
                record.upload = nil
                record.sha256 = (try? data.digest()) ?? ""
                record.sequence += 1
                record.state = .sealed
                do { try data.sync(); try spool.write(record, durable: true) } catch {
                    logger.error("spool: cannot seal recovered entry \(id): \(error)")
                    continue
                }
                logger.warning("spool: file open at the crash recovered under a new name", metadata: ["name": "\(record.target.name)"])
            } else {
                let digest = try? data.digest()
                guard digest == record.sha256, data.size() == record.size else {
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
            entry.hasher = nil
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
        if config.readOnly { return }
        for e in liveEntries {
            e.cond.lock()
            if e.phase == .writing && e.materialized && !e.unlinked { try? seal(e) }
            e.cond.unlock()
        }
        let deadline = Date().addingTimeInterval(max(0, grace))
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
        spool.unlock()
    }
}
