// What the client puts on the wire and how it treats answers a real server would not give,
// against a scripted loopback peer (real sockets, real libcurl).
import Foundation
import Logging
import Testing
@testable import RosetClient
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

private func scriptedClient(_ server: ScriptedHTTPServer, mountId: String? = "m1", maxAttempts: Int = 3) -> RosetAPIClient {
    var logger = Logger(label: "wire-test")
    logger.logLevel = .critical
    return RosetAPIClient(configuration: ClientConfiguration(
        apiURL: server.baseURL + "//", apiKey: "rk_wire_secret", mountId: mountId, connectTimeout: 2,
        lowSpeedLimit: 1, lowSpeedTime: 5, requestTimeout: 5, maxAttempts: maxAttempts,
        backoffBase: 0.001, backoffCap: 0.01, retryAfterCap: 0.2, logger: logger))
}

private let nodeJSON = #"{"id":"n1","name":"d","type":"folder","createdAt":"2025-01-01T00:00:00Z","updatedAt":"2025-01-01T00:00:00Z"}"#

@Suite(.serialized) struct ClientWireTests {
    @Test func controlPlaneHeadersAndOneIdempotencyKeyAcrossRetries() throws {
        let server = try ScriptedHTTPServer(responses: [
            ScriptedHTTPServer.response(503, headers: ["Retry-After: 0"], body: #"{"error":"busy","code":"X"}"#),
            ScriptedHTTPServer.response(502),
            ScriptedHTTPServer.response(201, headers: ["Content-Type: application/json"], body: #"{"node":\#(nodeJSON)}"#),
        ])
        defer { server.stop() }
        let client = scriptedClient(server)
        let node = try client.createFolder(name: "d", parentId: "p1", metadata: ["k": .string("v")])
        #expect(node.id == "n1")
        let reqs = server.requests
        #expect(reqs.count == 3)
        for r in reqs {
            #expect(r.requestLine == "POST /v1/nodes HTTP/1.1")  // trailing slashes trimmed
            #expect(r.headers["authorization"] == "Bearer rk_wire_secret")
            #expect(r.headers["x-roset-mount-id"] == "m1")
            #expect(r.headers["user-agent"]?.hasPrefix("roset-fuse/") == true)
            #expect(r.headers["content-type"] == "application/json")
            #expect(!r.has(header: "Expect"))
            let body = try #require(try JSONSerialization.jsonObject(with: r.body) as? [String: Any])
            #expect(body["mountId"] as? String == "m1" && body["name"] as? String == "d" && body["type"] as? String == "folder")
            #expect(body["parentId"] as? String == "p1")
        }
        let keys = Set(reqs.compactMap { $0.headers["idempotency-key"] })
        #expect(keys.count == 1 && !(keys.first ?? "").isEmpty)

        // A second logical call gets a new key.
        let again = try ScriptedHTTPServer(responses: [ScriptedHTTPServer.response(200, body: #"{"nodes":{"x":null}}"#)])
        defer { again.stop() }
        _ = try scriptedClient(again).resolve(name: "x", in: "p1")
        let second = try #require(again.requests.first)
        #expect(second.headers["idempotency-key"] != nil && second.headers["idempotency-key"] != keys.first)
        let resolveBody = try #require(try JSONSerialization.jsonObject(with: second.body) as? [String: Any])
        #expect(resolveBody["paths"] as? [String] == ["x"] && resolveBody["baseId"] as? String == "p1")
    }

    @Test func getsCarryNoBodyHeadersAndPartPostHasNoContentType() throws {
        let server = try ScriptedHTTPServer(responses: [
            ScriptedHTTPServer.response(200, body: nodeJSON),
            ScriptedHTTPServer.response(200, body: #"{"uploadUrl":"http://x/part?sig=1"}"#),
            ScriptedHTTPServer.response(204),
        ])
        defer { server.stop() }
        let client = scriptedClient(server, mountId: nil)
        _ = try client.node(id: "n1")
        #expect(try client.partUploadURL(token: "tok", partNumber: 7) == "http://x/part?sig=1")
        try client.deleteNode(id: "n1")
        let reqs = server.requests
        #expect(reqs[0].requestLine == "GET /v1/nodes/n1 HTTP/1.1")
        #expect(!reqs[0].has(header: "Content-Type") && !reqs[0].has(header: "Idempotency-Key"))
        #expect(!reqs[0].has(header: "X-Roset-Mount-Id"))
        #expect(reqs[1].requestLine == "POST /v1/uploads/tok/part?partNumber=7 HTTP/1.1")
        #expect(!reqs[1].has(header: "Content-Type") && reqs[1].headers["content-length"] == "0")
        #expect(reqs[1].has(header: "Idempotency-Key"))
        #expect(reqs[2].requestLine == "DELETE /v1/nodes/n1 HTTP/1.1")
    }

    @Test func signedURLPutSendsContentLengthWithoutAuthAndReturnsTheETag() throws {
        let server = try ScriptedHTTPServer(responses: [
            ScriptedHTTPServer.response(500),
            ScriptedHTTPServer.response(200, headers: ["ETag: \"abc123\""]),
        ])
        defer { server.stop() }
        let client = scriptedClient(server)
        let file = try Contract.RandomFile(size: 70_000)
        let etag = try client.write(url: server.baseURL + "/blob/p?expires=1&sig=s", fileDescriptor: file.fd,
                                    offset: 1000, length: 50_000)
        #expect(etag == "abc123")
        let reqs = server.requests
        #expect(reqs.count == 2)  // the 500 was retried, the file region sent again in full
        for r in reqs {
            #expect(r.requestLine.hasPrefix("PUT /blob/p?expires=1&sig=s "))
            #expect(r.headers["content-length"] == "50000" && !r.has(header: "Transfer-Encoding"))
            #expect(!r.has(header: "Authorization") && !r.has(header: "X-Roset-Mount-Id"))
            #expect(r.body == file.data[1000..<51_000])
        }
    }

    @Test func putWithoutETagIsAnError() throws {
        let server = try ScriptedHTTPServer(responses: [ScriptedHTTPServer.response(200)])
        defer { server.stop() }
        let file = try Contract.RandomFile(size: 10)
        let error = try #require(throws: RosetError.self) {
            try scriptedClient(server).write(url: server.baseURL + "/o?sig=s", fileDescriptor: file.fd, offset: 0, length: 10)
        }
        #expect(error.kind == .decoding && error.endpoint == "PUT <signed url>")
    }

    @Test func rangedGetRejectsAMismatchedContentRange() throws {
        let body = String(repeating: "x", count: 100)
        let server = try ScriptedHTTPServer(responses: [
            ScriptedHTTPServer.response(206, headers: ["Content-Range: bytes 0-99/1000"], body: body),
        ])
        defer { server.stop() }
        var buffer = [UInt8](repeating: 0, count: 100)
        let error = try #require(throws: RosetError.self) {
            try buffer.withUnsafeMutableBytes { try scriptedClient(server).read(url: server.baseURL + "/o?sig=s", offset: 500, into: $0) }
        }
        #expect(error.kind == .server && error.message.contains("Content-Range"))
        let req = try #require(server.requests.first)
        #expect(req.headers["range"] == "bytes=500-599" && !req.has(header: "Authorization"))
    }

    @Test func rangedGetRejectsA206WithoutContentRange() throws {
        let server = try ScriptedHTTPServer(responses: [ScriptedHTTPServer.response(206, body: "abc")])
        defer { server.stop() }
        var buffer = [UInt8](repeating: 0, count: 3)
        #expect(throws: RosetError.self) {
            try buffer.withUnsafeMutableBytes { try scriptedClient(server).read(url: server.baseURL + "/o", offset: 0, into: $0) }
        }
    }

    @Test func wholeObjectAnswerIsSlicedAndShortObjectsEndEarly() throws {
        let object = (0..<5000).map { String(UnicodeScalar(UInt8(65 + $0 % 26))) }.joined()
        let server = try ScriptedHTTPServer(responses: [ScriptedHTTPServer.response(200, body: object)])
        defer { server.stop() }
        let client = scriptedClient(server)
        var buffer = [UInt8](repeating: 0, count: 1000)
        let n = try buffer.withUnsafeMutableBytes { try client.read(url: server.baseURL + "/o", offset: 1234, into: $0) }
        #expect(n == 1000 && String(decoding: buffer, as: UTF8.self) == String(object.dropFirst(1234).prefix(1000)))
        let m = try buffer.withUnsafeMutableBytes { try client.read(url: server.baseURL + "/o", offset: 4500, into: $0) }
        #expect(m == 500 && String(decoding: buffer[0..<500], as: UTF8.self) == String(object.suffix(500)))
    }

    @Test func bodyCutShortIsRetriedThenANetworkError() throws {
        // Content-Length promises 100 bytes, 10 arrive, the connection closes.
        let truncated = "HTTP/1.1 206 Partial\r\nContent-Range: bytes 0-99/100\r\nContent-Length: 100\r\nConnection: close\r\n\r\n0123456789"
        let server = try ScriptedHTTPServer(responses: [truncated])
        defer { server.stop() }
        var buffer = [UInt8](repeating: 0, count: 100)
        let error = try #require(throws: RosetError.self) {
            try buffer.withUnsafeMutableBytes { try scriptedClient(server, maxAttempts: 3).read(url: server.baseURL + "/o?sig=topsecret", offset: 0, into: $0) }
        }
        #expect(error.kind == .network && server.requests.count == 3)
        #expect(!error.description.contains("topsecret"))
    }

    @Test func undecodableSuccessNamesTheEndpoint() throws {
        let server = try ScriptedHTTPServer(responses: [ScriptedHTTPServer.response(200, body: "<html>oops</html>")])
        defer { server.stop() }
        let error = try #require(throws: RosetError.self) { try scriptedClient(server).node(id: "n1") }
        #expect(error.kind == .decoding && error.endpoint == "GET /v1/nodes/{id}" && server.requests.count == 1)
    }

    @Test func quotaAndOther4xxAreNotRetried() throws {
        let server = try ScriptedHTTPServer(responses: [
            ScriptedHTTPServer.response(429, body: #"{"error":"quota","code":"QUOTA_EXCEEDED"}"#),
            ScriptedHTTPServer.response(400, body: #"{"message":"bad","code":"INVALID_REQUEST"}"#),
        ])
        defer { server.stop() }
        let client = scriptedClient(server, maxAttempts: 5)
        let quota = try #require(throws: RosetError.self) { try client.node(id: "n") }
        #expect(quota.kind == .quotaExceeded && quota.errno == ENOSPC)
        let bad = try #require(throws: RosetError.self) { try client.node(id: "n") }
        #expect(bad.kind == .badRequest && bad.code == "INVALID_REQUEST" && bad.message == "bad")
        #expect(server.requests.count == 2)
    }

    @Test func childrenFollowCursorsAndPages() throws {
        let a = #"{"id":"a","name":"a","type":"file"}"#
        let server = try ScriptedHTTPServer(responses: [
            ScriptedHTTPServer.response(200, body: #"{"children":[\#(a)],"total":3,"hasMore":true}"#),
            ScriptedHTTPServer.response(200, body: #"{"items":[\#(a.replacingOccurrences(of: "\"a\"", with: "\"b\""))],"hasMore":true,"nextCursor":"c=2&x+y"}"#),
            ScriptedHTTPServer.response(200, body: #"{"items":[\#(a.replacingOccurrences(of: "\"a\"", with: "\"c\""))],"hasMore":false,"nextCursor":null}"#),
        ])
        defer { server.stop() }
        #expect(try scriptedClient(server).children(of: "d").map(\.name) == ["a", "b", "c"])
        let lines = server.requests.map(\.requestLine)
        #expect(lines[0] == "GET /v1/nodes/d/children?pageSize=500&page=1 HTTP/1.1")
        #expect(lines[1] == "GET /v1/nodes/d/children?pageSize=500&page=2 HTTP/1.1")
        #expect(lines[2] == "GET /v1/nodes/d/children?pageSize=500&cursor=c%3D2%26x%2By HTTP/1.1")
    }

    @Test func aFileShorterThanThePartIsALocalErrorNotRetried() throws {
        let server = try ScriptedHTTPServer(responses: [ScriptedHTTPServer.response(200, headers: ["ETag: \"e\""])])
        defer { server.stop() }
        let file = try Contract.RandomFile(size: 100)
        let error = try #require(throws: RosetError.self) {
            try scriptedClient(server, maxAttempts: 5).write(url: server.baseURL + "/o", fileDescriptor: file.fd, offset: 0, length: 1000)
        }
        #expect(error.kind == .badRequest && error.message.contains("shorter"))
        #expect(server.requests.count <= 1)
    }

    @Test func anOversizedAnswerFailsOnceWithoutRetries() throws {
        let huge = String(repeating: "z", count: 3 << 20)
        let server = try ScriptedHTTPServer(responses: [ScriptedHTTPServer.response(200, headers: ["ETag: \"e\""], body: huge)])
        defer { server.stop() }
        let file = try Contract.RandomFile(size: 10)
        let error = try #require(throws: RosetError.self) {
            try scriptedClient(server, maxAttempts: 5).write(url: server.baseURL + "/o", fileDescriptor: file.fd, offset: 0, length: 10)
        }
        #expect(error.kind == .decoding && server.requests.count == 1)
    }

    @Test func aServerRepeatingTheSamePageIsAnErrorNotALoop() throws {
        let a = #"{"id":"a","name":"a","type":"file"}"#
        let server = try ScriptedHTTPServer(responses: [
            ScriptedHTTPServer.response(200, body: #"{"children":[\#(a)],"total":9,"hasMore":true}"#),
        ])
        defer { server.stop() }
        let error = try #require(throws: RosetError.self) { try scriptedClient(server).children(of: "d") }
        #expect(error.kind == .decoding && server.requests.count == 2)
    }
}
