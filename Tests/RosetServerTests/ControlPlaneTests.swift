// Control-plane endpoints against the real binary over loopback: CLI contract, auth, both JSON
// dialects' keys, the node rules of docs/PROTOCOL.md §3 (merge/null-delete, soft delete, NAME_CONFLICT
// details, CYCLE_DETECTED, paging by page and by cursor), mounts and Idempotency-Key.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import TestSupport

let nodeKeys = ["id", "tenantId", "tenant_id", "mountId", "parentId", "name", "type", "size", "contentType",
                "metadata", "createdAt", "updatedAt", "isImmutable", "commitStatus", "deletedAt"]

func expectNodeShape(_ node: [String: Any], sourceLocation: SourceLocation = #_sourceLocation) {
    for key in nodeKeys { #expect(node.keys.contains(key), "missing \(key)", sourceLocation: sourceLocation) }
    #expect(node["tenantId"] as? String == node["tenant_id"] as? String, sourceLocation: sourceLocation)
    let created = node["createdAt"] as? String ?? ""
    #expect(created.hasSuffix("Z") && created.count == 20, "RFC 3339 UTC: \(created)", sourceLocation: sourceLocation)
}

@Suite(.serialized)
struct ControlPlaneTests {
    @Test func cliCreatesDataFolderKeyFileAndAnswersHealthz() async throws {
        try await withServer { s in
            let keyPath = s.dataDir.path + "/data/apikey"
            let attrs = try FileManager.default.attributesOfItem(atPath: keyPath)
            #expect((attrs[.posixPermissions] as? NSNumber)?.intValue == 0o600)
            let lines = try String(contentsOfFile: keyPath, encoding: .utf8).split(whereSeparator: \.isNewline)
            #expect(lines.count == 1)
            #expect(try await s.send("GET", "/healthz", auth: false).status == 200)
            let log = try String(contentsOfFile: s.dataDir.path + "/stderr.log", encoding: .utf8)
            #expect(log.contains(keyPath))
            #expect(!log.contains(s.apiKey))
        }
    }

    @Test func missingOrBadKeyIs401() async throws {
        try await withServer { s in
            let none = try await s.send("POST", "/v1/resolve", json: ["paths": ["/"]], auth: false)
            #expect(none.status == 401)
            #expect(none.object.str("code") == "UNAUTHORIZED")
            let bad = try await s.send("POST", "/v1/resolve", json: ["paths": ["/"]], headers: ["Authorization": "Bearer nope"], auth: false)
            #expect(bad.status == 401)
            #expect(bad.object.str("error") != nil && bad.object.str("message") != nil)
        }
    }

    @Test func resolveIsWrappedAndNullForMissing() async throws {
        try await withServer { s in
            let root = try await s.rootId()
            let dir = try await s.mkdir("docs", parent: root).object.str("id")!
            _ = try await s.mkdir("inner", parent: dir)
            let r = try await s.send("POST", "/v1/resolve", json: ["paths": ["/", "/docs/inner", "missing", "/docs/missing/x"]])
            #expect(r.status == 200)
            let nodes = r.object.obj("nodes")
            expectNodeShape(nodes.obj("/"))
            #expect(nodes.obj("/").str("parentId") == nil)
            #expect(nodes.obj("/docs/inner").str("name") == "inner")
            #expect(nodes["missing"] is NSNull)
            #expect(nodes["/docs/missing/x"] is NSNull)
            let rel = try await s.send("POST", "/v1/resolve", json: ["paths": ["inner"], "baseId": dir])
            #expect(rel.object.obj("nodes").obj("inner").str("parentId") == dir)
        }
    }

    @Test func createGetPatchInBothDialects() async throws {
        try await withServer { s in
            let root = try await s.rootId()
            let made = try await s.send("POST", "/v1/nodes", json: ["name": "a", "type": "folder", "parentId": root,
                                                                    "metadata": ["x": 1, "y": "keep"]])
            #expect(made.status == 201)
            expectNodeShape(made.object)
            expectNodeShape(made.object.obj("node"))
            let id = made.object.str("id")!
            #expect(made.object.obj("node").str("id") == id)
            #expect(made.object["size"] is NSNull)

            let got = try await s.send("GET", "/v1/nodes/\(id)")
            #expect(got.object.str("name") == "a" && got.object.obj("node").str("name") == "a")

            // Merge: x deleted by null, z added, y kept.
            let patched = try await s.send("PATCH", "/v1/nodes/\(id)", json: ["metadata": ["x": NSNull(), "z": true]])
            #expect(patched.status == 200)
            let meta = patched.object.obj("node").obj("metadata")
            #expect(meta["x"] == nil && meta.str("y") == "keep" && meta["z"] as? Bool == true)

            let renamed = try await s.send("PATCH", "/v1/nodes/\(id)", json: ["name": "b"])
            #expect(renamed.object.str("name") == "b")
            let viaRoot = try await s.send("GET", "/v1/nodes/root")
            #expect(viaRoot.object.str("id") == root)

            let sealed = try await s.send("PATCH", "/v1/nodes/\(id)", json: ["metadata": ["committed": true]])
            #expect(sealed.object.str("commitStatus") == "committed")
            #expect(sealed.object["isImmutable"] as? Bool == true)
        }
    }

    @Test func nameConflictCycleAndParentNotFolder() async throws {
        try await withServer { s in
            let root = try await s.rootId()
            let a = try await s.mkdir("a", parent: root).object.str("id")!
            let b = try await s.mkdir("b", parent: a).object.str("id")!
            let clash = try await s.mkdir("a", parent: root)
            #expect(clash.status == 409)
            #expect(clash.object.str("code") == "NAME_CONFLICT")
            #expect(clash.object.obj("details").str("existingNodeId") == a)

            let cycle = try await s.send("PATCH", "/v1/nodes/\(a)", json: ["parentId": b])
            #expect(cycle.status == 400)
            #expect(cycle.object.str("code") == "CYCLE_DETECTED")
            let selfCycle = try await s.send("PATCH", "/v1/nodes/\(a)", json: ["parentId": a])
            #expect(selfCycle.object.str("code") == "CYCLE_DETECTED")

            let renameClash = try await s.send("PATCH", "/v1/nodes/\(b)", json: ["parentId": root, "name": "a"])
            #expect(renameClash.status == 409)
            #expect(renameClash.object.obj("details").str("existingNodeId") == a)

            let (_, file) = try await s.upload(name: "f", parent: root, parts: [Data("x".utf8)])
            let underFile = try await s.mkdir("c", parent: file)
            #expect(underFile.status == 400)
            #expect(underFile.object.str("code") == "PARENT_NOT_FOLDER")
            let moveUnderFile = try await s.send("PATCH", "/v1/nodes/\(b)", json: ["parentId": file])
            #expect(moveUnderFile.object.str("code") == "PARENT_NOT_FOLDER")

            // A legal move keeps the subtree.
            let moved = try await s.send("PATCH", "/v1/nodes/\(b)", json: ["parentId": root])
            #expect(moved.status == 200 && moved.object.str("parentId") == root)
        }
    }

    @Test func deleteIsSoftAndTakesTheSubtree() async throws {
        try await withServer { s in
            let root = try await s.rootId()
            let a = try await s.mkdir("a", parent: root).object.str("id")!
            let b = try await s.mkdir("b", parent: a).object.str("id")!
            let del = try await s.send("DELETE", "/v1/nodes/\(a)")
            #expect(del.status == 204)
            #expect(try await s.send("GET", "/v1/nodes/\(a)").status == 404)
            #expect(try await s.send("GET", "/v1/nodes/\(b)").status == 404)
            let r = try await s.send("POST", "/v1/resolve", json: ["paths": ["/a", "/a/b"]])
            #expect(r.object.obj("nodes")["/a"] is NSNull)
            let kids = try await s.send("GET", "/v1/nodes/\(root)/children?page=1&pageSize=10")
            #expect((kids.object["children"] as? [Any])?.count == 0)
            #expect(try await s.send("DELETE", "/v1/nodes/\(a)").status == 404)
            // The name is free again.
            #expect(try await s.mkdir("a", parent: root).status == 201)
            #expect(try await s.send("DELETE", "/v1/nodes/\(root)").status == 400)
        }
    }

    @Test func childrenPageByPageAndByCursor() async throws {
        try await withServer { s in
            let root = try await s.rootId()
            var names: [String] = []
            for i in 0..<25 {
                let name = String(format: "d%02d", (i * 7) % 25)
                names.append(name)
                #expect(try await s.mkdir(name, parent: root).status == 201)
            }
            names.sort()

            var byPage: [String] = []
            var page = 1
            while true {
                let r = try await s.send("GET", "/v1/nodes/\(root)/children?page=\(page)&pageSize=10")
                let o = r.object
                #expect(o.int("total") == 25)
                #expect(o.int("page") == page && o.int("pageSize") == 10)
                let children = (o["children"] as? [[String: Any]]) ?? []
                let items = (o["items"] as? [[String: Any]]) ?? []
                #expect(children.map { $0.str("id") } == items.map { $0.str("id") })
                children.forEach { expectNodeShape($0) }
                byPage += children.compactMap { $0.str("name") }
                let more = o["hasMore"] as? Bool ?? false
                #expect(more == (o["nextCursor"] is String))
                if !more { break }
                page += 1
            }
            #expect(page == 3)
            #expect(byPage == names)

            var byCursor: [String] = []
            var cursor: String?
            var rounds = 0
            repeat {
                let q = cursor.map { "&cursor=\($0)" } ?? ""
                let r = try await s.send("GET", "/v1/nodes/\(root)/children?limit=10\(q)")
                byCursor += ((r.object["items"] as? [[String: Any]]) ?? []).compactMap { $0.str("name") }
                cursor = r.object.str("nextCursor")
                rounds += 1
            } while cursor != nil && rounds < 10
            #expect(rounds == 3)
            #expect(byCursor == names)

            // pageSize is clamped to [1, 1000] and the offset follows the clamped size.
            let one = try await s.send("GET", "/v1/nodes/\(root)/children?page=2&pageSize=0")
            #expect(one.object.int("pageSize") == 1)
            #expect((one.object["children"] as? [[String: Any]])?.first?.str("name") == names[1])
            let big = try await s.send("GET", "/v1/nodes/\(root)/children?page=1&pageSize=5000")
            #expect(big.object.int("pageSize") == 1000)
            #expect((big.object["children"] as? [Any])?.count == 25)

            let manifest = try await s.send("GET", "/v1/nodes/\(root)/manifest")
            #expect(((manifest.json as? [[String: Any]]) ?? []).compactMap { $0.str("name") } == names)
        }
    }

    @Test func batchStat() async throws {
        try await withServer { s in
            let root = try await s.rootId()
            let a = try await s.mkdir("a", parent: root).object.str("id")!
            let r = try await s.send("POST", "/v1/nodes/batch/stat", json: ["ids": [a, "00000000-0000-0000-0000-000000000000"]])
            #expect(r.object.obj(a).str("name") == "a")
            #expect(r.object["00000000-0000-0000-0000-000000000000"] is NSNull)
        }
    }

    @Test func idempotencyKeyReplaysInsteadOfActingTwice() async throws {
        try await withServer { s in
            let root = try await s.rootId()
            let body: [String: Any] = ["name": "once", "type": "folder", "parentId": root]
            let first = try await s.send("POST", "/v1/nodes", json: body, headers: ["Idempotency-Key": "k-1"])
            let second = try await s.send("POST", "/v1/nodes", json: body, headers: ["Idempotency-Key": "k-1"])
            #expect(first.status == 201 && second.status == 201)
            #expect(first.object.str("id") == second.object.str("id"))
            let other = try await s.send("POST", "/v1/nodes", json: body, headers: ["Idempotency-Key": "k-2"])
            #expect(other.status == 409)
            let kids = try await s.send("GET", "/v1/nodes/\(root)/children")
            #expect(kids.object.int("total") == 1)

            let initBody: [String: Any] = ["name": "f", "parentId": root, "size": 0, "multipart": true]
            let i1 = try await s.send("POST", "/v1/uploads/init", json: initBody, headers: ["Idempotency-Key": "k-3"])
            let i2 = try await s.send("POST", "/v1/uploads/init", json: initBody, headers: ["Idempotency-Key": "k-3"])
            #expect(i1.status == 200 && i1.object.str("uploadToken") == i2.object.str("uploadToken"))

            let stats = try await s.admin("GET", "/admin/stats")
            #expect(stats.object.int("idempotentReplays") == 2)
            #expect(stats.object.int("nodesCreated") == 2)
        }
    }

    @Test func mountsBySelectionAndBoundKeys() async throws {
        let anyKey = "rk_any_\(UUID().uuidString.prefix(8))"
        let betaKey = "rk_beta_\(UUID().uuidString.prefix(8))"
        try await withServer(args: ["--mount", "alpha", "--mount", "beta", "--apikey-file", "{TMP}/keys"], prepare: { dir in
            try "# test keys\n\(anyKey)\n\(betaKey) beta\n".write(toFile: dir.path + "/keys", atomically: true, encoding: .utf8)
        }) { s in
            #expect(s.apiKey == anyKey)
            let defaultRoot = try await s.rootId()
            let alphaRoot = try await s.rootId(headers: ["X-Roset-Mount-Id": "alpha"])
            #expect(!defaultRoot.isEmpty && defaultRoot != alphaRoot)
            let defaultMount = try await s.send("GET", "/v1/nodes/root")
            #expect(defaultMount.object.str("mountId") == "default")
            let betaRoot = try await s.rootId(headers: ["X-Roset-Mount-Id": "beta"])
            let betaRoot2 = try await s.rootId(headers: ["X-Mount-Id": "beta"])
            #expect(!alphaRoot.isEmpty && !betaRoot.isEmpty && alphaRoot != betaRoot && betaRoot == betaRoot2)
            let viaBody = try await s.send("POST", "/v1/resolve", json: ["paths": ["/"], "mountId": "beta"],
                                           headers: ["X-Roset-Mount-Id": "alpha"])
            #expect(viaBody.object.obj("nodes").obj("/").str("mountId") == "beta")
            let unknown = try await s.send("POST", "/v1/resolve", json: ["paths": ["/"], "mountId": "nope"])
            #expect(unknown.status == 404 && unknown.object.str("code") == "MOUNT_NOT_FOUND")

            let asBeta = ["Authorization": "Bearer \(betaKey)"]
            let betaDefault = try await s.send("POST", "/v1/resolve", json: ["paths": ["/"]], headers: asBeta, auth: false)
            #expect(betaDefault.object.obj("nodes").obj("/").str("id") == betaRoot)
            let forbidden = try await s.send("POST", "/v1/resolve", json: ["paths": ["/"], "mountId": "alpha"], headers: asBeta, auth: false)
            #expect(forbidden.status == 403)
            let foreignNode = try await s.send("GET", "/v1/nodes/\(alphaRoot)", headers: asBeta, auth: false)
            #expect(foreignNode.status == 403)
        }
    }
}
