// Node and FileVersion as JSON in the compat profile (docs/PROTOCOL.md §2): both `tenantId` and
// `tenant_id`; folders have size null; sealed folders (metadata.committed == true) also carry
// commitStatus "committed" and isImmutable true. Single-node answers are the bare node plus a
// `"node"` copy, so both dialects decode them.
import Foundation

enum NodeJSON {
    static func node(_ n: NodeRecord) -> [String: Any] {
        let sealed = n.isFolder && JSONBody.isTrue(n.metadata["committed"])
        var out: [String: Any] = [
            "id": n.id, "tenantId": n.tenantId, "tenant_id": n.tenantId, "mountId": n.mountId,
            "parentId": n.parentId ?? NSNull(), "name": n.name, "type": n.type,
            "size": n.isFolder ? NSNull() : NSNumber(value: n.size ?? 0),
            "contentType": n.contentType ?? NSNull(), "metadata": n.metadata,
            "createdAt": Timestamp.format(n.createdAt), "updatedAt": Timestamp.format(n.updatedAt),
            "isImmutable": sealed, "commitStatus": sealed ? "committed" : "active",
            "deletedAt": n.deletedAt.map { Timestamp.format($0) } ?? NSNull(),
        ]
        if let v = n.version { out["version"] = version(v) }
        return out
    }

    /// The bare node with a `"node"` copy (get, create, patch answers).
    static func wrapped(_ n: NodeRecord) -> [String: Any] {
        var out = node(n)
        out["node"] = node(n)
        return out
    }

    static func version(_ v: VersionRecord) -> [String: Any] {
        ["id": NSNumber(value: v.id), "nodeId": v.nodeId, "storageKey": v.storageKey, "etag": v.etag,
         "size": NSNumber(value: v.size), "contentType": v.contentType ?? NSNull(), "sha256": v.sha256 ?? NSNull(),
         "isCurrent": v.isCurrent, "createdAt": Timestamp.format(v.createdAt), "createdBy": NSNull()]
    }
}
