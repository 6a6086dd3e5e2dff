// The errno map of docs/PROTOCOL.md §6.2: every kind from its HTTP answer, and the error body's fields.
import Foundation
import Testing
@testable import RosetClient
#if canImport(Glibc)
import Glibc
#endif

@Suite struct ErrorMappingTests {
    struct Case: Sendable, CustomStringConvertible {
        var status: Int, code: String?, origin: ErrorMapping.Origin, kind: RosetError.Kind, errno: Int32
        var description: String { "\(status) \(code ?? "-") \(origin)" }
    }

    static let cases: [Case] = [
        Case(status: 404, code: "NODE_NOT_FOUND", origin: .controlPlane, kind: .notFound, errno: ENOENT),
        Case(status: 401, code: nil, origin: .controlPlane, kind: .unauthorized, errno: EACCES),
        Case(status: 403, code: "PERMISSION_DENIED", origin: .controlPlane, kind: .forbidden, errno: EACCES),
        Case(status: 409, code: "NAME_CONFLICT", origin: .controlPlane, kind: .nameConflict, errno: EEXIST),
        Case(status: 409, code: "LEASE_CONFLICT", origin: .controlPlane, kind: .conflict, errno: EBUSY),
        Case(status: 409, code: nil, origin: .controlPlane, kind: .conflict, errno: EBUSY),
        Case(status: 429, code: "RATE_LIMITED", origin: .controlPlane, kind: .rateLimited, errno: EAGAIN),
        Case(status: 402, code: nil, origin: .controlPlane, kind: .quotaExceeded, errno: ENOSPC),
        Case(status: 429, code: "QUOTA_EXCEEDED", origin: .controlPlane, kind: .quotaExceeded, errno: ENOSPC),
        Case(status: 400, code: "CYCLE_DETECTED", origin: .controlPlane, kind: .badRequest, errno: EIO),
        Case(status: 416, code: nil, origin: .controlPlane, kind: .badRequest, errno: EIO),
        Case(status: 500, code: "INTERNAL_ERROR", origin: .controlPlane, kind: .server, errno: EIO),
        Case(status: 503, code: nil, origin: .signedURL, kind: .server, errno: EIO),
        Case(status: 403, code: "AccessDenied", origin: .signedURL, kind: .urlRejected, errno: EIO),
        Case(status: 416, code: nil, origin: .signedURL, kind: .rangeNotSatisfiable, errno: EIO),
        Case(status: 404, code: nil, origin: .signedURL, kind: .notFound, errno: ENOENT),
    ]

    @Test(arguments: cases)
    func statusMapsToKindAndErrno(_ c: Case) {
        let kind = ErrorMapping.kind(status: c.status, code: c.code, origin: c.origin)
        #expect(kind == c.kind)
        #expect(RosetError(kind: kind, endpoint: "x", message: "m").errno == c.errno)
    }

    @Test func networkAndDecodingAreEIO() {
        #expect(RosetError(kind: .network, endpoint: "x", message: "m").errno == EIO)
        #expect(RosetError(kind: .decoding, endpoint: "x", message: "m").errno == EIO)
    }

    @Test func errorBodyFieldsAreParsed() {
        let body = Data(#"{"error":"name taken","message":"name taken","code":"NAME_CONFLICT","details":{"existingNodeId":"n9"}}"#.utf8)
        let e = ErrorMapping.error(status: 409, body: body, origin: .controlPlane, endpoint: "POST /v1/nodes",
                                   redaction: Redaction(apiKey: nil))
        #expect(e.kind == .nameConflict && e.code == "NAME_CONFLICT" && e.existingNodeId == "n9")
        #expect(e.message == "name taken" && e.status == 409 && e.endpoint == "POST /v1/nodes")
        #expect(ErrorMapping.parseBody(Data(#"{"message":"only message"}"#.utf8)).message == "only message")
        let s3 = ErrorMapping.parseBody(Data("<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>".utf8))
        #expect(s3.code == "AccessDenied" && s3.message == "Request has expired")
        #expect(ErrorMapping.parseBody(Data([0xff, 0x00, 0x13])).code == nil)
    }

    @Test func errorMessagesAreRedacted() {
        let body = Data(#"{"error":"bad signature for http://s/blob/x?expires=1&sig=deadbeef, key sk_secret"}"#.utf8)
        let e = ErrorMapping.error(status: 403, body: body, origin: .signedURL, endpoint: "GET <signed url>",
                                   redaction: Redaction(apiKey: "sk_secret"))
        #expect(!e.message.contains("deadbeef") && !e.message.contains("sk_secret"))
        #expect(!e.description.contains("deadbeef"))
    }
}
