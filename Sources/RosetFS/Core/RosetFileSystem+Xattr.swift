// Extended attributes: only `user.*`, stored as node metadata `xattr.<name>` (XattrCodec makes
// them binary-safe). One name is reserved: reading `user.roset.invalidate` is the request of
// `mount.roset invalidate PATH` (it drops this mount's cached metadata and data for PATH and
// the kernel's; it is never stored, listed or settable). Invariant: set and remove go through a metadata merge (`.null` deletes),
// so they never race a whole-object rewrite, and the result is visible at once (cache patched).
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import RosetClient

extension RosetFileSystem {
    /// The metadata this mount shows for the file or folder behind `inode`.
    func currentMetadata(_ inode: InodeNumber) throws -> (key: String, metadata: [String: JSONValue]) {
        let key = try key(of: inode)
        if let e = pending(key: key) {
            let (own, nodeId) = e.cond.withLock { (e.record.metadata ?? [:], e.record.target.nodeId) }
            var md = try nodeId.map { try (cache.lastKnownNode($0) ?? currentNode($0)).metadata } ?? [:]
            for (k, v) in own { md[k] = v == .null ? nil : v }
            return (key, md)
        }
        let id = try settled(key)
        return (id, try currentNode(id).metadata)
    }

    public func setxattr(inode: InodeNumber, name: String, value: [UInt8], flags: Int32) throws {
        if name == invalidateAttributeName { throw FSError(EPERM) }
        let metadataKey = try XattrCodec.key(for: name)
        try checkWritable()
        if value.count > XattrCodec.maxValueBytes { throw FSError(E2BIG) }
        let (key, metadata) = try currentMetadata(inode)
        let exists = metadata[metadataKey].map { $0 != .null } ?? false
        if flags & xattrCreate != 0 && exists { throw FSError(EEXIST) }
        if flags & xattrReplace != 0 && !exists { throw FSError(ENODATA) }
        let encoded = XattrCodec.encode(value)
        // The server caps a node's whole metadata: a value that cannot fit even alone is too big
        // (E2BIG); one that does not fit beside the others finds no space (ENOSPC). Not EIO.
        if XattrCodec.jsonBytes([metadataKey: encoded]) > XattrCodec.maxMetadataBytes { throw FSError(E2BIG) }
        var merged = metadata
        merged[metadataKey] = encoded
        if XattrCodec.jsonBytes(merged) > XattrCodec.maxMetadataBytes { throw FSError(ENOSPC) }
        try applyMetadata(key: key, patch: [metadataKey: encoded])
    }

    public func getxattr(inode: InodeNumber, name: String) throws -> [UInt8] {
        if name == invalidateAttributeName {
            invalidateCaches(inode: inode)
            return []
        }
        let metadataKey = try XattrCodec.key(for: name)
        let (_, metadata) = try currentMetadata(inode)
        guard let stored = metadata[metadataKey], stored != .null else { throw FSError(ENODATA) }
        return XattrCodec.decode(stored)
    }

    public func listxattr(inode: InodeNumber) throws -> [String] {
        XattrCodec.names(in: try currentMetadata(inode).metadata)
    }

    public func removexattr(inode: InodeNumber, name: String) throws {
        if name == invalidateAttributeName { throw FSError(EPERM) }
        let metadataKey = try XattrCodec.key(for: name)
        try checkWritable()
        let (key, metadata) = try currentMetadata(inode)
        guard let stored = metadata[metadataKey], stored != .null else { throw FSError(ENODATA) }
        try applyMetadata(key: key, patch: [metadataKey: .null])
    }

    /// Forgets this mount's cached node (and, for a folder, its listing, its children's nodes
    /// and its absences) and the block cache's content of a file, then drops the kernel's
    /// attributes, pages and, for a folder, the entries of the names it listed, so the next
    /// use asks the control plane. A file with pending writes is this mount's own truth and
    /// keeps them. Called from getxattr, which holds no folder lock in the kernel, so the
    /// entry notifications run before the reply (a script can rely on them once it returns).
    func invalidateCaches(inode: InodeNumber) {
        guard let key = try? key(of: inode), pending(key: key) == nil, let id = try? settled(key) else { return }
        let old = cache.lastKnownNode(id)
        let names = cache.forget(id)
        if let old, old.type == .file {
            blockCache.invalidate(objectKey: Self.objectKey(of: old))
        }
        pendingIndex.forgetOpens(inode: inode)
        logger.info("cached metadata and data dropped on request", metadata: ["node": "\(id)", "names": "\(names.count)"])
        guard let notifier else { return }
        notifier.invalidateInode(inode, pages: true)
        for name in names { notifier.invalidateEntry(parent: inode, name: name) }
        if let parentId = old?.parentId, let name = old?.name, id != rootId,
           let parent = inodes.existingInode(for: parentId) {
            notifier.invalidateEntry(parent: parent, name: name)
        }
    }
}

/// Reading it invalidates (see the top of this file); mount.roset's `invalidate` command uses it.
public let invalidateAttributeName = "user.roset.invalidate"

/// XATTR_CREATE / XATTR_REPLACE from <sys/xattr.h>.
let xattrCreate: Int32 = 1
let xattrReplace: Int32 = 2
