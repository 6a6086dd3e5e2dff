// Blob backend (b): an S3-compatible bucket, path-style. Clients get presigned SigV4 URLs (GET
// object, PUT object, UploadPart); the server itself does CreateBucket, CreateMultipartUpload,
// CompleteMultipartUpload, AbortMultipartUpload and HeadObject with header-signed requests.
// Invariants: no object bytes pass through this server in S3 mode; every call to the store has a
// deadline, within which the HTTP client retries the connection; only idempotent calls (HEAD,
// PUT bucket, DELETE) are tried again after a 5xx answer, with jittered backoff.
// The calls go through AsyncHTTPClient on the server's own NIO event loops: FoundationNetworking's
// URLSession kept its dispatch event loop spinning on epoll (5.5 CPU-seconds of 8 s while a client
// wrote 512 MiB through moto), CPU that the store itself needed on a small machine.
import AsyncHTTPClient
import Foundation
import NIOCore

final class S3BlobStore: BlobBackend, @unchecked Sendable {
    let settings: S3Settings
    let signer: SigV4
    /// Endpoint without a trailing slash, e.g. http://127.0.0.1:9000
    let endpoint: String
    /// The Host header value: host[:port].
    let host: String
    let client: HTTPClient
    /// Deadline of one call, within the client's 60 s for the API call that needs it. Completing a
    /// multipart upload makes the store assemble the object, which takes seconds for gigabytes
    /// (moto does it in Python), so that call gets longer.
    static let callTimeout: TimeAmount = .seconds(15)
    static let completeTimeout: TimeAmount = .seconds(120)
    static let idempotentAttempts = 3
    /// Largest response body read (S3's XML answers are small).
    static let maxResponseBytes = 4 << 20

    init(settings: S3Settings) {
        self.settings = settings
        signer = SigV4(accessKey: settings.accessKey, secretKey: settings.secretKey, region: settings.region)
        var e = settings.endpoint
        while e.hasSuffix("/") { e.removeLast() }
        endpoint = e
        let comps = URLComponents(string: e)
        host = (comps?.host ?? "localhost") + (comps?.port.map { ":\($0)" } ?? "")
        client = HTTPClient.shared
    }

    private func path(_ key: String? = nil) -> String {
        key.map { "/\(settings.bucket)/\($0)" } ?? "/\(settings.bucket)"
    }

    /// One header-signed call; returns status, headers (lowercased names) and body. Idempotent
    /// methods are tried again after a 5xx answer.
    private func call(_ method: String, key: String?, query: [(String, String)] = [], body: Data = Data(),
                      timeout: TimeAmount = S3BlobStore.callTimeout)
        async throws -> (status: Int, headers: [String: String], body: Data) {
        let idempotent = method == "HEAD" || method == "GET" || method == "PUT" || method == "DELETE"
        let attempts = idempotent ? Self.idempotentAttempts : 1
        var attempt = 1
        while true {
            let answer: (status: Int, headers: [String: String], body: Data)
            do {
                answer = try await callOnce(method, key: key, query: query, body: body, timeout: timeout)
            } catch {
                // No second try: the client already retried the connection within the deadline,
                // and an unreachable store is an error now, not three deadlines from now.
                throw APIError.storage("S3 \(method) failed: \(error)")
            }
            guard answer.status >= 500, attempt < attempts else { return answer }
            // 100 ms, then 200 ms, each less up to half at random.
            let cap = UInt64(100_000_000) << UInt64(attempt - 1)
            try await Task.sleep(nanoseconds: UInt64.random(in: cap / 2...cap))
            attempt += 1
        }
    }

    private func callOnce(_ method: String, key: String?, query: [(String, String)], body: Data, timeout: TimeAmount)
        async throws -> (status: Int, headers: [String: String], body: Data) {
        let p = path(key)
        var urlText = endpoint + SigV4.encode(p, keepSlash: true)
        if !query.isEmpty {
            urlText += "?" + query.map { $0.1.isEmpty && $0.0 == "uploads" ? "uploads" : "\(SigV4.encode($0.0))=\(SigV4.encode($0.1))" }
                .joined(separator: "&")
        }
        var request = HTTPClientRequest(url: urlText)
        request.method = .init(rawValue: method)
        if !body.isEmpty {
            request.body = .bytes(ByteBuffer(bytes: body))
            // S3 fakes may parse XML sent without a content type as a form.
            request.headers.add(name: "Content-Type", value: "application/xml")
        }
        for (k, v) in signer.signedHeaders(method: method, host: host, path: p, query: query, body: body) {
            request.headers.add(name: k, value: v)
        }
        let response = try await client.execute(request, timeout: timeout)
        var headers: [String: String] = [:]
        for (name, value) in response.headers { headers[name.lowercased()] = value }
        let bytes = method == "HEAD" ? ByteBuffer() : try await response.body.collect(upTo: Self.maxResponseBytes)
        return (Int(response.status.code), headers, Data(bytes.readableBytesView))
    }

    static func xmlValue(_ tag: String, in data: Data) -> String? {
        let text = String(decoding: data, as: UTF8.self)
        guard let open = text.range(of: "<\(tag)>"), let close = text.range(of: "</\(tag)>", range: open.upperBound..<text.endIndex)
        else { return nil }
        return String(text[open.upperBound..<close.lowerBound])
    }

    func ensureBucket() async throws {
        let head = try await call("HEAD", key: nil)
        if head.status == 200 { return }
        var body = Data()
        if settings.region != "us-east-1" {
            body = Data("<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>\(settings.region)</LocationConstraint></CreateBucketConfiguration>".utf8)
        }
        let made = try await call("PUT", key: nil, body: body)
        guard made.status == 200 || Self.xmlValue("Code", in: made.body) == "BucketAlreadyOwnedByYou" else {
            throw APIError.storage("cannot create bucket \(settings.bucket): HTTP \(made.status)")
        }
    }

    func beginUpload(storageKey: String, multipart: Bool, contentType: String?) async throws -> String? {
        guard multipart else { return nil }
        let r = try await call("POST", key: storageKey, query: [("uploads", "")])
        guard r.status == 200, let id = Self.xmlValue("UploadId", in: r.body) else {
            throw APIError.storage("CreateMultipartUpload failed: HTTP \(r.status)")
        }
        return id
    }

    func partURL(_ upload: UploadRecord, partNumber: Int, base: String, ttl: Int) -> String {
        signer.presign(method: "PUT", endpoint: endpoint, host: host, path: path(upload.storageKey),
                       query: [("partNumber", String(partNumber)), ("uploadId", upload.backendUploadId ?? "")], expires: ttl)
    }

    func putURL(storageKey: String, base: String, ttl: Int) -> String {
        signer.presign(method: "PUT", endpoint: endpoint, host: host, path: path(storageKey), query: [], expires: ttl)
    }

    func getURL(storageKey: String, base: String, ttl: Int) -> String {
        signer.presign(method: "GET", endpoint: endpoint, host: host, path: path(storageKey), query: [], expires: ttl)
    }

    func completeMultipart(_ upload: UploadRecord, parts: [(number: Int, etag: String)]) async throws -> CompletedObject {
        guard let uploadId = upload.backendUploadId else { throw APIError.invalid("not a multipart upload") }
        let sorted = parts.sorted { $0.number < $1.number }
        guard !sorted.isEmpty else { throw APIError.invalid("parts must not be empty") }
        var xml = "<CompleteMultipartUpload>"
        for p in sorted { xml += "<Part><PartNumber>\(p.number)</PartNumber><ETag>\"\(p.etag)\"</ETag></Part>" }
        xml += "</CompleteMultipartUpload>"
        let r = try await call("POST", key: upload.storageKey, query: [("uploadId", uploadId)], body: Data(xml.utf8),
                                timeout: Self.completeTimeout)
        if r.status != 200 || Self.xmlValue("Code", in: r.body) != nil {
            let code = Self.xmlValue("Code", in: r.body) ?? "HTTP \(r.status)"
            if code == "InvalidPart" || code == "InvalidPartOrder" || code == "EntityTooSmall" {
                throw APIError(400, "INVALID_PART", "CompleteMultipartUpload: \(code)")
            }
            throw APIError.storage("CompleteMultipartUpload failed: \(code)")
        }
        guard let object = try await statObject(storageKey: upload.storageKey) else {
            throw APIError.storage("completed object is missing")
        }
        return object
    }

    func statObject(storageKey: String) async throws -> CompletedObject? {
        let r = try await call("HEAD", key: storageKey)
        if r.status == 404 { return nil }
        guard r.status == 200 else { throw APIError.storage("HeadObject failed: HTTP \(r.status)") }
        let etag = (r.headers["etag"] ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        return CompletedObject(etag: etag, size: Int64(r.headers["content-length"] ?? "") ?? 0)
    }

    func deleteObject(storageKey: String) async {
        _ = try? await call("DELETE", key: storageKey)
    }

    func abort(_ upload: UploadRecord) async {
        guard let id = upload.backendUploadId else { return }
        _ = try? await call("DELETE", key: upload.storageKey, query: [("uploadId", id)])
    }
}
