// Every failure of a control-plane call or a signed-URL transfer, typed, with the errno a
// filesystem should report for it (docs/PROTOCOL.md §6.2). Messages never contain the API key or a URL
// signature: they are built from redacted text only.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct RosetError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        case notFound            // 404
        case unauthorized        // 401
        case forbidden           // 403 from the control plane
        case nameConflict        // 409 NAME_CONFLICT
        case conflict            // any other 409
        case rateLimited         // 429 after every retry
        case quotaExceeded       // 402, or QUOTA_EXCEEDED
        case badRequest          // other 4xx
        case server              // 5xx after every retry
        case network             // connect, reset, timeout after every retry
        case decoding            // a 2xx whose body does not decode
        case urlRejected         // 403 from a signed URL: expired or bad signature
        case rangeNotSatisfiable // 416 from a signed URL
    }

    public var kind: Kind
    /// HTTP status, when a response arrived.
    public var status: Int?
    /// The server's error `code` (e.g. `CYCLE_DETECTED`), when it sent one.
    public var code: String?
    /// The endpoint as a template, e.g. `GET /v1/nodes/{id}`, or `GET <signed url>`.
    public var endpoint: String
    /// Redacted human-readable detail.
    public var message: String
    /// `details.existingNodeId` of a NAME_CONFLICT.
    public var existingNodeId: String?

    public init(kind: Kind, status: Int? = nil, code: String? = nil, endpoint: String, message: String,
                existingNodeId: String? = nil) {
        self.kind = kind; self.status = status; self.code = code; self.endpoint = endpoint
        self.message = message; self.existingNodeId = existingNodeId
    }

    public var errno: Int32 {
        switch kind {
        case .notFound: return ENOENT
        case .unauthorized, .forbidden: return EACCES
        case .nameConflict: return EEXIST
        case .conflict: return EBUSY
        case .rateLimited: return EAGAIN
        case .quotaExceeded: return ENOSPC
        case .badRequest, .server, .network, .decoding, .urlRejected, .rangeNotSatisfiable: return EIO
        }
    }

    public var description: String {
        var s = "\(endpoint): \(message)"
        if let status { s += " (HTTP \(status)" + (code.map { ", \($0)" } ?? "") + ")" }
        return s
    }
}
