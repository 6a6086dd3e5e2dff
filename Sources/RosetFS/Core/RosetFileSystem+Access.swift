// Who may do what, applied to this file system's requests (the rules: AccessPolicy).
// Invariants
// - Ownership rules (chmod, chown, chgrp, explicit times, set-ID clearing, sticky folders) are
//   checked on every mount: they agree with what the kernel checks with default_permissions.
// - Mode-bit checks (search on each folder of a lookup, read/write on open, write on a folder
//   to change its entries) are made here only where the kernel does not make them: a mount
//   other users reach without default_permissions (`config.checksAccess`). Entries then get a
//   timeout of 0, so the kernel looks every path component up again and no cached name skips
//   a search check.
// - Supplementary groups are read (from /proc) only when the caller's own uid and gid do not
//   decide.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import RosetClient

extension Caller {
    init(_ context: RequestContext) {
        var loaded: [UInt32]?
        self.init(uid: context.uid, gid: context.gid, groups: {
            if let loaded { return loaded }
            let groups = context.supplementaryGroups
            loaded = groups
            return groups
        })
    }
}

extension NodeAccess {
    init(_ attributes: FileAttributes) {
        self.init(mode: attributes.mode, uid: attributes.uid, gid: attributes.gid)
    }
}

extension RosetFileSystem {
    /// The spool entry of an open handle whose file was unlinked: until the last close it alone
    /// holds the file's data, readable, writable and truncatable through the handle, never uploaded.
    func unlinkedEntry(_ handle: FileHandleID?) -> SpoolEntry? {
        guard let handle, let file = try? openFile(handle), let e = file.entry else { return nil }
        return e.cond.withLock { e.unlinked } ? e : nil
    }

    /// How long the kernel may keep a name → inode entry.
    var entryTimeout: Double { config.checksAccess ? 0 : config.cacheTTL }

    func nodeAccess(_ inode: InodeNumber) throws -> NodeAccess {
        NodeAccess(try attributes(forKey: try key(of: inode), inode: inode))
    }

    func nodeAccess(_ child: Child) -> NodeAccess {
        NodeAccess(attributes(of: child, inode: 0))
    }

    /// The mode-bit check the kernel leaves to the daemon on a mount without default_permissions.
    func authorize(_ want: AccessWant, on inode: InodeNumber, context: RequestContext) throws {
        guard config.checksAccess else { return }
        try AccessPolicy.check(want, on: try nodeAccess(inode), by: Caller(context))
    }

    /// May `context` remove or replace `victim` in the folder `parent`?
    func authorizeRemoval(of victim: Child, in parent: InodeNumber, context: RequestContext) throws {
        let folder = try nodeAccess(parent)
        let caller = Caller(context)
        if config.checksAccess {
            try AccessPolicy.checkRemove(nodeAccess(victim), from: folder, by: caller)
        } else {
            try AccessPolicy.checkSticky(nodeAccess(victim), in: folder, by: caller)
        }
    }

    /// Metadata of a node `context` creates in `parent`: its mode, and its owner and group where
    /// they differ from the mount's uid=/gid= (absent keys fall back to those).
    func ownershipMetadata(mode: UInt32, isFolder: Bool, parent: InodeNumber,
                           context: RequestContext) throws -> [String: JSONValue] {
        let owner = AccessPolicy.newNode(mode: mode, isFolder: isFolder, in: try nodeAccess(parent), by: Caller(context))
        var md: [String: JSONValue] = [PosixMetadata.mode: .number(Double(owner.mode))]
        if owner.uid != config.uid { md[PosixMetadata.uid] = .number(Double(owner.uid)) }
        if owner.gid != config.gid { md[PosixMetadata.gid] = .number(Double(owner.gid)) }
        return md
    }
}
