// /v1 node endpoints (docs/PROTOCOL.md §3.1-§3.8, and batch/stat). Answers follow the compat profile: resolve is
// wrapped in "nodes"; single nodes are bare plus a "node" copy; children carry both key sets.
// DELETE of a non-empty folder is allowed and deletes the subtree (soft); emptiness checks are
// the filesystem's job (rmdir → ENOTEMPTY happens client-side).
import Foundation
import Hummingbird

extension ControlPlane {
    func registerNodeRoutes(_ router: Router<BasicRequestContext>) {
        route(router, .post, "/v1/resolve") { call in
            guard let paths = call.body["paths"] as? [Any], paths.count <= 1000 else {
                throw APIError.invalid("paths must be an array of at most 1000 strings")
            }
            let start: String
            if let baseId = JSONBody.string(call.body["baseId"]) {
                start = try call.liveNode(baseId).id
            } else {
                start = try call.mount().rootId
            }
            var nodes: [String: Any] = [:]
            for p in paths {
                guard let path = p as? String else { throw APIError.invalid("paths must be strings") }
                nodes[path] = try call.store.resolve(path: path, from: start).map(NodeJSON.node) ?? NSNull()
            }
            return .ok(["nodes": nodes])
        }

        route(router, .get, "/v1/nodes/:id") { call in
            .ok(NodeJSON.wrapped(try call.liveNode(call.param("id"))))
        }

        route(router, .patch, "/v1/nodes/:id") { call in
            let id = try call.nodeId(call.param("id"))
            var metadata: [String: Any]?
            if let raw = call.body["metadata"], !(raw is NSNull) {
                guard let m = raw as? [String: Any] else { throw APIError.invalid("metadata must be an object") }
                metadata = m
            }
            let newParent = try JSONBody.string(call.body["parentId"]).map { try call.nodeId($0) }
            let newName = JSONBody.string(call.body["name"])
            let node = try call.store.patchNode(id, newParent: newParent, newName: newName, metadata: metadata,
                                                authorize: call.authorize)
            return .ok(NodeJSON.wrapped(node))
        }

        route(router, .delete, "/v1/nodes/:id") { call in
            try call.store.deleteNode(try call.nodeId(call.param("id")), authorize: call.authorize)
            return APIResult(status: 204, body: nil)
        }

        route(router, .get, "/v1/nodes/:id/children") { call in
            let folder = try call.liveNode(call.param("id"))
            guard folder.isFolder else { throw APIError.parentNotFolder }
            return .ok(try Self.childrenPage(call, folder: folder))
        }

        route(router, .get, "/v1/nodes/:id/manifest") { call in
            let folder = try call.liveNode(call.param("id"))
            guard folder.isFolder else { throw APIError.parentNotFolder }
            var all: [Any] = []
            var offset = 0
            while true {
                let page = try call.store.children(of: folder.id, offset: offset, limit: 1000, after: nil, type: nil)
                all += page.nodes.map(NodeJSON.node)
                offset += page.nodes.count
                if !page.hasMore { break }
            }
            return .ok(all)
        }

        route(router, .get, "/v1/nodes/:id/download") { call in
            let node = try call.liveNode(call.param("id"))
            guard !node.isFolder else { throw APIError.notFound("a folder has no content") }
            guard let v = node.version else { throw APIError.notFound("the file has no completed upload") }
            let ttl = call.plane.faults.current.urlTTLSeconds
            return .ok(["url": call.plane.backend.getURL(storageKey: v.storageKey, base: call.base, ttl: ttl),
                        "contentType": v.contentType ?? NSNull(), "size": NSNumber(value: v.size),
                        "expiresIn": ttl, "etag": v.etag, "versionId": NSNumber(value: v.id)])
        }

        route(router, .post, "/v1/nodes") { call in
            guard let name = JSONBody.string(call.body["name"]) else { throw APIError.invalid("name is required") }
            let type = JSONBody.string(call.body["type"]) ?? "folder"
            guard type == "file" || type == "folder" else { throw APIError.invalid("type must be file or folder") }
            let parent = try Self.parentFolder(call)
            var metadata: [String: Any] = [:]
            if let raw = call.body["metadata"], !(raw is NSNull) {
                guard let m = raw as? [String: Any] else { throw APIError.invalid("metadata must be an object") }
                metadata = m.filter { !($0.value is NSNull) }
            }
            let node = try call.store.createNode(mountId: parent.mountId, parentId: parent.id, name: name, type: type,
                                                 size: JSONBody.int(call.body["size"]),
                                                 contentType: JSONBody.string(call.body["contentType"]), metadata: metadata)
            call.plane.faults.count("nodesCreated")
            return APIResult(status: 201, body: NodeJSON.wrapped(node))
        }

        route(router, .post, "/v1/nodes/batch/stat") { call in
            guard let ids = call.body["ids"] as? [Any], ids.count <= 1000 else {
                throw APIError.invalid("ids must be an array of at most 1000 strings")
            }
            let strings = ids.compactMap { $0 as? String }
            let found = try call.store.nodes(strings)
            var out: [String: Any] = [:]
            for id in strings {
                if let n = found[id], (try? call.authorize(n)) != nil { out[id] = NodeJSON.node(n) } else { out[id] = NSNull() }
            }
            return .ok(out)
        }
    }

    /// The parent folder named by `parentId` (or the alias `root`), else `parentPath` from the mount
    /// root, else the mount root.
    static func parentFolder(_ call: APICall) throws -> NodeRecord {
        let parent: NodeRecord
        if let pid = JSONBody.string(call.body["parentId"]) {
            parent = try call.liveNode(pid)
        } else if let path = JSONBody.string(call.body["parentPath"]) {
            guard let p = try call.store.resolve(path: path, from: try call.mount().rootId) else {
                throw APIError.notFound("parent path not found")
            }
            parent = p
        } else {
            parent = try call.liveNode(try call.mount().rootId)
        }
        guard parent.isFolder else { throw APIError.parentNotFolder }
        return parent
    }

    /// Page mode (`page`, `pageSize`: offset from the clamped size) or cursor mode (`cursor`,
    /// `limit`: names after the cursor). Both emit `nextCursor` when more entries follow.
    static func childrenPage(_ call: APICall, folder: NodeRecord) throws -> [String: Any] {
        func clamp(_ v: String?) -> Int { min(max(Int(v ?? "") ?? 100, 1), 1000) }
        let type = call.query("type").flatMap { $0 == "file" || $0 == "folder" ? $0 : nil }
        let cursor = call.query("cursor").flatMap { $0.isEmpty ? nil : $0 }
        let cursorMode = cursor != nil || (call.query("limit") != nil && call.query("page") == nil)
        var out: [String: Any] = [:]
        let page: (nodes: [NodeRecord], total: Int, hasMore: Bool)
        let size: Int
        if cursorMode {
            size = clamp(call.query("limit") ?? call.query("pageSize"))
            var after: String?
            if let cursor {
                guard let name = Base64URL.decode(cursor) else { throw APIError.invalid("bad cursor") }
                after = name
            }
            page = try call.store.children(of: folder.id, offset: 0, limit: size, after: after, type: type)
        } else {
            size = clamp(call.query("pageSize") ?? call.query("limit"))
            let number = max(Int(call.query("page") ?? "") ?? 1, 1)
            let (offset, overflow) = (number - 1).multipliedReportingOverflow(by: size)
            page = try call.store.children(of: folder.id, offset: overflow ? Int.max / 2 : offset, limit: size, after: nil, type: type)
            out["page"] = number
        }
        let items = page.nodes.map(NodeJSON.node)
        out["children"] = items
        out["items"] = items
        out["total"] = page.total
        out["pageSize"] = size
        out["hasMore"] = page.hasMore
        out["nextCursor"] = page.hasMore ? (page.nodes.last.map { Base64URL.encode($0.name) } ?? NSNull()) : NSNull()
        return out
    }
}

enum Base64URL {
    static func encode(_ text: String) -> String {
        Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func decode(_ text: String) -> String? {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s).flatMap { String(data: $0, encoding: .utf8) }
    }
}
