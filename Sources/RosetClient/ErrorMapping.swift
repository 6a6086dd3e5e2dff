// HTTP answers to `RosetError`s (docs/PROTOCOL.md §6.2). Invariant: a signed-URL 403 is
// `.urlRejected` (so `SignedURLReader` refreshes the URL) while a control-plane 403 is
// `.forbidden`; a quota error is recognised by status 402 or by its code, whatever the status.
import Foundation

public enum ErrorMapping {
    /// Which side of the protocol answered: the Roset API, or an object store via a signed URL.
    public enum Origin: Sendable { case controlPlane, signedURL }

    /// The error body's fields (docs/PROTOCOL.md §6.1: `error`, `message`, `code`, `details`), all optional.
    public struct ErrorBody: Sendable, Equatable {
        public var code: String?
        public var message: String?
        public var existingNodeId: String?
    }

    public static func kind(status: Int, code: String?, origin: Origin) -> RosetError.Kind {
        if code == "QUOTA_EXCEEDED" || status == 402 { return .quotaExceeded }
        switch status {
        case 401: return .unauthorized
        case 403: return origin == .signedURL ? .urlRejected : .forbidden
        case 404: return .notFound
        case 409: return code == "NAME_CONFLICT" ? .nameConflict : .conflict
        case 416: return origin == .signedURL ? .rangeNotSatisfiable : .badRequest
        case 429: return .rateLimited
        case 400..<500: return .badRequest
        default: return .server  // 5xx, and anything else that is neither success nor a 4xx
        }
    }

    /// Parses a JSON error body (platform `error`, CLI `message`) or an S3 XML error
    /// (`<Code>`, `<Message>`); tolerates any garbage by returning empty fields.
    public static func parseBody(_ data: Data) -> ErrorBody {
        var body = ErrorBody()
        guard !data.isEmpty, data.count <= 1 << 20 else { return body }
        if let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]),
           let dict = object as? [String: Any] {
            body.code = dict["code"] as? String
            body.message = (dict["message"] as? String) ?? (dict["error"] as? String)
            if body.message == nil, let nested = dict["error"] as? [String: Any] {
                // {"error": {"code": ..., "message": ...}} is common enough to accept.
                body.code = body.code ?? (nested["code"] as? String)
                body.message = nested["message"] as? String
            }
            if let details = dict["details"] as? [String: Any] {
                body.existingNodeId = details["existingNodeId"] as? String
            }
            return body
        }
        if let text = String(data: data, encoding: .utf8) {
            body.code = xmlElement("Code", in: text)
            body.message = xmlElement("Message", in: text)
            if body.message == nil {
                let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
                body.message = trimmed.isEmpty ? nil : String(trimmed.prefix(200))
            }
        }
        return body
    }

    private static func xmlElement(_ name: String, in text: String) -> String? {
        guard let open = text.range(of: "<\(name)>"),
              let close = text.range(of: "</\(name)>", range: open.upperBound..<text.endIndex)
        else { return nil }
        return String(text[open.upperBound..<close.lowerBound])
    }

    /// The error for a non-2xx answer. `redaction` scrubs the server's message too: a store may
    /// echo the signed URL back.
    public static func error(status: Int, body: Data, origin: Origin, endpoint: String,
                             redaction: Redaction) -> RosetError {
        let parsed = parseBody(body)
        let kind = kind(status: status, code: parsed.code, origin: origin)
        let message = redaction.text(parsed.message ?? HTTPURLResponseStatusText.text(for: status))
        return RosetError(kind: kind, status: status, code: parsed.code, endpoint: endpoint,
                          message: message, existingNodeId: parsed.existingNodeId)
    }
}

enum HTTPURLResponseStatusText {
    static func text(for status: Int) -> String {
        switch status {
        case 400: return "bad request"
        case 401: return "unauthorized"
        case 402: return "payment required"
        case 403: return "forbidden"
        case 404: return "not found"
        case 409: return "conflict"
        case 416: return "range not satisfiable"
        case 429: return "too many requests"
        case 500: return "internal server error"
        case 502: return "bad gateway"
        case 503: return "service unavailable"
        case 504: return "gateway timeout"
        default: return "HTTP \(status)"
        }
    }
}
