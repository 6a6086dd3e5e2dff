// How a `RosetAPIClient` reaches the control plane and how patient it is. Invariant: every
// request the client makes is bounded by `connectTimeout` and the low-speed limit; control-plane
// calls are also bounded by `requestTimeout` (signed-URL transfers are not: a 256 MiB part may
// legitimately take long, the low-speed limit catches a stalled store).
import Foundation
import Logging

public enum RosetClientVersion {
    public static let current = "0.1.0"
}

public struct ClientConfiguration: Sendable {
    /// Base URL without `/v1` (e.g. `https://api.roset.dev`); trailing slashes are trimmed.
    public var apiURL: String
    public var apiKey: String
    /// Sent as `X-Roset-Mount-Id` and as `mountId` in resolve/create/init bodies when set.
    public var mountId: String?
    public var userAgent: String
    public var connectTimeout: TimeInterval
    /// A transfer slower than `lowSpeedLimit` bytes/s for `lowSpeedTime` seconds is aborted.
    public var lowSpeedLimit: Int
    public var lowSpeedTime: Int
    /// Total time allowed for one attempt of a control-plane call.
    public var requestTimeout: TimeInterval
    /// Attempts per logical call, the first included.
    public var maxAttempts: Int
    public var backoffBase: TimeInterval
    public var backoffCap: TimeInterval
    /// The longest `Retry-After` the client will wait for.
    public var retryAfterCap: TimeInterval
    public var logger: Logger

    public init(apiURL: String, apiKey: String, mountId: String? = nil,
                userAgent: String = "roset-fuse/\(RosetClientVersion.current)",
                connectTimeout: TimeInterval = 10, lowSpeedLimit: Int = 1024, lowSpeedTime: Int = 30,
                requestTimeout: TimeInterval = 60, maxAttempts: Int = 5,
                backoffBase: TimeInterval = 0.1, backoffCap: TimeInterval = 10,
                retryAfterCap: TimeInterval = 30,
                logger: Logger = Logger(label: "roset.client")) {
        var base = apiURL
        while base.hasSuffix("/") { base.removeLast() }
        self.apiURL = base
        self.apiKey = apiKey
        self.mountId = (mountId?.isEmpty ?? true) ? nil : mountId
        self.userAgent = userAgent
        self.connectTimeout = connectTimeout
        self.lowSpeedLimit = lowSpeedLimit
        self.lowSpeedTime = lowSpeedTime
        self.requestTimeout = requestTimeout
        self.maxAttempts = max(1, maxAttempts)
        self.backoffBase = backoffBase
        self.backoffCap = backoffCap
        self.retryAfterCap = retryAfterCap
        self.logger = logger
    }
}
