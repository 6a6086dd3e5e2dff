// The Roset API client: `ControlPlane` (JSON over HTTP to the API) and `ObjectStore` (bytes over
// signed URLs), both over libcurl. Invariants: every control-plane request carries the Bearer key,
// the mount id header (and body field on resolve/create/init), the user agent, and on POST an
// Idempotency-Key that stays the same across the retries of one logical call; signed URLs never
// get the Authorization header; every log line and error message is redacted.
import Foundation
import Metrics
import RosetMetrics
import Logging

public final class RosetAPIClient: ControlPlane, ObjectStore, @unchecked Sendable {
    public let configuration: ClientConfiguration
    public let redaction: Redaction
    let retryPolicy: RetryPolicy
    let transport: HTTPTransport
    /// Plain-http signed URLs read into pipes (the read path's zero-copy streams).
    let pipeDownloader: PipeDownloader
    private let logger: Logger
    private let statsLock = NSLock()
    private var connectionsOpened = 0
    private var requestsSent = 0

    public init(configuration: ClientConfiguration) {
        self.configuration = configuration
        self.redaction = Redaction(apiKey: configuration.apiKey)
        self.retryPolicy = RetryPolicy(maxAttempts: configuration.maxAttempts, base: configuration.backoffBase,
                                       cap: configuration.backoffCap, retryAfterCap: configuration.retryAfterCap)
        self.transport = HTTPTransport(settings: TransportSettings(
            userAgent: configuration.userAgent, connectTimeout: configuration.connectTimeout,
            lowSpeedLimit: configuration.lowSpeedLimit, lowSpeedTime: configuration.lowSpeedTime))
        self.pipeDownloader = PipeDownloader(timeout: TimeInterval(max(configuration.lowSpeedTime, 1)),
                                             userAgent: configuration.userAgent)
        self.logger = configuration.logger
    }

    /// Connections opened and HTTP requests sent so far (every attempt counts).
    public var transferStatistics: (connectionsOpened: Int, requests: Int) {
        statsLock.withLock { (connectionsOpened, requestsSent) }
    }

    // MARK: Control plane

    public func resolveRoot() throws -> Node {
        var body: [String: Any] = ["paths": ["/"]]
        if let mount = configuration.mountId { body["mountId"] = mount }
        let endpoint = "POST /v1/resolve"
        let json = try callJSON("POST", "/v1/resolve", body: body, endpoint: endpoint)
        guard let root = try decode(endpoint, { try WireDecoding.resolved(json, path: "/") }) else {
            throw RosetError(kind: .notFound, status: nil, endpoint: endpoint, message: "the mount root did not resolve")
        }
        return root
    }

    public func resolve(name: String, in parentId: String) throws -> Node? {
        var body: [String: Any] = ["paths": [name], "baseId": parentId]
        if let mount = configuration.mountId { body["mountId"] = mount }
        let endpoint = "POST /v1/resolve"
        let json = try callJSON("POST", "/v1/resolve", body: body, endpoint: endpoint)
        return try decode(endpoint) { try WireDecoding.resolved(json, path: name) }
    }

    public func node(id: String) throws -> Node {
        let endpoint = "GET /v1/nodes/{id}"
        let json = try callJSON("GET", "/v1/nodes/\(Self.pathSegment(id))", endpoint: endpoint)
        return try decode(endpoint) { try WireDecoding.node(fromEnvelope: json) }
    }

    /// Every page until the server says there are no more: by cursor when it offers one,
    /// otherwise by page number. No cap on the number of entries.
    public func children(of folderId: String) throws -> [Node] {
        let endpoint = "GET /v1/nodes/{id}/children"
        let pageSize = 500
        var result: [Node] = []
        var page = 1
        var cursor: String? = nil
        var seenCursors = Set<String>()
        var previousPage: [String] = []
        while true {
            var query = "pageSize=\(pageSize)"
            if let cursor { query += "&cursor=\(Self.queryValue(cursor))" } else { query += "&page=\(page)" }
            let json = try callJSON("GET", "/v1/nodes/\(Self.pathSegment(folderId))/children?\(query)", endpoint: endpoint)
            let batch = try decode(endpoint) { try WireDecoding.childrenPage(json) }
            result.append(contentsOf: batch.nodes)
            guard batch.hasMore else { break }
            if batch.nodes.isEmpty {
                throw RosetError(kind: .decoding, endpoint: endpoint, message: "an empty page claims more entries follow")
            }
            // A server that ignores `page`/`cursor` would otherwise be paged forever.
            let ids = batch.nodes.map(\.id)
            if ids == previousPage {
                throw RosetError(kind: .decoding, endpoint: endpoint, message: "the server repeated a page")
            }
            previousPage = ids
            if let next = batch.nextCursor {
                guard seenCursors.insert(next).inserted else {
                    throw RosetError(kind: .decoding, endpoint: endpoint, message: "the server repeated a cursor")
                }
                cursor = next
            } else {
                cursor = nil
                page += 1
            }
        }
        return result
    }

    public func manifest(of folderId: String) throws -> [Node] {
        let endpoint = "GET /v1/nodes/{id}/manifest"
        let json = try callJSON("GET", "/v1/nodes/\(Self.pathSegment(folderId))/manifest", endpoint: endpoint)
        return try decode(endpoint) { try WireDecoding.manifest(json, folderId: folderId) }
    }

    public func createFolder(name: String, parentId: String, metadata: [String: JSONValue]?) throws -> Node {
        var body: [String: Any] = ["name": name, "type": "folder", "parentId": parentId]
        if let metadata { body["metadata"] = metadata.mapValues(WireDecoding.foundationValue) }
        if let mount = configuration.mountId { body["mountId"] = mount }
        let endpoint = "POST /v1/nodes"
        let json = try callJSON("POST", "/v1/nodes", body: body, endpoint: endpoint)
        return try decode(endpoint) { try WireDecoding.node(fromEnvelope: json) }
    }

    public func updateNode(id: String, parentId: String?, name: String?, metadata: [String: JSONValue]?) throws -> Node {
        var body: [String: Any] = [:]
        if let parentId { body["parentId"] = parentId }
        if let name { body["name"] = name }
        if let metadata { body["metadata"] = metadata.mapValues(WireDecoding.foundationValue) }
        let endpoint = "PATCH /v1/nodes/{id}"
        let json = try callJSON("PATCH", "/v1/nodes/\(Self.pathSegment(id))", body: body, endpoint: endpoint)
        return try decode(endpoint) { try WireDecoding.node(fromEnvelope: json) }
    }

    public func deleteNode(id: String) throws {
        _ = try call("DELETE", "/v1/nodes/\(Self.pathSegment(id))", body: nil, endpoint: "DELETE /v1/nodes/{id}")
    }

    public func download(id: String) throws -> DownloadGrant {
        let endpoint = "GET /v1/nodes/{id}/download"
        let json = try callJSON("GET", "/v1/nodes/\(Self.pathSegment(id))/download", endpoint: endpoint)
        return try decode(endpoint) { try WireDecoding.downloadGrant(json) }
    }

    public func initUpload(_ request: UploadRequest) throws -> UploadGrant {
        var body: [String: Any] = ["size": request.size, "multipart": request.multipart]
        if let v = request.parentId { body["parentId"] = v }
        if let v = request.name { body["name"] = v }
        if let v = request.nodeId { body["nodeId"] = v }
        if let v = request.contentType { body["contentType"] = v }
        if let v = request.metadata { body["metadata"] = v.mapValues(WireDecoding.foundationValue) }
        if let mount = configuration.mountId { body["mountId"] = mount }
        let endpoint = "POST /v1/uploads/init"
        let json = try callJSON("POST", "/v1/uploads/init", body: body, endpoint: endpoint)
        return try decode(endpoint) { try WireDecoding.uploadGrant(json) }
    }

    public func partUploadURL(token: String, partNumber: Int) throws -> String {
        let endpoint = "POST /v1/uploads/{token}/part"
        let json = try callJSON("POST", "/v1/uploads/\(Self.pathSegment(token))/part?partNumber=\(partNumber)",
                                body: nil, endpoint: endpoint)
        return try decode(endpoint) { try WireDecoding.partURL(json) }
    }

    public func completeUpload(token: String, parts: [UploadedPart]) throws -> Node {
        let sorted = parts.sorted { $0.partNumber < $1.partNumber }
        let body: [String: Any] = ["parts": sorted.map { ["PartNumber": $0.partNumber, "ETag": $0.etag] as [String: Any] }]
        let endpoint = "POST /v1/uploads/{token}/complete"
        let json = try callJSON("POST", "/v1/uploads/\(Self.pathSegment(token))/complete", body: body, endpoint: endpoint)
        return try decode(endpoint) { try WireDecoding.node(fromEnvelope: json) }
    }

    public func commitUpload(token: String, etag: String?, size: Int64) throws -> Node {
        var body: [String: Any] = ["uploadToken": token, "size": size]
        if let etag { body["etag"] = etag }
        let endpoint = "POST /v1/uploads/commit"
        let json = try callJSON("POST", "/v1/uploads/commit", body: body, endpoint: endpoint)
        return try decode(endpoint) { try WireDecoding.node(fromEnvelope: json) }
    }

    public func abortUpload(token: String) throws {
        _ = try call("DELETE", "/v1/uploads/\(Self.pathSegment(token))", body: nil, endpoint: "DELETE /v1/uploads/{token}")
    }

    // MARK: Object store (signed URLs)

    public func read(url: String, offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard buffer.count > 0 else { return 0 }
        guard offset >= 0 else {
            throw RosetError(kind: .badRequest, endpoint: "GET <signed url>", message: "negative offset")
        }
        let endpoint = "GET <signed url>"
        let request = HTTPRequest(method: "GET", url: url, sink: .range(buffer: buffer, offset: offset))
        let outcome = try execute(request, endpoint: endpoint, origin: .signedURL)
        if let failure = outcome.rangeFailure {
            throw RosetError(kind: .server, status: outcome.status, endpoint: endpoint, message: failure)
        }
        guard outcome.status == 200 || outcome.status == 206 else {
            throw RosetError(kind: .server, status: outcome.status, endpoint: endpoint,
                             message: "unexpected status for a ranged GET")
        }
        Counter(label: RosetMetricNames.storeReadBytes).increment(by: outcome.rangeBytes)
        return outcome.rangeBytes
    }

    public func read(url: String, offset: Int64, intoPipes targets: [PipeDownloader.Target],
                     filled: (Int) -> Bool) throws -> Bool {
        guard PipeDownloader.accepts(url) else { return false }
        statsLock.withLock { requestsSent += 1 }
        do {
            let readBytes = Counter(label: RosetMetricNames.storeReadBytes)
            try pipeDownloader.get(url: url, offset: offset, into: targets) { index in
                readBytes.increment(by: targets[index].count)
                return filled(index)
            }
        } catch let error as RosetError {
            logger.debug("GET \(redaction.text(url)) into pipes failed: \(error.message)")
            throw error
        }
        return true
    }

    public func write(url: String, fileDescriptor fd: Int32, offset: Int64, length: Int64) throws -> String {
        let endpoint = "PUT <signed url>"
        guard offset >= 0, length >= 0 else {
            throw RosetError(kind: .badRequest, endpoint: endpoint, message: "negative offset or length")
        }
        let request = HTTPRequest(method: "PUT", url: url, body: .file(fd: fd, offset: offset, length: length),
                                  sink: .collect(limit: 1 << 20))
        let outcome = try execute(request, endpoint: endpoint, origin: .signedURL)
        guard let etag = outcome.headers["etag"].map(WireDecoding.stripQuotes), !etag.isEmpty else {
            throw RosetError(kind: .decoding, status: outcome.status, endpoint: endpoint,
                             message: "the store answered without an ETag")
        }
        Counter(label: RosetMetricNames.storeWrittenBytes).increment(by: length)
        return etag
    }

    // MARK: Plumbing

    static func pathSegment(_ s: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/?#%")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }

    static func queryValue(_ s: String) -> String {
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=+?#%")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }

    private func decode<T>(_ endpoint: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as WireDecodingError {
            throw RosetError(kind: .decoding, endpoint: endpoint, message: redaction.text(error.reason))
        }
    }

    private func callJSON(_ method: String, _ path: String, body: [String: Any]? = nil, endpoint: String) throws -> Any {
        let data = try call(method, path, body: body, endpoint: endpoint)
        return try decode(endpoint) { try WireDecoding.parse(data) }
    }

    /// One logical control-plane call, retried as the policy allows; returns the 2xx body.
    private func call(_ method: String, _ path: String, body: [String: Any]?, endpoint: String) throws -> Data {
        var headers = ["Authorization: Bearer \(configuration.apiKey)", "Accept: application/json"]
        if let mount = configuration.mountId { headers.append("X-Roset-Mount-Id: \(mount)") }
        if method == "POST" { headers.append("Idempotency-Key: \(UUID().uuidString.lowercased())") }
        var requestBody = RequestBody.none
        if let body {
            guard JSONSerialization.isValidJSONObject(body),
                  let data = try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys]) else {
                throw RosetError(kind: .badRequest, endpoint: endpoint, message: "request body is not valid JSON")
            }
            headers.append("Content-Type: application/json")
            requestBody = .bytes(data)
        }
        let request = HTTPRequest(method: method, url: configuration.apiURL + path, headers: headers,
                                  body: requestBody, sink: .collect(limit: WireDecoding.maxBodyBytes),
                                  totalTimeout: configuration.requestTimeout)
        return try execute(request, endpoint: endpoint, origin: .controlPlane).body
    }

    /// Runs `request` until it succeeds (2xx), fails for good, or runs out of attempts.
    private func execute(_ request: HTTPRequest, endpoint: String, origin: ErrorMapping.Origin) throws -> HTTPOutcome {
        let shownURL = redaction.url(request.url)
        var attempt = 1
        while true {
            let started = DispatchTime.now().uptimeNanoseconds
            let result = transport.perform(request)
            let elapsed = DispatchTime.now().uptimeNanoseconds - started
            let millis = Double(elapsed) / 1e6
            Metrics.Timer(label: RosetMetricNames.requestDuration, dimensions: [("call", endpoint)]).recordNanoseconds(Int64(elapsed))
            let status: String
            switch result {
            case .success(let outcome): status = String(outcome.status)
            case .failure: status = "network"
            }
            Counter(label: RosetMetricNames.requests, dimensions: [("call", endpoint), ("status", status)]).increment()
            let failure: RosetError
            var retryAfter: TimeInterval? = nil
            switch result {
            case .success(let outcome):
                statsLock.withLock { connectionsOpened += outcome.newConnections; requestsSent += 1 }
                logger.debug("\(request.method) \(shownURL) -> \(outcome.status) in \(String(format: "%.1f", millis)) ms (attempt \(attempt))")
                if (200..<300).contains(outcome.status) { return outcome }
                failure = ErrorMapping.error(status: outcome.status, body: outcome.body, origin: origin,
                                             endpoint: endpoint, redaction: redaction)
                retryAfter = RetryPolicy.parseRetryAfter(outcome.headers["retry-after"])
            case .failure(let transportFailure):
                statsLock.withLock { requestsSent += 1 }
                let message = redaction.text(transportFailure.message)
                logger.debug("\(request.method) \(shownURL) -> network error in \(String(format: "%.1f", millis)) ms (attempt \(attempt)): \(message)")
                switch transportFailure.kind {
                case .network: failure = RosetError(kind: .network, endpoint: endpoint, message: message)
                case .responseTooLarge: failure = RosetError(kind: .decoding, endpoint: endpoint, message: message)
                case .localFile: failure = RosetError(kind: .badRequest, endpoint: endpoint, message: message)
                }
            }
            guard RetryPolicy.isRetryable(failure), attempt < retryPolicy.maxAttempts else {
                if attempt > 1 || failure.kind != .notFound {
                    logger.debug("\(endpoint) failed after \(attempt) attempt(s): \(failure)")
                }
                throw failure
            }
            Counter(label: RosetMetricNames.requestRetries, dimensions: [("call", endpoint)]).increment()
            let delay = retryPolicy.delay(afterAttempt: attempt, retryAfter: retryAfter)
            if delay > 0 { Thread.sleep(forTimeInterval: delay) }
            attempt += 1
        }
    }
}
