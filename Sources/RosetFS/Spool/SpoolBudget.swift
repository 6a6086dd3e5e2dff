// The spool's bound (spool_max_mb) and free-space floor (spool_min_free_mb), and the
// back-pressure that keeps writers within them. Invariants:
// - `used` is the bytes the spool's data files hold: a written byte counts from its write, and
//   stops counting when its entry is removed or when its part is released (a part the store
//   confirmed, punched out of the data file when room is short: `reclaim`, `needsRoom`);
// - a writer whose growth would pass the bound (or bring the spool's file system under the
//   floor) waits while waiting can help (`canHelp`: an upload that is not failing is pending,
//   or a file's streamed parts will be confirmed and released); it fails with ENOSPC only when nothing could make room
//   for `hopelessWait` seconds, or when no byte was freed for `stallWait` seconds. Nothing is
//   ever truncated or dropped: the failing write writes nothing.
// - every wait longer than a second is logged once when it starts and once when it ends.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging

final class SpoolBudget: @unchecked Sendable {
    private let cond = NSCondition()
    let capacity: Int64
    /// Free bytes the spool's file system keeps (0: no floor).
    let minimumFree: Int64
    private(set) var used: Int64 = 0
    /// Largest `used` seen (status and tests).
    private(set) var peak: Int64 = 0
    /// Writers waiting for room.
    private var waiters = 0
    /// Entries sealed and not yet confirmed (kept for status; `canHelp` decides about waiting).
    private(set) var draining = 0
    private var stopped = false
    /// Bytes ever given back (a waiter sees progress by it).
    private var freedTotal: Int64 = 0
    /// Free bytes of the spool's file system, nil when unknown (no floor check then).
    private let freeBytes: () -> Int64?
    let hopelessWait: Double
    let stallWait: Double
    var logger: Logger?

    init(capacityBytes: Int64, minimumFreeBytes: Int64 = 0, initiallyUsed: Int64 = 0, hopelessWait: Double = 2,
         stallWait: Double = 120, freeBytes: @escaping () -> Int64? = { nil }) {
        capacity = capacityBytes
        minimumFree = minimumFreeBytes
        used = initiallyUsed
        peak = initiallyUsed
        self.hopelessWait = hopelessWait
        self.stallWait = stallWait
        self.freeBytes = freeBytes
    }

    /// Free bytes of the file system at `path` (statvfs), nil when it cannot be asked.
    static func freeBytes(at path: String) -> Int64? {
        var st = statvfs()
        guard statvfs(path, &st) == 0 else { return nil }
        return Int64(st.f_bavail) * Int64(st.f_frsize)
    }

    /// Whether `growth` more bytes fit (caller holds cond).
    private func fits(_ growth: Int64) -> Bool {
        if used + growth > capacity { return false }
        if minimumFree > 0, let free = freeBytes(), free - growth < minimumFree { return false }
        return true
    }

    /// Takes `growth` bytes, waiting while they do not fit and `canHelp` says waiting may make
    /// room (it is asked without the budget's lock). Throws ENOSPC when waiting cannot help.
    /// `reclaim(bytes)` is asked first (without the lock) to release what it can.
    func reserve(_ growth: Int64, canHelp: () -> Bool, reclaim: (Int64) -> Void = { _ in }) throws {
        guard growth > 0 else { return }
        cond.lock()
        if fits(growth) || stopped { take(growth); cond.unlock(); return }
        waiters += 1
        let started = Date()
        var lastProgress = started, lastHope = started
        var freedSeen = freedTotal
        var logged = false
        while !fits(growth) && !stopped {
            let now = Date()
            if freedTotal != freedSeen { freedSeen = freedTotal; lastProgress = now }
            let short = used + growth - capacity
            cond.unlock()
            reclaim(max(short, growth))
            let hope = canHelp()
            cond.lock()
            if fits(growth) { break }
            if hope { lastHope = now }
            let hopeless = now.timeIntervalSince(lastHope) >= hopelessWait
            let stalled = now.timeIntervalSince(lastProgress) >= stallWait
            if hopeless || stalled {
                let (u, c) = (used, capacity)
                waiters -= 1
                cond.unlock()
                logger?.error("spool full: a write gets ENOSPC", metadata: [
                    "needed": "\(growth)", "used": "\(u)", "bound": "\(c)", "floor": "\(minimumFree)",
                    "waited": "\(String(format: "%.1f", now.timeIntervalSince(started)))s",
                    "why": "\(hopeless ? "no upload can make room (the store refuses or nothing is sealed)" : "no byte freed for \(Int(stallWait)) s")"])
                throw FSError(ENOSPC)
            }
            if !logged && now.timeIntervalSince(started) >= 1 {
                logged = true
                let (u, c) = (used, capacity)
                cond.unlock()
                logger?.notice("spool full: a writer waits for uploads to free room",
                               metadata: ["needed": "\(growth)", "used": "\(u)", "bound": "\(c)", "floor": "\(minimumFree)"])
                cond.lock()
                continue
            }
            _ = cond.wait(until: now.addingTimeInterval(0.1))
        }
        waiters -= 1
        take(growth)
        cond.unlock()
        if logged {
            logger?.notice("spool: the waiting writer goes on",
                           metadata: ["waited": "\(String(format: "%.1f", Date().timeIntervalSince(started)))s"])
        }
    }

    private func take(_ growth: Int64) {
        used += growth
        peak = max(peak, used)
    }

    func release(_ bytes: Int64) { adjust(-bytes) }

    func adjust(_ delta: Int64) {
        cond.lock()
        used = max(0, used + delta)
        peak = max(peak, used)
        if delta < 0 { freedTotal -= delta }
        cond.broadcast()
        cond.unlock()
    }

    /// Whether room is short: a writer waits, or `bytes` more would pass the bound.
    func needsRoom(adding bytes: Int64) -> Bool {
        cond.lock(); defer { cond.unlock() }
        return waiters > 0 || used + bytes > capacity
    }

    func drainStarted() { cond.lock(); draining += 1; cond.unlock() }

    func drainEnded() { cond.lock(); draining = max(0, draining - 1); cond.broadcast(); cond.unlock() }

    func stop() { cond.lock(); stopped = true; cond.broadcast(); cond.unlock() }

    /// Wakes waiters so they ask `canHelp` again (a streaming file's state changed).
    func poke() { cond.lock(); cond.broadcast(); cond.unlock() }
}
