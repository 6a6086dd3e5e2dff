// Ranged reads of one node's content through its signed download URL. Invariant: a read never
// uses a URL that is known to be expired; the URL is fetched again shortly before it expires and
// once more when the store answers 403 (expired or revoked signature), and then the read is
// retried once. The grant's `size` (not the node's) bounds reads, as docs/PROTOCOL.md §3.5 says.
import Foundation

public final class SignedURLReader: @unchecked Sendable {
    public let nodeId: String
    private let controlPlane: ControlPlane
    private let store: ObjectStore
    /// Refresh this long before expiry, capped at a quarter of the URL's lifetime so that
    /// short-lived URLs are not refreshed on every read.
    private let refreshMargin: TimeInterval
    private let lock = NSLock()
    private var grant: DownloadGrant
    private var grantReceivedAt: Date

    /// Fetches the first grant now: fails as `open` should (ENOENT, EACCES, ...).
    public init(nodeId: String, controlPlane: ControlPlane, store: ObjectStore, refreshMargin: TimeInterval = 300) throws {
        self.nodeId = nodeId
        self.controlPlane = controlPlane
        self.store = store
        self.refreshMargin = refreshMargin
        self.grant = try controlPlane.download(id: nodeId)
        self.grantReceivedAt = Date()
    }

    /// The size of the content this reader was opened on.
    public var size: Int64 { lock.withLock { grant.size } }

    /// Reads [offset, offset + buffer.count) clipped to the content size; returns the byte count.
    public func read(offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let (url, size) = try currentURL()
        guard offset < size, buffer.count > 0 else { return 0 }
        let wanted = Int(min(Int64(buffer.count), size - offset))
        let target = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<wanted])
        do {
            return try store.read(url: url, offset: offset, into: target)
        } catch let error as RosetError where error.kind == .urlRejected {
            let fresh = try refresh(replacing: url)
            return try store.read(url: fresh, offset: offset, into: target)
        }
    }

    /// Bytes [offset, offset + Σ counts) into pipes, in order (`ObjectStore.read(url:offset:intoPipes:filled:)`),
    /// with the same URL refresh as `read`. False, with nothing read, when the store cannot
    /// splice this URL. The range must lie within the content.
    public func read(offset: Int64, intoPipes targets: [PipeDownloader.Target], filled: (Int) -> Bool) throws -> Bool {
        let (url, _) = try currentURL()
        do {
            return try store.read(url: url, offset: offset, intoPipes: targets, filled: filled)
        } catch let error as RosetError where error.kind == .urlRejected {
            // A 403 comes before any body byte: nothing was written into the pipes yet.
            let fresh = try refresh(replacing: url)
            return try store.read(url: fresh, offset: offset, intoPipes: targets, filled: filled)
        }
    }

    /// True when reads of the current URL can go into pipes (plain http, no proxy).
    public var canReadIntoPipes: Bool { PipeDownloader.accepts(lock.withLock { grant.url }) }

    private func currentURL() throws -> (String, Int64) {
        let (g, received) = lock.withLock { (grant, grantReceivedAt) }
        let lifetime = g.expiresAt.timeIntervalSince(received)
        let margin = min(refreshMargin, max(lifetime / 4, 0))
        if Date().addingTimeInterval(margin) >= g.expiresAt {
            return (try refresh(replacing: g.url), g.size)
        }
        return (g.url, g.size)
    }

    /// Fetches a new grant unless another thread already replaced `stale`.
    private func refresh(replacing stale: String) throws -> String {
        if let current = lock.withLock({ grant.url == stale ? nil : grant.url }) { return current }
        let fresh = try controlPlane.download(id: nodeId)
        lock.withLock { grant = fresh; grantReceivedAt = Date() }
        return fresh.url
    }
}
