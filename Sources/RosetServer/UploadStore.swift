// Upload sessions (MetadataStore extension). Invariants:
// - An upload targets exactly one node; a new file's node exists (pending: no current version,
//   size 0) from init on, so clients can stat it at once.
// - `complete` is applied once: the upload's state moves open → completed in the same transaction
//   that makes the new version current; a repeated complete finds `completed` and changes nothing.
// - Abort removes a pending node created by this upload; an existing node keeps its old version.
import Foundation
import GRDB

struct UploadRecord {
    var token: String
    var nodeId: String
    var mountId: String
    var storageKey: String
    var multipart: Bool
    /// The S3 multipart UploadId (S3 backend, multipart uploads only).
    var backendUploadId: String?
    var createsNode: Bool
    var contentType: String?
    var expectedSize: Int64?
    var state: String
    var versionId: Int64?
    var expiresAt: Double

    var isOpen: Bool { state == "open" }
}

extension MetadataStore {
    static func uploadRecord(_ r: Row) -> UploadRecord {
        UploadRecord(token: r["token"], nodeId: r["nodeId"], mountId: r["mountId"], storageKey: r["storageKey"],
                     multipart: r["multipart"], backendUploadId: r["backendUploadId"], createsNode: r["createsNode"],
                     contentType: r["contentType"], expectedSize: r["expectedSize"], state: r["state"],
                     versionId: r["versionId"], expiresAt: r["expiresAt"])
    }

    /// A live (open or completed, not expired) upload.
    func upload(_ token: String) throws -> UploadRecord? {
        try db.read { db in
            guard let u = try Row.fetchOne(db, sql: "SELECT * FROM uploads WHERE token = ?", arguments: [token]).map(Self.uploadRecord)
            else { return nil }
            if u.state == "aborted" || (u.isOpen && u.expiresAt < Timestamp.now) { return nil }
            return u
        }
    }

    /// Registers an upload; for a new file (`newFile` set) the pending node is created in the same
    /// transaction, so a name clash leaves nothing behind.
    func createUpload(_ u: UploadRecord, newFile: (parentId: String, name: String, metadata: [String: Any])?) throws -> NodeRecord {
        try db.write { db in
            if let newFile {
                let parent = try Self.requireFolder(db, newFile.parentId)
                guard parent.mountId == u.mountId else { throw APIError.invalid("parent is in another mount") }
                _ = try Self.insertNode(db, id: u.nodeId, mountId: u.mountId, parentId: newFile.parentId, name: newFile.name,
                                        type: "file", size: 0, contentType: u.contentType, metadata: newFile.metadata)
            }
            try db.execute(sql: """
                INSERT INTO uploads(token, nodeId, mountId, storageKey, multipart, backendUploadId, createsNode, contentType,
                                    expectedSize, state, createdAt, expiresAt)
                VALUES (?,?,?,?,?,?,?,?,?,'open',?,?)
                """, arguments: [u.token, u.nodeId, u.mountId, u.storageKey, u.multipart, u.backendUploadId, u.createsNode,
                                 u.contentType, u.expectedSize, Timestamp.now, u.expiresAt])
            guard let node = try Self.liveNode(db, u.nodeId) else { throw APIError.notFound() }
            return node
        }
    }

    /// Makes the uploaded object the node's current version. Returns the node and version; a
    /// second call for the same token returns the version the first call made.
    func completeUpload(token: String, etag: String, size: Int64) throws -> (NodeRecord, VersionRecord) {
        try db.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM uploads WHERE token = ?", arguments: [token]) else {
                throw APIError.uploadNotFound
            }
            let u = Self.uploadRecord(row)
            if u.state == "completed", let vid = u.versionId {
                guard let node = try Self.liveNode(db, u.nodeId) else { throw APIError.notFound() }
                // A version two or more uploads old has been pruned; the token is spent.
                guard let version = try Self.version(db, vid) else { throw APIError.uploadNotFound }
                return (node, version)
            }
            guard u.isOpen else { throw APIError.uploadNotFound }
            guard let node = try Self.liveNode(db, u.nodeId) else { throw APIError.notFound() }
            let now = Timestamp.now
            let contentType = u.contentType ?? node.contentType ?? "application/octet-stream"
            try db.execute(sql: "UPDATE versions SET isCurrent = 0 WHERE nodeId = ?", arguments: [node.id])
            try db.execute(sql: """
                INSERT INTO versions(nodeId, storageKey, etag, size, contentType, sha256, isCurrent, createdAt)
                VALUES (?,?,?,?,?,NULL,1,?)
                """, arguments: [node.id, u.storageKey, etag, size, contentType, now])
            let vid = db.lastInsertedRowID
            try db.execute(sql: "UPDATE nodes SET size = ?, contentType = ?, currentVersionId = ?, updatedAt = ? WHERE id = ?",
                           arguments: [size, contentType, vid, max(now, node.updatedAt + 0.001), node.id])
            try db.execute(sql: "UPDATE uploads SET state = 'completed', versionId = ? WHERE token = ?", arguments: [vid, token])
            return (try Self.liveNode(db, node.id)!, try Self.version(db, vid)!)
        }
    }

    /// Marks the upload aborted; soft-deletes its node if the upload created it and it never got content.
    func abortUpload(token: String) throws -> UploadRecord? {
        try db.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM uploads WHERE token = ?", arguments: [token]) else { return nil }
            let u = Self.uploadRecord(row)
            guard u.isOpen else { return u }
            try db.execute(sql: "UPDATE uploads SET state = 'aborted' WHERE token = ?", arguments: [token])
            if u.createsNode {
                try db.execute(sql: "UPDATE nodes SET deletedAt = ? WHERE id = ? AND currentVersionId IS NULL AND deletedAt IS NULL",
                               arguments: [Timestamp.now, u.nodeId])
            }
            return u
        }
    }

    /// Forgets versions older than the newest `keep` of a node and returns their storage keys, so
    /// the caller can delete the bytes. The previous version is kept for readers still on it.
    func pruneVersions(nodeId: String, keep: Int = 2) throws -> [String] {
        try db.write { db in
            let rows = try Row.fetchAll(db, sql: "SELECT id, storageKey FROM versions WHERE nodeId = ? AND isCurrent = 0 ORDER BY id DESC LIMIT -1 OFFSET ?",
                                        arguments: [nodeId, keep - 1])
            for r in rows { try db.execute(sql: "DELETE FROM versions WHERE id = ?", arguments: [r["id"] as Int64]) }
            return rows.map { $0["storageKey"] }
        }
    }

    static func version(_ db: Database, _ id: Int64) throws -> VersionRecord? {
        try Row.fetchOne(db, sql: "SELECT * FROM versions WHERE id = ?", arguments: [id]).map {
            VersionRecord(id: $0["id"], nodeId: $0["nodeId"], storageKey: $0["storageKey"], etag: $0["etag"], size: $0["size"],
                          contentType: $0["contentType"], sha256: $0["sha256"], isCurrent: $0["isCurrent"], createdAt: $0["createdAt"])
        }
    }
}
