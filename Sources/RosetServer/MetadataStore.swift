// The node tree, versions, uploads and idempotency records in one SQLite database (GRDB).
// Invariants:
// - Within a parent, at most one LIVE node (deletedAt IS NULL) has a given name (a partial unique
//   index enforces it, so a race between two creates still gives one NAME_CONFLICT).
// - A deleted folder's live descendants are deleted with it (same deletedAt), so "live" is a
//   property of the row alone and no query has to walk ancestors.
// - A node's content is `currentVersionId`; a completed upload swaps it in one transaction, so a
//   reader sees either the old or the new version, never a mix.
// - Each mount has one root folder (parentId NULL) that cannot be deleted, renamed or moved.
import Foundation
import GRDB

/// A file version (platform `FileVersion`).
struct VersionRecord {
    var id: Int64
    var nodeId: String
    var storageKey: String
    var etag: String
    var size: Int64
    var contentType: String?
    var sha256: String?
    var isCurrent: Bool
    var createdAt: Double
}

struct NodeRecord {
    var id: String
    var tenantId: String
    var mountId: String
    var parentId: String?
    var name: String
    var type: String
    var size: Int64?
    var contentType: String?
    var metadata: [String: Any]
    var createdAt: Double
    var updatedAt: Double
    var deletedAt: Double?
    var version: VersionRecord?

    var isFolder: Bool { type == "folder" }
}

struct MountRecord {
    var id: String
    var tenantId: String
    var rootId: String
    var isDefault: Bool
}

final class MetadataStore: @unchecked Sendable {
    let db: DatabaseQueue
    static let tenantId = "t_local"

    init(path: String) throws {
        var config = Configuration()
        config.busyMode = .timeout(10)
        db = try DatabaseQueue(path: path, configuration: config)
        try db.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode=WAL") }
        try migrate()
    }

    private func migrate() throws {
        try db.write { db in
            try db.execute(sql: """
            CREATE TABLE IF NOT EXISTS mounts(
              id TEXT PRIMARY KEY, tenantId TEXT NOT NULL, rootId TEXT NOT NULL,
              isDefault INTEGER NOT NULL DEFAULT 0, createdAt REAL NOT NULL);
            CREATE TABLE IF NOT EXISTS nodes(
              id TEXT PRIMARY KEY, mountId TEXT NOT NULL, parentId TEXT, name TEXT NOT NULL,
              type TEXT NOT NULL, size INTEGER, contentType TEXT, metadata TEXT NOT NULL DEFAULT '{}',
              createdAt REAL NOT NULL, updatedAt REAL NOT NULL, deletedAt REAL, currentVersionId INTEGER);
            CREATE UNIQUE INDEX IF NOT EXISTS nodes_live_name ON nodes(parentId, name) WHERE deletedAt IS NULL;
            CREATE INDEX IF NOT EXISTS nodes_parent ON nodes(parentId, name);
            CREATE TABLE IF NOT EXISTS versions(
              id INTEGER PRIMARY KEY AUTOINCREMENT, nodeId TEXT NOT NULL, storageKey TEXT NOT NULL,
              etag TEXT NOT NULL, size INTEGER NOT NULL, contentType TEXT, sha256 TEXT,
              isCurrent INTEGER NOT NULL, createdAt REAL NOT NULL);
            CREATE INDEX IF NOT EXISTS versions_node ON versions(nodeId);
            CREATE TABLE IF NOT EXISTS uploads(
              token TEXT PRIMARY KEY, nodeId TEXT NOT NULL, mountId TEXT NOT NULL, storageKey TEXT NOT NULL,
              multipart INTEGER NOT NULL, backendUploadId TEXT, createsNode INTEGER NOT NULL,
              contentType TEXT, expectedSize INTEGER, state TEXT NOT NULL, versionId INTEGER,
              createdAt REAL NOT NULL, expiresAt REAL NOT NULL);
            CREATE TABLE IF NOT EXISTS idempotency(
              scope TEXT PRIMARY KEY, status INTEGER NOT NULL, body BLOB NOT NULL, createdAt REAL NOT NULL);
            CREATE INDEX IF NOT EXISTS idempotency_age ON idempotency(createdAt);
            """)
        }
    }

    // MARK: Mounts

    /// Creates missing mounts (each with a root folder) and marks `defaultId` as the default.
    func ensureMounts(_ ids: [String], defaultId: String) throws {
        try db.write { db in
            let now = Timestamp.now
            for id in ids {
                if try Row.fetchOne(db, sql: "SELECT id FROM mounts WHERE id = ?", arguments: [id]) != nil { continue }
                let rootId = UUID().uuidString.lowercased()
                try db.execute(sql: "INSERT INTO mounts(id, tenantId, rootId, isDefault, createdAt) VALUES (?,?,?,0,?)",
                               arguments: [id, Self.tenantId, rootId, now])
                try db.execute(sql: """
                    INSERT INTO nodes(id, mountId, parentId, name, type, size, metadata, createdAt, updatedAt)
                    VALUES (?, ?, NULL, '', 'folder', NULL, '{}', ?, ?)
                    """, arguments: [rootId, id, now, now])
            }
            try db.execute(sql: "UPDATE mounts SET isDefault = (id = ?)", arguments: [defaultId])
        }
    }

    func mount(_ id: String) throws -> MountRecord? {
        try db.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM mounts WHERE id = ?", arguments: [id]).map(Self.mountRecord)
        }
    }

    func defaultMount() throws -> MountRecord? {
        try db.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM mounts WHERE isDefault = 1 LIMIT 1").map(Self.mountRecord)
        }
    }

    private static func mountRecord(_ r: Row) -> MountRecord {
        MountRecord(id: r["id"], tenantId: r["tenantId"], rootId: r["rootId"], isDefault: r["isDefault"])
    }

    // MARK: Reading nodes

    static let nodeSelect = """
        SELECT n.*, m.tenantId AS tenantId, v.id AS vId, v.storageKey AS vKey, v.etag AS vEtag, v.size AS vSize,
               v.contentType AS vType, v.sha256 AS vSha, v.createdAt AS vCreated
        FROM nodes n JOIN mounts m ON m.id = n.mountId LEFT JOIN versions v ON v.id = n.currentVersionId
        """

    static func nodeRecord(_ r: Row) -> NodeRecord {
        var version: VersionRecord?
        if let vId: Int64 = r["vId"] {
            version = VersionRecord(id: vId, nodeId: r["id"], storageKey: r["vKey"], etag: r["vEtag"], size: r["vSize"],
                                    contentType: r["vType"], sha256: r["vSha"], isCurrent: true, createdAt: r["vCreated"])
        }
        return NodeRecord(id: r["id"], tenantId: r["tenantId"], mountId: r["mountId"], parentId: r["parentId"],
                          name: r["name"], type: r["type"], size: r["size"], contentType: r["contentType"],
                          metadata: JSONBody.decodeMetadata(r["metadata"]), createdAt: r["createdAt"],
                          updatedAt: r["updatedAt"], deletedAt: r["deletedAt"], version: version)
    }

    static func liveNode(_ db: Database, _ id: String) throws -> NodeRecord? {
        try Row.fetchOne(db, sql: nodeSelect + " WHERE n.id = ? AND n.deletedAt IS NULL", arguments: [id]).map(nodeRecord)
    }

    static func liveChild(_ db: Database, parent: String, name: String) throws -> NodeRecord? {
        try Row.fetchOne(db, sql: nodeSelect + " WHERE n.parentId = ? AND n.name = ? AND n.deletedAt IS NULL",
                         arguments: [parent, name]).map(nodeRecord)
    }

    func node(_ id: String) throws -> NodeRecord? {
        try db.read { db in try Self.liveNode(db, id) }
    }

    func nodes(_ ids: [String]) throws -> [String: NodeRecord] {
        try db.read { db in
            var out: [String: NodeRecord] = [:]
            for id in ids { if let n = try Self.liveNode(db, id) { out[id] = n } }
            return out
        }
    }

    /// Walks `path` ("/", "a/b", "/a/b") from `start`; nil when any component is missing.
    func resolve(path: String, from start: String) throws -> NodeRecord? {
        try db.read { db in try Self.resolve(db, path: path, from: start) }
    }

    static func resolve(_ db: Database, path: String, from start: String) throws -> NodeRecord? {
        guard var current = try liveNode(db, start) else { return nil }
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." {
                guard let p = current.parentId, let parent = try liveNode(db, p) else { continue }
                current = parent
                continue
            }
            guard current.isFolder, let child = try liveChild(db, parent: current.id, name: String(part)) else { return nil }
            current = child
        }
        return current
    }

    /// One page of live children ordered by name. `after` is an exclusive name bound (cursor paging).
    func children(of id: String, offset: Int, limit: Int, after: String?, type: String?) throws -> (nodes: [NodeRecord], total: Int, hasMore: Bool) {
        try db.read { db in
            var filter = "n.parentId = ? AND n.deletedAt IS NULL"
            var args: [DatabaseValueConvertible] = [id]
            if let type { filter += " AND n.type = ?"; args.append(type) }
            let total = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM nodes n WHERE " + filter,
                                         arguments: StatementArguments(args)) ?? 0
            var pageFilter = filter
            var pageArgs = args
            if let after { pageFilter += " AND n.name > ?"; pageArgs.append(after) }
            pageArgs.append(limit + 1); pageArgs.append(offset)
            let rows = try Row.fetchAll(db, sql: Self.nodeSelect + " WHERE " + pageFilter + " ORDER BY n.name LIMIT ? OFFSET ?",
                                        arguments: StatementArguments(pageArgs))
            return (rows.prefix(limit).map(Self.nodeRecord), total, rows.count > limit)
        }
    }

    /// Bytes held by current versions of live files (for the quota).
    func usedBytes() throws -> Int64 {
        try db.read { db in
            try Int64.fetchOne(db, sql: "SELECT COALESCE(SUM(size), 0) FROM nodes WHERE deletedAt IS NULL AND type = 'file'") ?? 0
        }
    }

    // MARK: Changing nodes

    static func validName(_ name: String) throws {
        if name.isEmpty || name == "." || name == ".." || name.contains("/") || name.contains("\0") || name.utf8.count > 255 {
            throw APIError.invalid("invalid node name")
        }
    }

    static func requireFolder(_ db: Database, _ id: String) throws -> NodeRecord {
        guard let parent = try liveNode(db, id) else { throw APIError.notFound("parent not found") }
        guard parent.isFolder else { throw APIError.parentNotFolder }
        return parent
    }

    static func insertNode(_ db: Database, id: String = UUID().uuidString.lowercased(), mountId: String, parentId: String,
                           name: String, type: String, size: Int64?, contentType: String?, metadata: [String: Any]) throws -> String {
        try validName(name)
        if let existing = try liveChild(db, parent: parentId, name: name) { throw APIError.nameConflict(existing.id) }
        let now = Timestamp.now
        try db.execute(sql: """
            INSERT INTO nodes(id, mountId, parentId, name, type, size, contentType, metadata, createdAt, updatedAt)
            VALUES (?,?,?,?,?,?,?,?,?,?)
            """, arguments: [id, mountId, parentId, name, type, size, contentType,
                             String(decoding: JSONBody.encode(metadata), as: UTF8.self), now, now])
        try touchFolder(db, parentId, at: now)
        return id
    }

    /// A folder whose entries changed gets a new `updatedAt` (its mtime and ctime on a mount).
    static func touchFolder(_ db: Database, _ id: String?, at time: Double) throws {
        guard let id else { return }
        try db.execute(sql: "UPDATE nodes SET updatedAt = ? WHERE id = ? AND type = 'folder'", arguments: [time, id])
    }

    func createNode(mountId: String, parentId: String, name: String, type: String, size: Int64?,
                    contentType: String?, metadata: [String: Any]) throws -> NodeRecord {
        try db.write { db in
            let parent = try Self.requireFolder(db, parentId)
            guard parent.mountId == mountId else { throw APIError.invalid("parent is in another mount") }
            let id = try Self.insertNode(db, mountId: mountId, parentId: parentId, name: name, type: type,
                                         size: type == "folder" ? nil : (size ?? 0), contentType: contentType, metadata: metadata)
            return try Self.liveNode(db, id)!
        }
    }

    /// Rename/move and metadata merge (a null value deletes the key).
    func patchNode(_ id: String, newParent: String?, newName: String?, metadata: [String: Any]?,
                   authorize: (NodeRecord) throws -> Void) throws -> NodeRecord {
        try db.write { db in
            guard var node = try Self.liveNode(db, id) else { throw APIError.notFound() }
            try authorize(node)
            let moving = (newParent != nil && newParent != node.parentId) || (newName != nil && newName != node.name)
            let formerParent = node.parentId
            if moving {
                guard let currentParent = node.parentId else { throw APIError.invalid("the mount root cannot be moved or renamed") }
                let parentId = newParent ?? currentParent
                let name = newName ?? node.name
                try Self.validName(name)
                let parent = try Self.requireFolder(db, parentId)
                guard parent.mountId == node.mountId else { throw APIError.invalid("cannot move a node to another mount") }
                // The new parent must not be the node itself or lie below it.
                var cursor: NodeRecord? = parent
                while let c = cursor {
                    if c.id == node.id { throw APIError.cycle }
                    cursor = try c.parentId.flatMap { try Self.liveNode(db, $0) }
                }
                if let existing = try Self.liveChild(db, parent: parentId, name: name), existing.id != node.id {
                    throw APIError.nameConflict(existing.id)
                }
                node.parentId = parentId
                node.name = name
            }
            if let metadata {
                for (k, v) in metadata {
                    if v is NSNull { node.metadata.removeValue(forKey: k) } else { node.metadata[k] = v }
                }
            }
            let meta = String(decoding: JSONBody.encode(node.metadata), as: UTF8.self)
            if meta.utf8.count > 64 * 1024 { throw APIError.invalid("metadata exceeds 64 KB") }
            try db.execute(sql: "UPDATE nodes SET parentId = ?, name = ?, metadata = ?, updatedAt = ? WHERE id = ?",
                           arguments: [node.parentId, node.name, meta, Timestamp.now, id])
            if moving {
                try Self.touchFolder(db, formerParent, at: Timestamp.now)
                try Self.touchFolder(db, node.parentId, at: Timestamp.now)
            }
            return try Self.liveNode(db, id)!
        }
    }

    /// Soft delete of a node and, for a folder, its whole live subtree.
    func deleteNode(_ id: String, authorize: (NodeRecord) throws -> Void) throws {
        try db.write { db in
            guard let node = try Self.liveNode(db, id) else { throw APIError.notFound() }
            try authorize(node)
            guard node.parentId != nil else { throw APIError.invalid("the mount root cannot be deleted") }
            try db.execute(sql: """
                WITH RECURSIVE sub(id) AS (
                  SELECT ? UNION ALL SELECT n.id FROM nodes n JOIN sub ON n.parentId = sub.id WHERE n.deletedAt IS NULL)
                UPDATE nodes SET deletedAt = ? WHERE deletedAt IS NULL AND id IN (SELECT id FROM sub)
                """, arguments: [id, Timestamp.now])
            try Self.touchFolder(db, node.parentId, at: Timestamp.now)
        }
    }

    // MARK: Idempotency

    func idempotentAnswer(scope: String) throws -> (status: Int, body: Data)? {
        try db.read { db in
            try Row.fetchOne(db, sql: "SELECT status, body FROM idempotency WHERE scope = ?", arguments: [scope])
                .map { ($0["status"], $0["body"]) }
        }
    }

    func storeIdempotentAnswer(scope: String, status: Int, body: Data) throws {
        try db.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO idempotency(scope, status, body, createdAt) VALUES (?,?,?,?)",
                           arguments: [scope, status, body, Timestamp.now])
            // Keys are kept for a day, like the hosted service's dedupe window. The index on
            // createdAt keeps this a range delete (without it, every POST scanned every answer).
            try db.execute(sql: "DELETE FROM idempotency WHERE createdAt < ?", arguments: [Timestamp.now - 86400])
        }
    }
}
