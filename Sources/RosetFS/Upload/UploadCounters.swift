// Upload outcomes counted by the uploader since the daemon started, published in the spool's
// STATUS file. Invariant: every field changes under `lock`; `snapshot` reads them together.
import Foundation

final class UploadCounters: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var confirmed = 0
    private(set) var failures = 0
    private(set) var lastError: String?
    private(set) var lastErrorAt: Double?

    func recordSuccess() { lock.withLock { confirmed += 1 } }
    func recordFailure(_ error: Error, at date: Date) {
        lock.withLock { failures += 1; lastError = "\(error)"; lastErrorAt = date.timeIntervalSince1970 }
    }
    func snapshot() -> (Int, Int, String?, Double?) { lock.withLock { (confirmed, failures, lastError, lastErrorAt) } }
}
