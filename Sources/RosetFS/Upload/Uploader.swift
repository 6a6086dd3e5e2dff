// The background uploader: sends sealed spool entries with `concurrency` workers, a single PUT
// below the part size and multipart (parts in parallel, each recorded in the journal) from it on.
// Invariants:
// - an entry leaves the spool only after the control plane confirmed the upload (delegate's
//   `uploadCompleted`); failures are retried with capped exponential backoff, never dropped;
// - no parts of two generations mix: every checkpoint compares the entry's generation;
// - at most `concurrency` part PUTs are in flight across all files;
// - a 403 on a part URL fetches a fresh URL; an unknown/expired token restarts with a new init;
// - a file written sequentially streams its full parts while it is still open (at most two
//   threads per file, init at the first full part, never holding up writes or the close); the
//   attempt after the close waits for those threads and sends only the parts still missing;
// - a file below the part size waits for a pause of `uploadDelay` in the closes before its upload
//   starts, at most `maxDeferralFactor` × that after it was queued: a burst of small writes then
//   runs without uploads competing for the 2 cores and the disk, and a file rewritten within the
//   pause is uploaded once (rclone's VFS waits 5 s after close for the same reasons). Large files,
//   retries, recovered entries, fsync, close_wait and shutdown never wait.
import Foundation
import Logging
import Metrics
import RosetClient
import RosetMetrics

protocol UploadDelegate: AnyObject, Sendable {
    /// Init created (or named) the node of an entry that had none. Called with the entry's
    /// cond held, so nobody sees the new key before it is indexed.
    func uploadAssignedNode(_ entry: SpoolEntry, oldKey: String, newKey: String)
    /// The control plane confirmed `generation` of `entry` with `node`.
    func uploadCompleted(_ entry: SpoolEntry, generation: Int, node: Node)
    /// Failed `attemptsBeforeReporting` times in a row (or permanently); returns true when the
    /// entry was taken out of the queue (dead letter).
    func uploadFailed(_ entry: SpoolEntry, error: Error, permanent: Bool) -> Bool
    /// Init found neither the parent folder nor the node: the target is gone on the server.
    func uploadTargetMissing(_ entry: SpoolEntry, generation: Int)
    /// The node belongs to another live entry of this mount (e.g. one being renamed away).
    func isPendingNode(_ nodeId: String) -> Bool
    /// The file this entry rewrites got another version (`current`) since it was opened here,
    /// from another machine: this upload is about to replace it.
    func uploadReplacesConcurrentVersion(_ entry: SpoolEntry, current: Node)
}

final class Uploader: @unchecked Sendable {
    private struct Abandoned: Error {}

    private let controlPlane: ControlPlane
    private let store: ObjectStore
    private let spool: Spool
    private let logger: Logger
    private let tuning: FileSystemTuning
    private let configuredPartSize: Int64
    private let concurrency: Int
    /// Full parts of a sequentially written file go out before its close.
    private let streaming: Bool
    weak var delegate: UploadDelegate?
    let counters = UploadCounters()

    private struct Queued {
        let entry: SpoolEntry
        let queuedAt: Date
        let deferrable: Bool
    }

    static let maxDeferralFactor = 20.0
    private let uploadDelay: Double
    private let cond = NSCondition()
    private var queue: [Queued] = []
    /// When the last deferrable entry was queued (the end of the current burst, so far).
    private var lastDeferrableQueued = Date.distantPast
    /// Entries someone waits for (fsync, close_wait): never deferred.
    private var hurried = Set<ObjectIdentifier>()
    private var hurryEverything = false
    private var active = 0
    private var stopped = false
    private let partSlots: DispatchSemaphore

    init(controlPlane: ControlPlane, store: ObjectStore, spool: Spool, logger: Logger,
         tuning: FileSystemTuning, partSize: Int64, concurrency: Int, uploadDelay: Double = 0, streaming: Bool = true) {
        self.controlPlane = controlPlane
        self.store = store
        self.spool = spool
        self.logger = logger
        self.tuning = tuning
        self.configuredPartSize = partSize
        self.concurrency = max(1, concurrency)
        self.uploadDelay = max(0, uploadDelay)
        self.streaming = streaming
        self.partSlots = DispatchSemaphore(value: max(1, concurrency))
    }

    func start() {
        for i in 0..<concurrency {
            let t = Thread { [weak self] in self?.workerLoop() }
            t.name = "roset-upload-\(i)"
            t.start()
        }
    }

    /// Queues a sealed entry (phase `.queued`). `size`, given by a caller that holds the entry's
    /// cond, lets a small file wait for a pause in the closes; without it the upload starts at once.
    func enqueue(_ entry: SpoolEntry, size: Int64? = nil) {
        let deferrable = uploadDelay > 0 && size.map { $0 < configuredPartSize } == true
        let now = Date()
        cond.lock()
        if !stopped {
            queue.append(Queued(entry: entry, queuedAt: now, deferrable: deferrable))
            if deferrable { lastDeferrableQueued = now }
            cond.signal()
        }
        cond.unlock()
    }

    /// Someone waits for this entry's upload: it does not wait for a pause in the closes. (An
    /// entry no longer queued is already on its way; it is not remembered.)
    func hurry(_ entry: SpoolEntry) {
        cond.lock()
        if queue.contains(where: { $0.entry === entry }) {
            hurried.insert(ObjectIdentifier(entry))
            cond.broadcast()
        }
        cond.unlock()
    }

    /// Shutdown: nothing waits for a pause any more.
    func hurryEverythingFromNowOn() {
        cond.lock(); hurryEverything = true; cond.broadcast(); cond.unlock()
    }

    /// The queue position of the next entry to upload at `now`, or the time to look again
    /// (caller holds `cond`).
    private func nextReady(now: Date) -> (index: Int?, recheckAt: Date?) {
        if queue.isEmpty { return (nil, nil) }
        let pauseReached = now.timeIntervalSince(lastDeferrableQueued) >= uploadDelay
        if hurryEverything || pauseReached { return (0, nil) }
        var recheck = lastDeferrableQueued.addingTimeInterval(uploadDelay)
        for (i, q) in queue.enumerated() {
            let deadline = q.queuedAt.addingTimeInterval(uploadDelay * Self.maxDeferralFactor)
            if !q.deferrable || hurried.contains(ObjectIdentifier(q.entry)) || now >= deadline { return (i, nil) }
            recheck = min(recheck, deadline)
        }
        return (nil, recheck)
    }

    /// Entries queued or being uploaded.
    var pendingCount: Int { cond.lock(); defer { cond.unlock() }; return queue.count + active }

    /// Waits until the queue is empty and no upload runs, or `deadline`; true when drained.
    func waitUntilIdle(deadline: Date) -> Bool {
        cond.lock()
        defer { cond.unlock() }
        while !(queue.isEmpty && active == 0) {
            if !cond.wait(until: deadline) { return queue.isEmpty && active == 0 }
        }
        return true
    }

    /// Stops taking work; in-flight attempts abandon at their next checkpoint.
    func stop() {
        cond.lock(); stopped = true; queue.removeAll(); cond.broadcast(); cond.unlock()
    }

    private var isStopped: Bool { cond.lock(); defer { cond.unlock() }; return stopped }

    private func workerLoop() {
        while true {
            cond.lock()
            var picked: SpoolEntry?
            while !stopped {
                let (index, recheckAt) = nextReady(now: Date())
                if let index {
                    picked = queue.remove(at: index).entry
                    break
                }
                if let recheckAt { _ = cond.wait(until: recheckAt) } else { cond.wait() }
            }
            guard let entry = picked, !stopped else { cond.unlock(); return }
            hurried.remove(ObjectIdentifier(entry))
            active += 1
            cond.unlock()
            run(entry)
            cond.lock()
            active -= 1
            cond.broadcast()
            cond.unlock()
        }
    }

    private func run(_ entry: SpoolEntry) {
        entry.cond.lock()
        guard entry.phase == .queued else { entry.cond.unlock(); return }
        entry.phase = .uploading
        let generation = entry.generation
        entry.cond.unlock()
        do {
            let node = try upload(entry, generation: generation)
            counters.recordSuccess()
            Counter(label: RosetMetricNames.uploadsConfirmed).increment()
            delegate?.uploadCompleted(entry, generation: generation, node: node)
        } catch is Abandoned {
            return
        } catch {
            let permanent = Uploader.isPermanent(error)
            counters.recordFailure(error, at: tuning.now())
            Counter(label: RosetMetricNames.uploadFailures).increment()
            entry.cond.lock()
            guard entry.generation == generation, entry.phase == .uploading || entry.phase == .completing else {
                entry.cond.unlock(); return
            }
            entry.failedAttempts += 1
            let attempts = entry.failedAttempts
            entry.phase = .queued
            if attempts >= tuning.attemptsBeforeReporting || permanent { entry.reportedFailure = error }
            entry.cond.broadcast()
            entry.cond.unlock()
            let delay = min(tuning.retryMaxDelay, tuning.retryBaseDelay * pow(2, Double(min(attempts - 1, 20))))
                * Double.random(in: 0.8...1.2)
            logger.warning("upload failed, retrying",
                           metadata: ["entry": "\(entry.id)", "attempt": "\(attempts)", "in": "\(String(format: "%.1f", delay))s",
                                      "error": "\(error)"])
            if attempts >= tuning.attemptsBeforeReporting || permanent,
               delegate?.uploadFailed(entry, error: error, permanent: permanent) == true {
                return
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + delay) { [weak self] in self?.enqueue(entry) }
        }
    }

    static func isPermanent(_ error: Error) -> Bool {
        guard let e = error as? RosetError else { return false }
        switch e.kind {
        case .badRequest, .unauthorized, .forbidden, .quotaExceeded: return true
        default: return false
        }
    }

    /// Throws `Abandoned` when the entry moved on (reopened, cancelled, stopped).
    private func checkpoint(_ entry: SpoolEntry, _ generation: Int) throws {
        if isStopped { throw Abandoned() }
        entry.cond.lock()
        defer { entry.cond.unlock() }
        if entry.generation != generation || entry.phase != .uploading { throw Abandoned() }
    }

    private func upload(_ entry: SpoolEntry, generation: Int) throws -> Node {
        entry.cond.lock()
        // Parts streamed before the close are still on their way: take them, do not send them twice.
        while entry.streamersActive > 0 { entry.cond.wait() }
        let size = entry.record.size
        let plan = PartPlan(size: size, configuredPartSize: configuredPartSize)
        var progress = entry.record.upload
        entry.cond.unlock()

        let now = tuning.now()
        // A single-PUT session cannot be resumed: its one URL came with init and no call gives
        // another (`/part` is multipart only), so a retry or a resume after a crash inits again
        // (by node id once init created the node: a new version, never a second node). The old
        // session is not aborted: an abort would delete the node its init created.
        if let p = progress, !p.multipart || p.multipart != plan.isMultipart || p.partSize != plan.partSize
            || p.expiresAt < now.timeIntervalSince1970 + 60 {
            progress = nil
        }
        var singleURL: String?
        if progress == nil {
            let (grant, fresh) = try initUpload(entry, generation: generation, size: plan.size, multipart: plan.isMultipart,
                                                partSize: plan.partSize, streaming: false)
            progress = fresh
            singleURL = grant.uploadURL
        }
        guard var progress else { throw Abandoned() }

        do {
            if !progress.multipart {
                guard let url = singleURL else { throw Abandoned() }
                let etag = try putWithFreshURL(entry, initialURL: url, token: progress.token, partNumber: 1,
                                               offset: 0, length: size, viaPartURL: false)
                checkConcurrentVersion(entry)
                try beginCompleting(entry, generation)
                return try controlPlane.commitUpload(token: progress.token, etag: etag, size: size)
            }
            try uploadParts(entry, generation: generation, plan: plan, progress: &progress)
            checkConcurrentVersion(entry)
            try beginCompleting(entry, generation)
            let parts = progress.parts.sorted { $0.partNumber < $1.partNumber }
            return try controlPlane.completeUpload(token: progress.token, parts: parts)
        } catch let e as RosetError where e.kind == .notFound {
            // The session is gone (expired or unknown token): start over with a new init.
            entry.cond.lock()
            if entry.generation == generation {
                entry.forgetUploadSession()
                if entry.phase == .completing { entry.phase = .uploading }
            }
            entry.cond.unlock()
            throw e
        }
    }

    /// Last confirmed upload wins (docs/SEMANTICS.md): before an upload that rewrites an
    /// existing file completes, the node is asked for once; a version other than the one the
    /// file was opened on means another machine wrote it meanwhile, which the delegate logs and
    /// counts. The other version stays in the node's version history on the server.
    private func checkConcurrentVersion(_ entry: SpoolEntry) {
        let target = entry.cond.withLock { entry.record.target }
        guard let nodeId = target.nodeId, !target.createdByUpload, target.baseEtag != nil || target.baseVersionId != nil,
              let current = try? controlPlane.node(id: nodeId) else { return }
        if (target.baseEtag != nil && current.etag != target.baseEtag)
            || (target.baseVersionId != nil && current.versionId != target.baseVersionId) {
            delegate?.uploadReplacesConcurrentVersion(entry, current: current)
        }
    }

    private func beginCompleting(_ entry: SpoolEntry, _ generation: Int) throws {
        if isStopped { throw Abandoned() }
        entry.cond.lock()
        defer { entry.cond.unlock() }
        guard entry.generation == generation, entry.phase == .uploading else { throw Abandoned() }
        entry.phase = .completing
    }

    /// Init, retargeting a new file to the existing node if the name was taken meanwhile. A
    /// streaming init (the file still open, or sealed meanwhile) announces size 0, as the size is
    /// not known yet.
    private func initUpload(_ entry: SpoolEntry, generation: Int, size: Int64, multipart: Bool, partSize: Int64,
                            streaming: Bool) throws -> (UploadGrant, UploadProgress) {
        // A streaming session is still welcome once the file was closed meanwhile (the attempt
        // after the close waits for the streaming threads, then takes it).
        func isCurrent() -> Bool {
            entry.generation == generation && !isStopped
                && (streaming ? entry.phase != .completing && entry.isLive && entry.record.upload == nil
                              : entry.phase == .uploading)
        }
        entry.cond.lock()
        entry.waitWhileBusy()
        while entry.initInFlight { entry.cond.wait() }
        guard isCurrent() else { entry.cond.unlock(); throw Abandoned() }
        entry.initInFlight = true
        // Writes and closes do not wait for a streaming init: the file is still being written.
        entry.initIsStreaming = streaming
        let target = entry.record.target
        let metadata = entry.record.metadata
        entry.cond.unlock()
        defer {
            entry.cond.withLock { entry.initInFlight = false; entry.initIsStreaming = false; entry.cond.broadcast() }
        }

        var grant: UploadGrant
        var assigned: String?
        var created: String?
        do {
            if let nodeId = target.nodeId {
                grant = try controlPlane.initUpload(UploadRequest(nodeId: nodeId, size: size, multipart: multipart))
            } else {
                do {
                    grant = try controlPlane.initUpload(UploadRequest(parentId: target.parentId, name: target.name, size: size,
                                                                      multipart: multipart, metadata: metadata))
                    assigned = grant.nodeId
                    created = grant.nodeId
                } catch let e as RosetError where e.kind == .nameConflict
                        && (e.existingNodeId.map({ delegate?.isPendingNode($0) == true }) == true
                            || entry.cond.withLock({ entry.failedAttempts }) < 2) {
                // Our own file may still hold the name (its rename is on its way to the server):
                // retry; only a conflict that persists makes this a new version of that node.
                throw RosetError(kind: .conflict, status: 409, endpoint: e.endpoint, message: "name held by a pending rename")
            } catch let e as RosetError where e.kind == .nameConflict && e.existingNodeId != nil {
                    // Created elsewhere since we looked: our content becomes its new version (last close wins).
                    logger.info("name taken at upload; uploading as a new version", metadata: ["name": "\(target.name)"])
                    grant = try controlPlane.initUpload(UploadRequest(nodeId: e.existingNodeId!, size: size, multipart: multipart))
                    if let metadata, !metadata.isEmpty {
                        _ = try? controlPlane.updateNode(id: e.existingNodeId!, parentId: nil, name: nil, metadata: metadata)
                    }
                    assigned = e.existingNodeId!
                }
            }
        } catch let e as RosetError where e.kind == .notFound {
            delegate?.uploadTargetMissing(entry, generation: generation)
            throw e
        }
        let progress = UploadProgress(token: grant.uploadToken, expiresAt: grant.expiresAt.timeIntervalSince1970,
                                      multipart: multipart, partSize: partSize, parts: [])
        entry.cond.lock()
        let current = isCurrent()
        var oldKey: String?
        var move: (parentId: String?, name: String?)?
        var metadataPatch: [String: JSONValue]?
        if current {
            if let assigned, entry.record.target.nodeId == nil {
                oldKey = entry.key
                entry.record.target.nodeId = assigned
                entry.record.target.createdByUpload = created != nil
                // Renamed or given metadata while the init was in flight: bring the node up to date.
                let now = entry.record.target
                if now.parentId != target.parentId || now.name != target.name {
                    move = (now.parentId != target.parentId ? now.parentId : nil, now.name != target.name ? now.name : nil)
                }
                let sent = metadata ?? [:]
                let current = entry.record.metadata ?? [:]
                if sent != current {
                    var patch: [String: JSONValue] = [:]
                    for (k, v) in current where sent[k] != v { patch[k] = v }
                    for k in sent.keys where current[k] == nil { patch[k] = .null }
                    metadataPatch = patch
                }
            }
            entry.record.upload = progress
            // An open entry's record is not durable (recovery re-uploads it whole under a new name;
            // the token only lets it abort this session and the empty node it made).
            let state: SpoolEntryState = entry.phase == .writing ? .open : entry.phase == .queued ? .sealed : .uploading
            assert(streaming || state == .uploading)
            try? entry.persist(spool, state: state, durable: state != .open, now: tuning.now())
        }
        let keepCreated = entry.record.target.nodeId == created
        if let oldKey { delegate?.uploadAssignedNode(entry, oldKey: oldKey, newKey: entry.key) }
        entry.cond.unlock()
        if let assigned, move != nil || metadataPatch != nil {
            _ = try? controlPlane.updateNode(id: assigned, parentId: move?.parentId, name: move?.name, metadata: metadataPatch)
        }
        guard current else {
            // Cancelled (unlink) or stopped while the init was in flight: undo what it made.
            try? controlPlane.abortUpload(token: grant.uploadToken)
            if !keepCreated, let created {
                logger.debug("init raced a cancel or retarget; removing the node it created", metadata: ["node": "\(created)", "name": "\(target.name)"])
                try? controlPlane.deleteNode(id: created)
            }
            throw Abandoned()
        }
        return (grant, progress)
    }

    private func uploadParts(_ entry: SpoolEntry, generation: Int, plan: PartPlan, progress: inout UploadProgress) throws {
        let done = Set(progress.parts.map(\.partNumber))
        let remaining = (1...plan.partCount).filter { !done.contains($0) }
        if remaining.isEmpty { return }
        let token = progress.token
        final class Cursor: @unchecked Sendable { let lock = NSLock(); var next = 0; var error: Error? }
        let cursor = Cursor()
        let group = DispatchGroup()
        let threads = min(concurrency, remaining.count)
        for _ in 0..<threads {
            group.enter()
            Thread { [self] in
                defer { group.leave() }
                while true {
                    let number: Int? = cursor.lock.withLock {
                        guard cursor.error == nil, cursor.next < remaining.count else { return nil }
                        defer { cursor.next += 1 }
                        return remaining[cursor.next]
                    }
                    guard let number else { return }
                    do {
                        try checkpoint(entry, generation)
                        let range = plan.range(ofPart: number)
                        partSlots.wait()
                        let etag: String
                        do {
                            defer { partSlots.signal() }
                            let url = try controlPlane.partUploadURL(token: token, partNumber: number)
                            etag = try putWithFreshURL(entry, initialURL: url, token: token, partNumber: number,
                                                       offset: range.offset, length: range.length, viaPartURL: true)
                        }
                        entry.cond.lock()
                        if entry.generation == generation, entry.phase == .uploading, entry.record.upload?.token == token {
                            entry.record.upload?.parts.append(UploadedPart(partNumber: number, etag: etag))
                            try? entry.persist(spool, state: .uploading, durable: true, now: tuning.now())
                        }
                        entry.cond.unlock()
                    } catch {
                        cursor.lock.withLock { if cursor.error == nil { cursor.error = error } }
                        return
                    }
                }
            }.start()
        }
        group.wait()
        if let error = cursor.lock.withLock({ cursor.error }) { throw error }
        try checkpoint(entry, generation)
        entry.cond.lock()
        progress = entry.record.upload ?? progress
        entry.cond.unlock()
        guard Set(progress.parts.map(\.partNumber)).count == plan.partCount else { throw Abandoned() }
    }

    // MARK: Streaming: the parts of a file that is still being written

    /// Threads per file that send parts before its close: two keep the store busy while one
    /// waits for its part URL, and leave the cores to the writer.
    static let streamersPerFile = 2

    /// Starts uploading the full parts of an entry written sequentially so far, when one is
    /// ready and fewer than `streamersPerFile` threads run for it (caller holds the entry's
    /// cond). The upload then overlaps the writing, and after the close only the last parts and
    /// complete remain. A failure only ends the streaming: the close-time upload sends whatever
    /// is missing.
    func streamFullParts(_ entry: SpoolEntry) {
        guard streaming, hasStreamablePart(entry) else { return }
        // The first thread makes the session; more join only once it exists.
        let wanted = entry.record.upload == nil ? 1 : Self.streamersPerFile
        guard entry.streamersActive < wanted else { return }
        entry.streamersActive += 1
        let generation = entry.generation
        let thread = Thread { [self] in streamParts(entry, generation: generation) }
        thread.name = "roset-stream"
        thread.start()
    }

    /// Bytes of an open entry that streamed parts may already have sent (caller holds cond): a
    /// change below this ends the streamed session.
    func streamedExtent(_ entry: SpoolEntry) -> Int64 { Int64(entry.nextStreamedPart - 1) * configuredPartSize }

    /// Caller holds cond.
    private func hasStreamablePart(_ entry: SpoolEntry) -> Bool {
        entry.phase == .writing && entry.runningChecksum != nil && entry.materialized && !entry.unlinked && !entry.streamingFailed
            && entry.nextStreamedPart <= PartPlan.maxParts
            && entry.record.size >= Int64(entry.nextStreamedPart) * configuredPartSize
    }

    private func streamParts(_ entry: SpoolEntry, generation: Int) {
        defer { entry.cond.withLock { entry.streamersActive -= 1; entry.cond.broadcast() } }
        while true {
            entry.cond.lock()
            guard entry.generation == generation, hasStreamablePart(entry), !isStopped else { entry.cond.unlock(); return }
            guard let session = entry.record.upload else {
                entry.cond.unlock()
                do {
                    _ = try initUpload(entry, generation: generation, size: 0, multipart: true, partSize: configuredPartSize,
                                       streaming: true)
                    entry.cond.withLock { streamFullParts(entry) }  // a second thread may join now
                    continue
                } catch {
                    endStreaming(entry, generation: generation, part: 0, error: error)
                    return
                }
            }
            guard session.multipart, session.partSize == configuredPartSize else { entry.cond.unlock(); return }
            let number = entry.nextStreamedPart
            entry.nextStreamedPart += 1
            entry.cond.unlock()
            do {
                let offset = Int64(number - 1) * configuredPartSize
                partSlots.wait()
                let etag: String
                do {
                    defer { partSlots.signal() }
                    let url = try controlPlane.partUploadURL(token: session.token, partNumber: number)
                    etag = try putWithFreshURL(entry, initialURL: url, token: session.token, partNumber: number,
                                               offset: offset, length: configuredPartSize, viaPartURL: true)
                }
                entry.cond.lock()
                // Kept only while the session is current: a change below the part drops the session.
                if entry.generation == generation, entry.isLive, entry.record.upload?.token == session.token {
                    entry.record.upload?.parts.append(UploadedPart(partNumber: number, etag: etag))
                    let state = entry.record.state
                    try? entry.persist(spool, state: state, durable: state != .open, now: tuning.now())
                }
                entry.cond.unlock()
            } catch {
                endStreaming(entry, generation: generation, part: number, error: error)
                return
            }
        }
    }

    private func endStreaming(_ entry: SpoolEntry, generation: Int, part: Int, error: Error) {
        if error is Abandoned { return }
        entry.cond.withLock { if entry.generation == generation { entry.streamingFailed = true } }
        logger.info("streaming parts before the close failed; the rest goes after the close",
                    metadata: ["entry": "\(entry.id)", "part": "\(part)", "error": "\(error)"])
    }

    /// PUT of one range; a 403 (expired signature) gets a fresh part URL, up to three times.
    private func putWithFreshURL(_ entry: SpoolEntry, initialURL: String, token: String, partNumber: Int,
                                 offset: Int64, length: Int64, viaPartURL: Bool) throws -> String {
        var url = initialURL
        var refreshes = 0
        let data = entry.cond.withLock { entry.data }
        while true {
            do {
                let etag = try store.write(url: url, fileDescriptor: data.fd, offset: offset, length: length)
                data.dropFromPageCache(offset: offset, count: length)
                return etag
            } catch let e as RosetError where e.kind == .urlRejected && refreshes < 3 && viaPartURL {
                refreshes += 1
                url = try controlPlane.partUploadURL(token: token, partNumber: partNumber)
            }
        }
    }
}

extension NSCondition {
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}
