// Extended attributes: only `user.*`, stored as node metadata `xattr.<name>` (XattrCodec makes
// them binary-safe). Invariant: set and remove go through a metadata merge (`.null` deletes),
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

    public func setxattr(inode: InodeNumber, name: String, value: [UInt8], flags: Int32, context: RequestContext) throws {
        let metadataKey = try XattrCodec.key(for: name)
        try checkWritable()
        try authorize(.write, on: inode, context: context)
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
        let metadataKey = try XattrCodec.key(for: name)
        let (_, metadata) = try currentMetadata(inode)
        guard let stored = metadata[metadataKey], stored != .null else { throw FSError(ENODATA) }
        return XattrCodec.decode(stored)
    }

    public func listxattr(inode: InodeNumber) throws -> [String] {
        XattrCodec.names(in: try currentMetadata(inode).metadata)
    }

    public func removexattr(inode: InodeNumber, name: String, context: RequestContext) throws {
        let metadataKey = try XattrCodec.key(for: name)
        try checkWritable()
        try authorize(.write, on: inode, context: context)
        let (key, metadata) = try currentMetadata(inode)
        guard let stored = metadata[metadataKey], stored != .null else { throw FSError(ENODATA) }
        try applyMetadata(key: key, patch: [metadataKey: .null])
    }
}

/// XATTR_CREATE / XATTR_REPLACE from <sys/xattr.h>.
let xattrCreate: Int32 = 1
let xattrReplace: Int32 = 2
