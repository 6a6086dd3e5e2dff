// Back-pressure on the spool (spool_max_mb). Invariants: a writer waits while the spool is over
// its bound and some sealed upload can still drain it; it never fails for being over the bound,
// and it never waits when nothing could drain (a single file larger than the bound goes through).
import Foundation

final class SpoolBudget: @unchecked Sendable {
    private let cond = NSCondition()
    private let capacity: Int64
    private(set) var used: Int64 = 0
    /// Entries sealed and not yet confirmed: what an upload can drain.
    private var draining = 0
    private var stopped = false

    init(capacityBytes: Int64, initiallyUsed: Int64 = 0) {
        capacity = capacityBytes
        used = initiallyUsed
    }

    /// Blocks until `growth` more bytes fit (or nothing could make room), then takes them.
    func reserve(_ growth: Int64) {
        guard growth > 0 else { return }
        cond.lock()
        while used + growth > capacity && draining > 0 && !stopped { cond.wait() }
        used += growth
        cond.unlock()
    }

    func release(_ bytes: Int64) { adjust(-bytes) }

    func adjust(_ delta: Int64) {
        cond.lock()
        used = max(0, used + delta)
        cond.broadcast()
        cond.unlock()
    }

    func drainStarted() { cond.lock(); draining += 1; cond.unlock() }

    func drainEnded() { cond.lock(); draining = max(0, draining - 1); cond.broadcast(); cond.unlock() }

    func stop() { cond.lock(); stopped = true; cond.broadcast(); cond.unlock() }

    var isWaitingPossible: Bool { cond.lock(); defer { cond.unlock() }; return draining > 0 }
}
