// Backoff: full jitter inside [0, min(cap, base·2^(n-1))], Retry-After honoured and capped;
// which failures are retried.
import Foundation
import Testing
@testable import RosetClient

@Suite struct RetryPolicyTests {
    let policy = RetryPolicy(maxAttempts: 5, base: 0.1, cap: 10, retryAfterCap: 30)

    @Test func ceilingDoublesUpToTheCap() {
        #expect(policy.backoffCeiling(afterAttempt: 1) == 0.1)
        #expect(policy.backoffCeiling(afterAttempt: 2) == 0.2)
        #expect(policy.backoffCeiling(afterAttempt: 4) == 0.8)
        #expect(policy.backoffCeiling(afterAttempt: 9) == 10)
        #expect(policy.backoffCeiling(afterAttempt: 500) == 10)
    }

    @Test func jitterStaysWithinBoundsAndVaries() {
        for attempt in 1...12 {
            let ceiling = policy.backoffCeiling(afterAttempt: attempt)
            let samples = (0..<200).map { _ in policy.delay(afterAttempt: attempt, retryAfter: nil) }
            #expect(samples.allSatisfy { $0 >= 0 && $0 <= ceiling })
            #expect(Set(samples).count > 1)
        }
        // The random source sees exactly the jitter interval.
        var seen: ClosedRange<Double>? = nil
        _ = policy.delay(afterAttempt: 3, retryAfter: nil) { range in seen = range; return range.upperBound }
        #expect(seen == 0...0.4)
    }

    @Test func retryAfterIsHonouredAndCapped() {
        #expect(policy.delay(afterAttempt: 1, retryAfter: 2) == 2)
        #expect(policy.delay(afterAttempt: 1, retryAfter: 0) == 0)
        #expect(policy.delay(afterAttempt: 1, retryAfter: 86_400) == 30)
        #expect(RetryPolicy.parseRetryAfter("3") == 3)
        #expect(RetryPolicy.parseRetryAfter(" 1.5 ") == 1.5)
        #expect(RetryPolicy.parseRetryAfter("soon") == nil)
        #expect(RetryPolicy.parseRetryAfter(nil) == nil)
        let now = Date(timeIntervalSince1970: 1_445_412_480)  // Wed, 21 Oct 2015 07:28:00 GMT
        #expect(RetryPolicy.parseRetryAfter("Wed, 21 Oct 2015 07:28:10 GMT", now: now) == 10)
    }

    @Test func onlyTransientFailuresAreRetried() {
        let retried: [RosetError.Kind] = [.rateLimited, .server, .network]
        let final: [RosetError.Kind] = [.notFound, .unauthorized, .forbidden, .nameConflict, .conflict,
                                        .quotaExceeded, .badRequest, .decoding, .urlRejected, .rangeNotSatisfiable]
        for k in retried { #expect(RetryPolicy.isRetryable(RosetError(kind: k, endpoint: "e", message: "m"))) }
        for k in final { #expect(!RetryPolicy.isRetryable(RosetError(kind: k, endpoint: "e", message: "m"))) }
    }

    @Test func configurationTrimsTrailingSlashes() {
        #expect(ClientConfiguration(apiURL: "http://h:1//", apiKey: "k").apiURL == "http://h:1")
        #expect(ClientConfiguration(apiURL: "http://h:1", apiKey: "k", mountId: "").mountId == nil)
        #expect(ClientConfiguration(apiURL: "http://h", apiKey: "k").userAgent.hasPrefix("roset-fuse/"))
    }
}
