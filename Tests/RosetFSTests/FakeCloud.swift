// An in-memory control plane and object store for RosetFS's unit tests. It keeps the semantics
// RosetFS relies on (init makes a pending node visible, complete is idempotent, metadata merges
// with `.null` deleting, 409 carries the existing node id, signed URLs expire, abort removes the
// pending node its init made if it never got content) and adds fault hooks: fail the next N calls
// of an operation, count calls (and part PUTs per part number), block an operation until released.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import RosetFS
import RosetClient

final class FakeCloud: ControlPlane, ObjectStore, @unchecked Sendable {
    struct Upload {
        var nodeId: String
        var createdNode: Bool
        var multipart: Bool
        var parts: [Int: (etag: String, bytes: [UInt8])] = [:]
        var completed: Node?
        var aborted = false
        /// The request that made this session.
        var request: UploadRequest? = nil
        /// PUTs received per part number (a part sent twice counts 2).
        var putCounts: [Int: Int] = [:]
        /// When the session was made, in init order (see `sessions`).
        var sequence = 0
    }

    let cond = NSCondition()
    private(set) var nodes: [String: Node] = [:]
    private var contents: [String: [UInt8]] = [:]          // "nodeId@version" → bytes
    private var currentVersion: [String: Int] = [:]
    private(set) var uploads: [String: Upload] = [:]
    private var calls: [String: Int] = [:]
    private var faults: [String: [(count: Int, error: RosetError)]] = [:]
    private var blocked: Set<String> = []
    private var waiting: [String: Int] = [:]
    private var counter = 0
    var now: @Sendable () -> Date = { Date() }
    var urlLifetime: TimeInterval = 3600
    let rootId = "root"

    init() {
        nodes[rootId] = Node(id: rootId, parentId: nil, name: "", type: .folder)
    }

    // MARK: test helpers

    /// An independent copy of the cloud's state (nodes, contents, uploads), for replaying a
    /// crash against the cloud as it stood at that moment.
    func snapshot() -> FakeCloud {
        let copy = FakeCloud()
        cond.withLock {
            copy.nodes = nodes
            copy.contents = contents
            copy.currentVersion = currentVersion
            copy.uploads = uploads
            copy.counter = counter
            copy.urlLifetime = urlLifetime
            copy.now = now
        }
        return copy
    }

    func count(_ op: String) -> Int { cond.withLock { calls[op, default: 0] } }

    func failNext(_ op: String, times: Int = 1, with error: RosetError) {
        cond.withLock { faults[op, default: []].append((times, error)) }
    }

    static func error(_ kind: RosetError.Kind, status: Int? = nil, code: String? = nil) -> RosetError {
        RosetError(kind: kind, status: status, code: code, endpoint: "fake", message: "injected \(kind)")
    }

    /// Calls of `op` wait until `unblock(op)`.
    func block(_ op: String) { cond.withLock { blocked.insert(op) } }
    func unblock(_ op: String) { cond.withLock { blocked.remove(op); cond.broadcast() } }
    /// Calls of `op` blocked right now.
    func blockedCount(_ op: String) -> Int { cond.withLock { waiting[op, default: 0] } }
    /// Waits until at least one call of `op` is blocked (or the timeout).
    @discardableResult
    func waitUntilBlocked(_ op: String, timeout: TimeInterval = 10) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        cond.lock(); defer { cond.unlock() }
        while waiting[op, default: 0] == 0 { if !cond.wait(until: deadline) { return false } }
        return true
    }

    private func enter(_ op: String) throws {
        cond.lock()
        defer { cond.unlock() }
        calls[op, default: 0] += 1
        if blocked.contains(op) {
            waiting[op, default: 0] += 1
            cond.broadcast()
            while blocked.contains(op) { cond.wait() }
            waiting[op, default: 0] -= 1
        }
        if var list = faults[op], !list.isEmpty {
            let error = list[0].error
            list[0].count -= 1
            if list[0].count <= 0 { list.removeFirst() }
            faults[op] = list
            throw error
        }
    }

    private func nextId(_ prefix: String) -> String { counter += 1; return "\(prefix)\(counter)" }

    @discardableResult
    func addFolder(_ name: String, in parent: String? = nil, metadata: [String: JSONValue] = [:]) -> Node {
        cond.withLock {
            let n = Node(id: nextId("d"), parentId: parent ?? rootId, name: name, type: .folder, metadata: metadata,
                         createdAt: now(), updatedAt: now())
            nodes[n.id] = n
            return n
        }
    }

    @discardableResult
    func addFile(_ name: String, in parent: String? = nil, content: [UInt8] = [], metadata: [String: JSONValue] = [:]) -> Node {
        cond.withLock {
            let id = nextId("f")
            let n = Node(id: id, parentId: parent ?? rootId, name: name, type: .file, size: Int64(content.count),
                         metadata: metadata, createdAt: now(), updatedAt: now(), etag: "e-\(id)-1", versionId: "1")
            nodes[n.id] = n
            currentVersion[id] = 1
            contents["\(id)@1"] = content
            return n
        }
    }

    func content(of id: String) -> [UInt8]? {
        cond.withLock { currentVersion[id].flatMap { contents["\(id)@\($0)"] } }
    }

    func child(_ name: String, in parent: String? = nil) -> Node? {
        cond.withLock { nodes.values.first { $0.parentId == (parent ?? rootId) && $0.name == name } }
    }

    func children(in parent: String? = nil) -> [Node] {
        cond.withLock { nodes.values.filter { $0.parentId == (parent ?? rootId) }.sorted { $0.name < $1.name } }
    }

    func setNode(_ node: Node) { cond.withLock { nodes[node.id] = node } }

    /// Replaces a file's content as another client would (a new version).
    func replaceContent(of id: String, with bytes: [UInt8]) {
        cond.withLock { commitContent(id, bytes) }
    }

    private func commitContent(_ id: String, _ bytes: [UInt8]) {
        let v = (currentVersion[id] ?? 0) + 1
        currentVersion[id] = v
        contents["\(id)@\(v)"] = bytes
        nodes[id]?.size = Int64(bytes.count)
        nodes[id]?.etag = "e-\(id)-\(v)"
        nodes[id]?.versionId = "\(v)"
        nodes[id]?.updatedAt = now()
    }

    var abortedTokens: [String] { cond.withLock { uploads.filter { $0.value.aborted }.map(\.key) } }

    private func notFound(_ what: String) -> RosetError { RosetError(kind: .notFound, status: 404, endpoint: what, message: "not found") }

    // MARK: ControlPlane

    func resolveRoot() throws -> Node {
        try enter("resolveRoot")
        return cond.withLock { nodes[rootId]! }
    }

    func resolve(name: String, in parentId: String) throws -> Node? {
        try enter("resolve")
        return cond.withLock { nodes.values.first { $0.parentId == parentId && $0.name == name } }
    }

    func node(id: String) throws -> Node {
        try enter("node")
        guard let n = cond.withLock({ nodes[id] }) else { throw notFound("GET /v1/nodes/{id}") }
        return n
    }

    func children(of folderId: String) throws -> [Node] {
        try enter("children")
        return try cond.withLock {
            guard nodes[folderId]?.type == .folder else { throw notFound("children") }
            return nodes.values.filter { $0.parentId == folderId }.sorted { $0.name < $1.name }
        }
    }

    func manifest(of folderId: String) throws -> [Node] {
        try enter("manifest")
        return try cond.withLock {
            guard nodes[folderId]?.type == .folder else { throw notFound("manifest") }
            return nodes.values.filter { $0.parentId == folderId }.sorted { $0.name < $1.name }
        }
    }

    func createFolder(name: String, parentId: String, metadata: [String: JSONValue]?) throws -> Node {
        try enter("createFolder")
        return try cond.withLock {
            guard nodes[parentId]?.type == .folder else { throw notFound("POST /v1/nodes") }
            if let existing = nodes.values.first(where: { $0.parentId == parentId && $0.name == name }) {
                throw RosetError(kind: .nameConflict, status: 409, code: "NAME_CONFLICT", endpoint: "POST /v1/nodes",
                                 message: "exists", existingNodeId: existing.id)
            }
            let n = Node(id: nextId("d"), parentId: parentId, name: name, type: .folder, metadata: metadata ?? [:],
                         createdAt: now(), updatedAt: now())
            nodes[n.id] = n
            return n
        }
    }

    func updateNode(id: String, parentId: String?, name: String?, metadata: [String: JSONValue]?) throws -> Node {
        try enter("updateNode")
        return try cond.withLock {
            guard var n = nodes[id] else { throw notFound("PATCH /v1/nodes/{id}") }
            let newParent = parentId ?? n.parentId
            let newName = name ?? n.name
            if parentId != nil || name != nil {
                if let p = parentId {
                    guard nodes[p]?.type == .folder else { throw notFound("PATCH parent") }
                    var cur: String? = p
                    while let c = cur {
                        if c == id { throw RosetError(kind: .badRequest, status: 400, code: "CYCLE_DETECTED", endpoint: "PATCH", message: "cycle") }
                        cur = nodes[c]?.parentId
                    }
                }
                if let other = nodes.values.first(where: { $0.parentId == newParent && $0.name == newName && $0.id != id }) {
                    throw RosetError(kind: .nameConflict, status: 409, code: "NAME_CONFLICT", endpoint: "PATCH", message: "exists",
                                     existingNodeId: other.id)
                }
                n.parentId = newParent
                n.name = newName
            }
            if let metadata {
                for (k, v) in metadata { n.metadata[k] = v == .null ? nil : v }
            }
            n.updatedAt = now()
            nodes[id] = n
            return n
        }
    }

    func deleteNode(id: String) throws {
        try enter("deleteNode")
        try cond.withLock {
            guard nodes[id] != nil else { throw notFound("DELETE") }
            var doomed = [id]
            while let d = doomed.popLast() {
                nodes[d] = nil
                doomed += nodes.values.filter { $0.parentId == d }.map(\.id)
            }
        }
    }

    func download(id: String) throws -> DownloadGrant {
        try enter("download")
        return try cond.withLock {
            guard let n = nodes[id], n.type == .file, let v = currentVersion[id] else { throw notFound("download") }
            let expires = now().addingTimeInterval(urlLifetime)
            return DownloadGrant(url: "fake://get/\(id)/\(v)/\(expires.timeIntervalSince1970)", size: n.size, expiresAt: expires)
        }
    }

    func initUpload(_ request: UploadRequest) throws -> UploadGrant {
        try enter("initUpload")
        return try cond.withLock {
            let token = nextId("tok")
            var nodeId: String
            var created = false
            if let id = request.nodeId {
                guard nodes[id]?.type == .file else { throw notFound("init nodeId") }
                nodeId = id
            } else {
                guard let p = request.parentId, let name = request.name, nodes[p]?.type == .folder else { throw notFound("init parent") }
                if let existing = nodes.values.first(where: { $0.parentId == p && $0.name == name }) {
                    throw RosetError(kind: .nameConflict, status: 409, code: "NAME_CONFLICT", endpoint: "POST /v1/uploads/init",
                                     message: "exists", existingNodeId: existing.id)
                }
                nodeId = nextId("f")
                nodes[nodeId] = Node(id: nodeId, parentId: p, name: name, type: .file, size: 0, metadata: request.metadata ?? [:],
                                     createdAt: now(), updatedAt: now())
                created = true
            }
            uploads[token] = Upload(nodeId: nodeId, createdNode: created, multipart: request.multipart, request: request,
                                    sequence: uploads.count + 1)
            return UploadGrant(uploadToken: token, nodeId: nodeId, expiresAt: now().addingTimeInterval(urlLifetime),
                               uploadURL: request.multipart ? nil : "fake://put/\(token)/0")
        }
    }

    func partUploadURL(token: String, partNumber: Int) throws -> String {
        try enter("partUploadURL")
        return try cond.withLock {
            guard let u = uploads[token], !u.aborted else { throw notFound("part") }
            guard (1...10_000).contains(partNumber) else { throw FakeCloud.error(.badRequest, status: 400) }
            return "fake://put/\(token)/\(partNumber)"
        }
    }

    private func finish(token: String, bytes: [UInt8]) throws -> Node {
        let u = uploads[token]!
        guard nodes[u.nodeId] != nil else { throw notFound("complete: node deleted") }
        commitContent(u.nodeId, bytes)
        let node = nodes[u.nodeId]!
        uploads[token]?.completed = node
        return node
    }

    func completeUpload(token: String, parts: [UploadedPart]) throws -> Node {
        try enter("completeUpload")
        return try cond.withLock {
            guard let u = uploads[token], !u.aborted else { throw notFound("complete") }
            if let done = u.completed { return done }
            var bytes: [UInt8] = []
            for p in parts.sorted(by: { $0.partNumber < $1.partNumber }) {
                guard let stored = u.parts[p.partNumber], stored.etag == p.etag else {
                    throw RosetError(kind: .badRequest, status: 400, code: "INVALID_PART", endpoint: "complete", message: "bad part \(p.partNumber)")
                }
                bytes += stored.bytes
            }
            return try finish(token: token, bytes: bytes)
        }
    }

    func commitUpload(token: String, etag: String?, size: Int64) throws -> Node {
        try enter("commitUpload")
        return try cond.withLock {
            guard let u = uploads[token], !u.aborted else { throw notFound("commit") }
            if let done = u.completed { return done }
            guard let part = u.parts[0] else { throw FakeCloud.error(.badRequest, status: 400) }
            return try finish(token: token, bytes: part.bytes)
        }
    }

    func abortUpload(token: String) throws {
        try enter("abortUpload")
        cond.withLock {
            guard let u = uploads[token], u.completed == nil, !u.aborted else { return }
            uploads[token]?.aborted = true
            // As roset-server does: the pending node an init made goes with its upload, if it never got content.
            if u.createdNode && currentVersion[u.nodeId] == nil { nodes[u.nodeId] = nil }
        }
    }

    /// Every upload session for a node, in the order they were made.
    func sessions(of nodeId: String) -> [(token: String, upload: Upload)] {
        cond.withLock {
            uploads.filter { $0.value.nodeId == nodeId }.sorted { $0.value.sequence < $1.value.sequence }.map { ($0.key, $0.value) }
        }
    }

    func upload(_ token: String) -> Upload? { cond.withLock { uploads[token] } }

    /// PUTs received per part number for a token.
    func partPutCounts(token: String) -> [Int: Int] { cond.withLock { uploads[token]?.putCounts ?? [:] } }

    /// Part numbers PUT for a token, and the sizes.
    func partSizes(token: String) -> [Int: Int] {
        cond.withLock { (uploads[token]?.parts ?? [:]).mapValues { $0.bytes.count } }
    }

    // MARK: ObjectStore

    func read(url: String, offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try enter("read")
        let parts = url.replacingOccurrences(of: "fake://get/", with: "").split(separator: "/")
        guard parts.count == 3, let expires = Double(parts[2]) else { throw FakeCloud.error(.badRequest) }
        if now().timeIntervalSince1970 > expires {
            throw RosetError(kind: .urlRejected, status: 403, endpoint: "GET <signed url>", message: "expired")
        }
        return try cond.withLock {
            guard let bytes = contents["\(parts[0])@\(parts[1])"] else { throw notFound("GET <signed url>") }
            guard offset < bytes.count else { return 0 }
            let n = min(buffer.count, bytes.count - Int(offset))
            bytes.withUnsafeBytes { src in buffer.baseAddress!.copyMemory(from: src.baseAddress! + Int(offset), byteCount: n) }
            return n
        }
    }

    func write(url: String, fileDescriptor fd: Int32, offset: Int64, length: Int64) throws -> String {
        try enter("write")
        let parts = url.replacingOccurrences(of: "fake://put/", with: "").split(separator: "/")
        guard parts.count == 2, let number = Int(parts[1]) else { throw FakeCloud.error(.badRequest) }
        let token = String(parts[0])
        var bytes = [UInt8](repeating: 0, count: Int(length))
        var done = 0
        while done < Int(length) {
            let n = bytes.withUnsafeMutableBytes { Glibc.pread(fd, $0.baseAddress! + done, Int(length) - done, off_t(offset) + off_t(done)) }
            if n <= 0 { throw FakeCloud.error(.network) }
            done += n
        }
        // A second point where a PUT can be held: its body is read, not yet stored.
        try enter("write.bodyRead")
        return try cond.withLock {
            guard uploads[token] != nil else { throw notFound("PUT") }
            let etag = "etag-\(token)-\(number)-\(SHA256Hasher.hex(of: bytes).prefix(8))"
            uploads[token]!.parts[number] = (etag, bytes)
            uploads[token]!.putCounts[number, default: 0] += 1
            return etag
        }
    }
}
