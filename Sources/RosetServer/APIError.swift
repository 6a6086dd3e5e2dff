// Errors that become an HTTP answer. Invariant: every control-plane failure reaches the client as
// a status from docs/PROTOCOL.md §6.2 with the body {"error", "message", "code", "details"}; nothing
// else (paths, keys, stack traces) leaks into the body.
import Foundation

public struct APIError: Error, CustomStringConvertible {
    public var status: Int
    public var code: String
    public var message: String
    public var details: [String: Any]
    /// Seconds for a `Retry-After` header (429 answers).
    public var retryAfter: Int?

    public init(_ status: Int, _ code: String, _ message: String, details: [String: Any] = [:], retryAfter: Int? = nil) {
        self.status = status; self.code = code; self.message = message; self.details = details
        self.retryAfter = retryAfter
    }

    public var description: String { "\(status) \(code): \(message)" }

    /// `requestId` is for the Go CLI, which reads it next to `message` and `code`.
    var body: [String: Any] {
        ["error": message, "message": message, "code": code, "details": details,
         "requestId": "req_" + String(UInt64.random(in: 0...UInt64.max), radix: 16)]
    }

    static func notFound(_ what: String = "node not found") -> APIError { .init(404, "NODE_NOT_FOUND", what) }
    static func invalid(_ what: String) -> APIError { .init(400, "INVALID_REQUEST", what) }
    static func nameConflict(_ existing: String) -> APIError {
        .init(409, "NAME_CONFLICT", "a node with this name already exists", details: ["existingNodeId": existing])
    }
    static let uploadNotFound = APIError(404, "UPLOAD_NOT_FOUND", "upload not found or expired")
    static let parentNotFolder = APIError(400, "PARENT_NOT_FOLDER", "parent is not a folder")
    static let cycle = APIError(400, "CYCLE_DETECTED", "a folder cannot move into its own subtree")
    static let quota = APIError(402, "QUOTA_EXCEEDED", "storage quota exceeded")
    static func storage(_ what: String) -> APIError { .init(502, "STORAGE_ERROR", what) }
}
