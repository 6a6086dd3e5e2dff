// libcurl process setup and the pool of easy handles. Invariants: `curl_global_init` runs once,
// before any handle exists; an easy handle is used by one thread at a time (popped from the pool
// under a lock, pushed back after the transfer); handles keep their connection caches between
// transfers (`curl_easy_reset` keeps live connections), so back-to-back small requests reuse a
// warm connection. DNS and TLS sessions are shared across handles through a CURLSH with lock
// callbacks; the connection cache itself is not shared, because libcurl does not support
// sharing connections between concurrent threads.
import CCurl
import Foundation

enum CurlGlobal {
    /// Evaluated once (Swift globals are lazily initialised under a lock).
    static let initialized: Bool = {
        curl_global_init(3) == CURLE_OK  // CURL_GLOBAL_ALL
    }()
}

/// One easy handle plus the error buffer libcurl writes into.
final class CurlEasy {
    let handle: UnsafeMutableRawPointer
    let errorBuffer: UnsafeMutablePointer<CChar>

    init?() {
        guard let h = curl_easy_init() else { return nil }
        handle = h
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }
}

/// The DNS and TLS-session share, with one lock per kind of shared data.
final class CurlShare: @unchecked Sendable {
    let share: UnsafeMutableRawPointer?
    fileprivate let locks: [NSLock] = (0..<16).map { _ in NSLock() }

    init() {
        share = curl_share_init()
        guard let s = share else { return }
        let me = Unmanaged.passUnretained(self).toOpaque()
        _ = roset_curl_share_setopt_userdata(s, me)
        _ = roset_curl_share_setopt_lock(s) { _, data, _, user in
            guard let user else { return }
            let shared = Unmanaged<CurlShare>.fromOpaque(user).takeUnretainedValue()
            shared.locks[Int(data.rawValue) & 15].lock()
        }
        _ = roset_curl_share_setopt_unlock(s) { _, data, user in
            guard let user else { return }
            let shared = Unmanaged<CurlShare>.fromOpaque(user).takeUnretainedValue()
            shared.locks[Int(data.rawValue) & 15].unlock()
        }
        _ = roset_curl_share_setopt_long(s, CURLSHOPT_SHARE, Int(CURL_LOCK_DATA_DNS.rawValue))
        _ = roset_curl_share_setopt_long(s, CURLSHOPT_SHARE, Int(CURL_LOCK_DATA_SSL_SESSION.rawValue))
    }

    deinit {
        if let s = share { curl_share_cleanup(s) }
    }
}

final class CurlHandlePool: @unchecked Sendable {
    let share: CurlShare
    private let lock = NSLock()
    private var idle: [CurlEasy] = []
    private let maxIdle: Int

    init(maxIdle: Int = 32) {
        _ = CurlGlobal.initialized
        share = CurlShare()
        self.maxIdle = maxIdle
    }

    deinit {
        // Handles attached to the share must be cleaned up before the share itself.
        idle.removeAll()
    }

    /// The most recently used handle (its connections are the warmest), or a new one.
    func acquire() -> CurlEasy? {
        if let easy = lock.withLock({ idle.popLast() }) { return easy }
        return CurlEasy()
    }

    /// Returns a handle to the pool; beyond `maxIdle` it is freed with its connections.
    func release(_ easy: CurlEasy) {
        let kept: Bool = lock.withLock {
            guard idle.count < maxIdle else { return false }
            idle.append(easy)
            return true
        }
        if !kept { _ = easy }  // dropped here: deinit closes its connections
    }
}
