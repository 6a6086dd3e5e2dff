// The /v1 request pipeline, applied in this order to every control-plane call:
//   count → injected latency → injected error (nothing acted on) → Bearer auth (401) →
//   Idempotency-Key replay (POST) → handler → store answer for the key → malformed/drop faults.
// Invariants: a replayed answer is byte-for-byte the stored one; answers are stored only for
// statuses < 500, so a failed attempt can be retried; injected drops happen AFTER the handler
// ran, which is exactly the "server acted, client never heard" case idempotency exists for.
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging

struct APIResult {
    var status: Int
    var body: Any?
    var headers: [(String, String)] = []

    static func ok(_ body: Any) -> APIResult { .init(status: 200, body: body) }
}

/// Parsed API key file: key → the mount it is bound to (nil: any mount).
public struct APIKeys: Sendable {
    public var keys: [String: String?]

    public init(keys: [String: String?]) { self.keys = keys }

    /// Lines are `KEY` or `KEY MOUNT_ID`; blank lines and `#` comments are skipped.
    public init(fileContents: String) {
        var keys: [String: String?] = [:]
        for line in fileContents.split(whereSeparator: \.isNewline) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let fields = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            keys[fields[0]] = fields.count > 1 ? fields[1] : nil
        }
        self.keys = keys
    }
}

struct AuthenticatedKey {
    var boundMount: String?
    /// A non-secret handle for scoping idempotency records.
    var fingerprint: String
}

final class ControlPlane: @unchecked Sendable {
    let store: MetadataStore
    let backend: BlobBackend
    let faults: FaultController
    let keys: APIKeys
    let quotaBytes: Int64?
    let fallbackBase: String
    let logger: Logger
    /// Lifetime of an upload token.
    let uploadTokenTTL = 86400
    let gate = KeyedGate()

    init(store: MetadataStore, backend: BlobBackend, faults: FaultController, keys: APIKeys, quotaBytes: Int64?,
         fallbackBase: String, logger: Logger) {
        self.store = store; self.backend = backend; self.faults = faults; self.keys = keys
        self.quotaBytes = quotaBytes; self.fallbackBase = fallbackBase; self.logger = logger
    }

    func authenticate(_ request: Request) throws -> AuthenticatedKey {
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") else {
            throw APIError(401, "UNAUTHORIZED", "missing API key")
        }
        let key = String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        guard let bound = keys.keys[key] else { throw APIError(401, "UNAUTHORIZED", "invalid API key") }
        let fp = Hex.encode(SHA256.hash(data: Data(key.utf8)).prefix(8))
        return AuthenticatedKey(boundMount: bound, fingerprint: fp)
    }

    func route(_ router: Router<BasicRequestContext>, _ method: HTTPRequest.Method, _ path: RouterPath,
               _ op: @escaping @Sendable (APICall) async throws -> APIResult) {
        router.on(path, method: method) { request, context in
            try await self.handle(request, context, op)
        }
    }

    private func handle(_ request: Request, _ context: BasicRequestContext,
                        _ op: (APICall) async throws -> APIResult) async throws -> Response {
        faults.count("requests.control")
        let f = faults.current
        if f.latency(.control) > 0 { try await Task.sleep(for: .milliseconds(f.latency(.control))) }
        var result: (status: Int, body: Data, headers: [(String, String)])
        if let injected = f.injectedError(.control) {
            faults.count("faults.errors")
            result = Self.render(injected)
        } else {
            do {
                result = try await answer(request, context, op)
            } catch let e as APIError {
                result = Self.render(e)
            }
        }
        if (200..<300).contains(result.status), !result.body.isEmpty, f.shouldMalform(.control) {
            faults.count("faults.malformed")
            result.body = Data("{\"node\": {\"id\": <<malformed injected answer".utf8)
        }
        var headers = HTTPFields()
        if !result.body.isEmpty { headers[.contentType] = "application/json" }
        for (k, v) in result.headers { if let name = HTTPField.Name(k) { headers[name] = v } }
        let status = HTTPResponse.Status(code: result.status)
        if f.shouldDrop(.control) {
            faults.count("faults.drops")
            return Self.droppedResponse(status: status, headers: headers, body: result.body)
        }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: result.body)))
    }

    private func answer(_ request: Request, _ context: BasicRequestContext,
                        _ op: (APICall) async throws -> APIResult) async throws -> (status: Int, body: Data, headers: [(String, String)]) {
        let key = try authenticate(request)
        var request = request
        let raw: ByteBuffer
        do { raw = try await request.collectBody(upTo: 4 << 20) } catch { throw APIError(413, "INVALID_REQUEST", "request body too large") }
        var scope: String?
        if request.method == .post, let idem = request.headers[HTTPField.Name("Idempotency-Key")!], !idem.isEmpty {
            scope = "\(key.fingerprint)\n\(request.method.rawValue)\n\(request.uri.description)\n\(idem)"
        }
        guard let scope else { return await run(request, context, key, raw, op) }
        return try await gate.run("idem:" + scope) {
            if let stored = try store.idempotentAnswer(scope: scope) {
                faults.count("idempotentReplays")
                return (stored.status, stored.body, [("Idempotent-Replayed", "true")])
            }
            let result = await run(request, context, key, raw, op)
            if result.status < 500 {
                try? store.storeIdempotentAnswer(scope: scope, status: result.status, body: result.body)
            }
            return result
        }
    }

    private func run(_ request: Request, _ context: BasicRequestContext, _ key: AuthenticatedKey, _ raw: ByteBuffer,
                     _ op: (APICall) async throws -> APIResult) async -> (status: Int, body: Data, headers: [(String, String)]) {
        do {
            let body = try JSONBody.decodeObject(Data(buffer: raw))
            let call = APICall(request: request, context: context, key: key, body: body, plane: self)
            let r = try await op(call)
            return (r.status, r.body.map(JSONBody.encode) ?? Data(), r.headers)
        } catch let e as APIError {
            return Self.render(e)
        } catch {
            logger.error("internal error: \(error)")
            return Self.render(APIError(500, "INTERNAL_ERROR", "internal error"))
        }
    }

    static func render(_ e: APIError) -> (status: Int, body: Data, headers: [(String, String)]) {
        (e.status, JSONBody.encode(e.body), e.retryAfter.map { [("Retry-After", String($0))] } ?? [])
    }

    /// A response that declares its full length, sends part of the body, then closes the connection.
    static func droppedResponse(status: HTTPResponse.Status, headers: HTTPFields, body: Data) -> Response {
        let declared = max(body.count, 16)
        let partial = ByteBuffer(bytes: body.prefix(body.count / 2))
        return Response(status: status, headers: headers, body: ResponseBody(contentLength: declared) { writer in
            if partial.readableBytes > 0 { try await writer.write(partial) }
            throw InjectedDrop()
        })
    }
}

struct InjectedDrop: Error {}

/// One authenticated control-plane call with its parsed JSON body.
struct APICall {
    let request: Request
    let context: BasicRequestContext
    let key: AuthenticatedKey
    let body: [String: Any]
    let plane: ControlPlane

    var store: MetadataStore { plane.store }

    /// Scheme and authority that signed URLs should use: the Host the client reached us by.
    var base: String {
        if let host = request.head.authority { return "http://\(host)" }
        return plane.fallbackBase
    }

    func param(_ name: String) -> String { context.parameters.get(name) ?? "" }
    func query(_ name: String) -> String? { request.uri.queryParameters[name[...]].map(String.init) }

    /// body mountId → X-Roset-Mount-Id → X-Mount-Id → the key's mount → the default mount.
    func mount() throws -> MountRecord {
        let explicit = JSONBody.string(body["mountId"])
            ?? request.headers[HTTPField.Name("X-Roset-Mount-Id")!]
            ?? request.headers[HTTPField.Name("X-Mount-Id")!]
        if let explicit, !explicit.isEmpty {
            guard let m = try store.mount(explicit) else { throw APIError(404, "MOUNT_NOT_FOUND", "mount not found") }
            if let bound = key.boundMount, bound != m.id { throw APIError(403, "PERMISSION_DENIED", "key not allowed for this mount") }
            return m
        }
        if let bound = key.boundMount {
            guard let m = try store.mount(bound) else { throw APIError(404, "MOUNT_NOT_FOUND", "mount not found") }
            return m
        }
        guard let m = try store.defaultMount() else { throw APIError(404, "MOUNT_NOT_FOUND", "no default mount") }
        return m
    }

    func authorize(_ node: NodeRecord) throws {
        if let bound = key.boundMount, bound != node.mountId {
            throw APIError(403, "PERMISSION_DENIED", "key not allowed for this mount")
        }
    }

    /// A node id from the API, with `root` meaning the selected mount's root.
    func nodeId(_ raw: String) throws -> String {
        raw == "root" ? try mount().rootId : raw
    }

    /// A live node the key may see, or 404/403.
    func liveNode(_ raw: String) throws -> NodeRecord {
        guard let node = try store.node(try nodeId(raw)) else { throw APIError.notFound() }
        try authorize(node)
        return node
    }
}
