// When and how long to wait before the next attempt. Invariants: only 429 (unless it is a quota
// error), 5xx and network failures are retried; the wait is "full jitter" exponential backoff,
// uniform in [0, min(cap, base * 2^retry)]; a `Retry-After` from the server replaces the jitter,
// capped at `retryAfterCap`, so a hostile header cannot park a FUSE thread for hours.
import Foundation

public struct RetryPolicy: Sendable {
    public var maxAttempts: Int
    public var base: TimeInterval
    public var cap: TimeInterval
    public var retryAfterCap: TimeInterval

    public init(maxAttempts: Int, base: TimeInterval, cap: TimeInterval, retryAfterCap: TimeInterval) {
        self.maxAttempts = maxAttempts; self.base = base; self.cap = cap; self.retryAfterCap = retryAfterCap
    }

    /// Whether a failed attempt of this kind is worth repeating.
    public static func isRetryable(_ error: RosetError) -> Bool {
        switch error.kind {
        case .rateLimited, .server, .network: return true
        default: return false
        }
    }

    /// The upper bound of the jittered wait after failed attempt number `attempt` (1-based).
    public func backoffCeiling(afterAttempt attempt: Int) -> TimeInterval {
        let exponent = Double(min(max(attempt - 1, 0), 30))
        return min(cap, base * pow(2, exponent))
    }

    /// The wait before the next attempt. `retryAfter` is the server's `Retry-After` in seconds.
    public func delay(afterAttempt attempt: Int, retryAfter: TimeInterval?,
                      random: (ClosedRange<Double>) -> Double = { Double.random(in: $0) }) -> TimeInterval {
        if let retryAfter, retryAfter.isFinite, retryAfter >= 0 {
            return min(retryAfter, retryAfterCap)
        }
        let ceiling = backoffCeiling(afterAttempt: attempt)
        return ceiling > 0 ? random(0...ceiling) : 0
    }

    /// `Retry-After` as seconds: an integer (or decimal) delay, or an HTTP date.
    public static func parseRetryAfter(_ value: String?, now: Date = Date()) -> TimeInterval? {
        guard let raw = value?.trimmingCharacters(in: .whitespaces), !raw.isEmpty else { return nil }
        if let seconds = Double(raw), seconds.isFinite { return max(0, seconds) }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        if let date = f.date(from: raw) { return max(0, date.timeIntervalSince(now)) }
        return nil
    }
}
