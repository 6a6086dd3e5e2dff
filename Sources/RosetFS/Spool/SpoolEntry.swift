// One file's pending content in the spool, in memory. Invariants (all fields guarded by `cond`):
// - the data file holds the whole content from the moment `materialized` is true; before that
//   (an existing file opened without O_TRUNC and not yet written) reads go to the object store;
// - `record` mirrors the newest journal record written; it changes only through `persist`;
// - `generation` grows whenever the entry is reopened or cancelled, so an upload attempt started
//   for an older generation abandons itself at its next checkpoint and never completes stale data;
// - while `phase == .completing` nobody reopens, retargets or cancels: they wait.
// - while the entry is written sequentially (`runningChecksum != nil`), bytes [0, size) are in the data
//   file, so full parts below `size` may be uploaded before the close (streaming, see Uploader);
//   such parts are recorded in `record.upload` only while its token is the one they were sent for.
import Foundation
import RosetClient

final class SpoolEntry: @unchecked Sendable {
    enum Phase: Equatable {
        case writing      // open record; writers may be attached
        case queued       // sealed, waiting for an upload worker (or a retry)
        case uploading
        case completing   // complete/commit in flight
        case done         // confirmed and removed from the spool
        case cancelled    // unlinked or replaced; removed from the spool
    }

    let id: String
    let cond = NSCondition()
    var record: JournalRecord
    var data: SpoolDataFile
    var phase: Phase
    var generation = 0
    var writers = 0
    var materialized: Bool
    var materializing = false
    /// The file was unlinked while still open: discard at the last release instead of sealing.
    var unlinked = false
    /// An init (which may create the remote node) is in flight: cancel waits for it (retarget
    /// leaves it a new target to find), and so do writes and closes unless it is a streaming init.
    var initInFlight = false
    var initIsStreaming = false
    /// CRC32C of bytes [0, runningChecksum.count) while writes are sequential appends, so the
    /// seal need not read the file back.
    var runningChecksum: CRC32C? = CRC32C()
    var modifiedAt: Date
    var writeCount = 0
    /// The last chmod, chown, utimensat or xattr change while pending: ctime moves with it
    /// (the server's own change time takes over once the upload completes, later still).
    var statusChangedAt: Date?
    /// setattr's mtime, shown until the next write.
    var explicitMtime: timespec?
    /// Written after the last explicit mtime: the node's `posix.mtime` must go after the upload.
    var dropRemoteMtime = false
    var failedAttempts = 0
    /// Reported to fsync and close-wait once `attemptsBeforeReporting` attempts failed.
    var reportedFailure: Error?
    /// Generation whose upload was confirmed.
    var completedGeneration = -1
    /// Next part number a streaming thread takes while the file is still being written (parts
    /// below it are sent or on their way).
    var nextStreamedPart = 1
    /// Streaming threads running for this entry; the uploader waits for them before its attempt.
    var streamersActive = 0
    /// Streaming failed once for this generation: the rest waits for the close, as before.
    var streamingFailed = false
    /// Recovered with journal files of layout 1: remove them all (a folder scan) at the end.
    var hasStrayJournalFiles = false

    /// Deletes the entry's files from the spool (caller holds cond or owns the entry).
    func removeFiles(_ spool: Spool) {
        spool.remove(entryId: id, data: data, strayFiles: hasStrayJournalFiles)
    }

    init(id: String, record: JournalRecord, data: SpoolDataFile, phase: Phase, materialized: Bool, modifiedAt: Date) {
        self.id = id
        self.record = record
        self.data = data
        self.phase = phase
        self.materialized = materialized
        self.modifiedAt = modifiedAt
    }

    /// Forgets the upload session and what was streamed into it (caller holds `cond`; aborting
    /// the token and persisting are the caller's business).
    func forgetUploadSession() {
        record.upload = nil
        nextStreamedPart = 1
        streamingFailed = false
    }

    /// The inode key: the node id once known, else the spool key.
    var key: String { record.target.nodeId ?? InodeTable.spoolKey(id) }
    var size: Int64 { record.size }
    var isLive: Bool { phase != .done && phase != .cancelled }

    /// Writes the next journal record (caller holds `cond`).
    func persist(_ spool: Spool, state: SpoolEntryState, durable: Bool, now: Date) throws {
        var next = record
        next.sequence += 1
        next.state = state
        next.updatedAt = now.timeIntervalSince1970
        next.modifiedAt = modifiedAt.timeIntervalSince1970
        try spool.write(next, durable: durable)
        record = next
    }

    /// Waits (holding `cond`) while another thread owns a step that must not be interleaved.
    func waitWhileBusy() {
        while phase == .completing || (initInFlight && !initIsStreaming) || materializing { cond.wait() }
    }
}
