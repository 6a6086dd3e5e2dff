// The S3 backend's own calls against a scripted peer: idempotent calls are retried after a 5xx,
// a POST is sent once (its caller's Idempotency-Key retries the whole API call), and an
// unreachable store is an error within the deadline, not a hang.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import RosetServer

@Suite(.serialized) struct S3CallTests {
    func store(_ endpoint: String) -> S3BlobStore {
        S3BlobStore(settings: S3Settings(endpoint: endpoint, bucket: "b", region: "us-east-1",
                                         accessKey: "AK", secretKey: "SK"))
    }

    @Test func headObjectIsRetriedAfterServerErrors() async throws {
        let found = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nETag: \"abc\"\r\nConnection: close\r\n\r\n"
        let peer = try ScriptedHTTPServer(responses: [ScriptedHTTPServer.response(503), ScriptedHTTPServer.response(500), found])
        defer { peer.stop() }
        let object = try await store(peer.baseURL).statObject(storageKey: "k/1")
        #expect(object?.etag == "abc")
        #expect(object?.size == 1234)
        #expect(peer.requests.count == 3)
        #expect(peer.requests.allSatisfy { $0.requestLine.hasPrefix("HEAD /b/k/1 ") })
        #expect(peer.requests.allSatisfy { $0.headers["authorization"]?.hasPrefix("AWS4-HMAC-SHA256 ") == true })
    }

    @Test func headObjectGivesUpAfterThreeServerErrors() async throws {
        let peer = try ScriptedHTTPServer(responses: [ScriptedHTTPServer.response(503)])
        defer { peer.stop() }
        await #expect(throws: APIError.self) { try await store(peer.baseURL).statObject(storageKey: "k/1") }
        #expect(peer.requests.count == S3BlobStore.idempotentAttempts)
    }

    @Test func createMultipartUploadIsSentOnce() async throws {
        let peer = try ScriptedHTTPServer(responses: [ScriptedHTTPServer.response(503)])
        defer { peer.stop() }
        await #expect(throws: APIError.self) {
            _ = try await store(peer.baseURL).beginUpload(storageKey: "k/2", multipart: true, contentType: nil)
        }
        #expect(peer.requests.count == 1)
        #expect(peer.requests.first?.requestLine.hasPrefix("POST /b/k/2?uploads ") == true)
    }

    @Test func anUnreachableStoreIsAnErrorNotAHang() async throws {
        // A port bound but not listening: connections are refused, and nobody else can take it.
        let (fd, port) = try ScriptedHTTPServer.bindLoopback(listening: false)
        defer { close(fd) }
        let started = Date()
        await #expect(throws: APIError.self) { try await store("http://127.0.0.1:\(port)").statObject(storageKey: "k") }
        // One deadline (the client retries the connection within it), not one per attempt (45 s).
        #expect(Date().timeIntervalSince(started) < 35)
    }
}
