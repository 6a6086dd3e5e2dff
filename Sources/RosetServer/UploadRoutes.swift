// /v1/uploads endpoints (docs/PROTOCOL.md §3.9-§3.12: init, part, complete, commit, abort). A new file's node is created, pending,
// at init; complete (or commit for single-PUT uploads) makes the uploaded object its current
// version. Complete is safe to repeat: a completed token answers with the version it made.
import Foundation
import Hummingbird

extension ControlPlane {
    func registerUploadRoutes(_ router: Router<BasicRequestContext>) {
        route(router, .post, "/v1/uploads/init") { call in
            let size = JSONBody.int(call.body["size"]) ?? 0
            let multipart = JSONBody.bool(call.body["multipart"]) ?? true
            let contentType = JSONBody.string(call.body["contentType"])
            if let quota = call.plane.quotaBytes, size > 0, try call.store.usedBytes() + size > quota { throw APIError.quota }

            var newFile: (parentId: String, name: String, metadata: [String: Any])?
            let nodeId: String
            let mountId: String
            if let existing = JSONBody.string(call.body["nodeId"]) {
                let node = try call.liveNode(existing)
                guard !node.isFolder else { throw APIError.invalid("nodeId names a folder") }
                nodeId = node.id
                mountId = node.mountId
            } else {
                guard let name = JSONBody.string(call.body["name"]) else { throw APIError.invalid("name or nodeId is required") }
                try MetadataStore.validName(name)
                let parent = try Self.parentFolder(call)
                if let clash = try call.store.resolve(path: name, from: parent.id) { throw APIError.nameConflict(clash.id) }
                var metadata: [String: Any] = [:]
                if let m = call.body["metadata"] as? [String: Any] { metadata = m.filter { !($0.value is NSNull) } }
                newFile = (parent.id, name, metadata)
                nodeId = UUID().uuidString.lowercased()
                mountId = parent.mountId
            }
            let storageKey = "\(mountId)/\(nodeId)/\(UUID().uuidString.lowercased())"
            let backendId = try await call.plane.backend.beginUpload(storageKey: storageKey, multipart: multipart, contentType: contentType)
            let upload = UploadRecord(token: "ut_" + Hex.random(bytes: 20), nodeId: nodeId, mountId: mountId, storageKey: storageKey,
                                      multipart: multipart, backendUploadId: backendId, createsNode: newFile != nil,
                                      contentType: contentType, expectedSize: size, state: "open", versionId: nil,
                                      expiresAt: Timestamp.now + Double(call.plane.uploadTokenTTL))
            let node: NodeRecord
            do {
                node = try call.store.createUpload(upload, newFile: newFile)
            } catch {
                await call.plane.backend.abort(upload)
                throw error
            }
            if newFile != nil { call.plane.faults.count("nodesCreated") }
            var out: [String: Any] = ["uploadToken": upload.token, "nodeId": nodeId, "expiresIn": call.plane.uploadTokenTTL,
                                      "multipart": multipart, "node": NodeJSON.node(node)]
            if !multipart {
                out["uploadUrl"] = call.plane.backend.putURL(storageKey: storageKey, base: call.base,
                                                             ttl: call.plane.faults.current.urlTTLSeconds)
            }
            return .ok(out)
        }

        route(router, .post, "/v1/uploads/:token/part") { call in
            guard let upload = try call.store.upload(call.param("token")), upload.isOpen else { throw APIError.uploadNotFound }
            guard upload.multipart else { throw APIError.invalid("not a multipart upload") }
            guard let n = call.query("partNumber").flatMap({ Int($0) }), (1...10000).contains(n) else {
                throw APIError.invalid("partNumber must be 1..10000")
            }
            let ttl = call.plane.faults.current.urlTTLSeconds
            let url = call.plane.backend.partURL(upload, partNumber: n, base: call.base, ttl: ttl)
            return .ok(["url": url, "uploadUrl": url, "partNumber": n, "expiresIn": ttl])
        }

        route(router, .post, "/v1/uploads/:token/complete") { call in
            try await call.plane.gate.run("upload:" + call.param("token")) { try await Self.complete(call) }
        }

        route(router, .post, "/v1/uploads/commit") { call in
            let token = JSONBody.string(call.body["uploadToken"]) ?? ""
            return try await call.plane.gate.run("upload:" + token) {
                guard let upload = try call.store.upload(token) else { throw APIError.uploadNotFound }
                if !upload.isOpen { return try await Self.finish(call, upload, object: nil) }
                return try await Self.commitSingle(call, upload)
            }
        }

        route(router, .delete, "/v1/uploads/:token") { call in
            guard let upload = try call.store.abortUpload(token: call.param("token")) else { throw APIError.uploadNotFound }
            if upload.isOpen { await call.plane.backend.abort(upload) }
            return APIResult(status: 204, body: nil)
        }
    }

    static func complete(_ call: APICall) async throws -> APIResult {
        guard let upload = try call.store.upload(call.param("token")) else { throw APIError.uploadNotFound }
        if !upload.isOpen { return try await Self.finish(call, upload, object: nil) }
        if !upload.multipart { return try await Self.commitSingle(call, upload) }
        guard let rawParts = call.body["parts"] as? [Any] else { throw APIError.invalid("parts is required") }
        var parts: [(number: Int, etag: String)] = []
        for raw in rawParts {
            guard let p = raw as? [String: Any],
                  let n = JSONBody.int(p["PartNumber"] ?? p["partNumber"]), (1...10000).contains(n) else {
                throw APIError.invalid("each part needs PartNumber and ETag")
            }
            let etag = (JSONBody.string(p["ETag"] ?? p["etag"]) ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            parts.append((Int(n), etag))
        }
        let object = try await call.plane.backend.completeMultipart(upload, parts: parts)
        return try await Self.finish(call, upload, object: object)
    }

    /// Finalises a single-PUT upload: the object must be in the store (and match etag/size if given).
    static func commitSingle(_ call: APICall, _ upload: UploadRecord) async throws -> APIResult {
        guard let object = try await call.plane.backend.statObject(storageKey: upload.storageKey) else {
            throw APIError.invalid("nothing was uploaded to uploadUrl yet")
        }
        if let etag = JSONBody.string(call.body["etag"])?.trimmingCharacters(in: CharacterSet(charactersIn: "\"")),
           !etag.isEmpty, etag != object.etag {
            throw APIError.invalid("etag does not match the uploaded object")
        }
        if let size = JSONBody.int(call.body["size"]), size != object.size {
            throw APIError.invalid("size does not match the uploaded object")
        }
        return try await finish(call, upload, object: object)
    }

    static func finish(_ call: APICall, _ upload: UploadRecord, object: CompletedObject?) async throws -> APIResult {
        if let object, let quota = call.plane.quotaBytes {
            let current = try call.store.node(upload.nodeId)?.size ?? 0
            if try call.store.usedBytes() - current + object.size > quota { throw APIError.quota }
        }
        let (node, version) = try call.store.completeUpload(token: upload.token, etag: object?.etag ?? "", size: object?.size ?? 0)
        try call.authorize(node)
        if object != nil {
            for key in (try? call.store.pruneVersions(nodeId: node.id)) ?? [] { await call.plane.backend.deleteObject(storageKey: key) }
        }
        var out = NodeJSON.wrapped(node)
        out["version"] = NodeJSON.version(version)
        return .ok(out)
    }
}
