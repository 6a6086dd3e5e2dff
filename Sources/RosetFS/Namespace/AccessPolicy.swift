// POSIX permission rules as Linux 6.x applies them, over a node's mode, owner and group and
// the caller's identity. Pure logic: no I/O besides what `Caller.isMember` asks of its
// `groups` closure, so every rule is unit-tested (AccessPolicyTests).
//
// Invariants
// - Root (uid 0) passes every mode-bit check except execute of a file with no execute bit,
//   and every ownership rule; it is never refused by a sticky folder.
// - Exactly one class applies to a caller: owner if its uid owns the node, else group if the
//   node's group is its group or one of its supplementary groups, else other. (An owner whose
//   owner bits deny what the group bits allow is still refused, as on a local disk.)
// - A rule returns the errno Linux returns: EACCES for mode bits, EPERM for ownership.
// - Set-ID bits only ever get cleared here, never set: a mode the caller may not have is cut
//   down rather than refused (chmod g+s by a non-member keeps the rest, as Linux does).
#if canImport(Glibc)
import Glibc
#endif

/// Who asks, as the permission rules need it.
struct Caller {
    var uid: UInt32
    var gid: UInt32
    /// The supplementary groups, asked for only when the primary group does not decide.
    var groups: () -> [UInt32]

    var isRoot: Bool { uid == 0 }

    func isMember(of group: UInt32) -> Bool { gid == group || groups().contains(group) }
}

/// What a node shows: `st_mode` (type and permission bits), owner and group.
struct NodeAccess: Equatable {
    var mode: UInt32
    var uid: UInt32
    var gid: UInt32

    var isFolder: Bool { mode & UInt32(S_IFMT) == UInt32(S_IFDIR) }
}

/// Bits of `access(2)`'s mask: read 4, write 2, execute/search 1.
struct AccessWant: OptionSet {
    let rawValue: UInt32
    static let read = AccessWant(rawValue: 4)
    static let write = AccessWant(rawValue: 2)
    static let execute = AccessWant(rawValue: 1)
}

enum AccessPolicy {
    static let setUID: UInt32 = 0o4000
    static let setGID: UInt32 = 0o2000
    static let sticky: UInt32 = 0o1000
    static let groupExecute: UInt32 = 0o010

    /// EACCES unless the caller's class grants every bit of `want`.
    static func check(_ want: AccessWant, on node: NodeAccess, by caller: Caller) throws {
        if want.isEmpty { return }
        if caller.isRoot {
            // Root may execute a file only if somebody may; folders it always searches.
            if want.contains(.execute), !node.isFolder, node.mode & 0o111 == 0 { throw FSError(EACCES) }
            return
        }
        let shift: UInt32
        if caller.uid == node.uid { shift = 6 }
        else if caller.isMember(of: node.gid) { shift = 3 }
        else { shift = 0 }
        let granted = (node.mode >> shift) & 0o7
        if granted & want.rawValue != want.rawValue { throw FSError(EACCES) }
    }

    /// May the caller remove or rename `victim` out of `folder`? The folder needs write and
    /// search permission (EACCES); a sticky folder keeps everyone but root, the folder's owner
    /// and the victim's owner out (EPERM).
    static func checkRemove(_ victim: NodeAccess, from folder: NodeAccess, by caller: Caller) throws {
        try check([.write, .execute], on: folder, by: caller)
        try checkSticky(victim, in: folder, by: caller)
    }

    /// The sticky-folder part of `checkRemove` alone (the kernel's VFS applies it on every mount).
    static func checkSticky(_ victim: NodeAccess, in folder: NodeAccess, by caller: Caller) throws {
        guard folder.mode & sticky != 0, !caller.isRoot else { return }
        if caller.uid == folder.uid || caller.uid == victim.uid { return }
        throw FSError(EPERM)
    }

    /// A setattr's mode, owner, group and time changes, checked against `node` for `caller`.
    /// Returns the mode to store (nil: leave it), which may drop set-ID bits the change did not
    /// ask to keep (chown of a file, chmod g+s by a non-member). `hasHandle`: the change comes
    /// through an open descriptor (ftruncate, futimens), whose open already checked access.
    static func checkChange(node: NodeAccess, mode newMode: UInt32?, uid newUID: UInt32?, gid newGID: UInt32?,
                            size: Int64?, explicitTimes: Bool, timesNow: Bool, hasHandle: Bool,
                            by caller: Caller) throws -> UInt32? {
        let isOwner = caller.isRoot || caller.uid == node.uid
        let permission = node.mode & 0o7777
        var resultMode = newMode.map { $0 & 0o7777 }

        if let uid = newUID, !caller.isRoot, !(caller.uid == node.uid && uid == node.uid) {
            throw FSError(EPERM)
        }
        if let gid = newGID, !caller.isRoot {
            guard caller.uid == node.uid, gid == node.gid || caller.isMember(of: gid) else { throw FSError(EPERM) }
        }
        if let mode = resultMode {
            if !isOwner {
                // The kernel clears set-ID bits after a write by someone who may write the file
                // (Linux sends that as a chmod from the writer): allowed to a writer only.
                let dropsOnlySetID = mode != permission && mode & ~permission == 0
                    && (permission & ~mode) & ~(setUID | setGID) == 0
                guard dropsOnlySetID else { throw FSError(EPERM) }
                try check(.write, on: node, by: caller)
            } else if !caller.isRoot, mode & setGID != 0, !caller.isMember(of: newGID ?? node.gid) {
                resultMode = mode & ~setGID
            }
        }
        if explicitTimes, !isOwner { throw FSError(EPERM) }
        if timesNow, !isOwner, !hasHandle { try check(.write, on: node, by: caller) }
        if size != nil, !hasHandle { try check(.write, on: node, by: caller) }

        // A change of owner or group of a file clears set-user-ID (for root too, as Linux does
        // since 2.2.13) and set-group-ID where it marks a group-executable file.
        if (newUID != nil || newGID != nil), !node.isFolder {
            let base = resultMode ?? permission
            var cleared = base & ~setUID
            if base & setGID != 0, base & groupExecute != 0 || !(caller.isRoot || caller.isMember(of: newGID ?? node.gid)) {
                cleared &= ~setGID
            }
            if cleared != base || resultMode != nil { resultMode = cleared }
        }
        // A truncation by anyone but root clears them the way a write does.
        if size != nil, !caller.isRoot, !node.isFolder {
            let base = resultMode ?? permission
            let cleared = clearedAfterWrite(base)
            if cleared != base { resultMode = cleared }
        }
        return resultMode
    }

    /// The permission bits after a write (or truncation) by a caller other than root: without
    /// set-user-ID, and without set-group-ID where the group may execute.
    static func clearedAfterWrite(_ permission: UInt32) -> UInt32 {
        var mode = permission & ~setUID
        if mode & groupExecute != 0 { mode &= ~setGID }
        return mode
    }

    /// Owner, group and permission bits of a node `caller` creates in `folder` with the
    /// requested mode (already masked by the kernel with the caller's umask): the caller's uid;
    /// the folder's group in a set-group-ID folder (and a new folder inherits that bit), the
    /// caller's group elsewhere. A non-member creating a set-group-ID file loses that bit.
    static func newNode(mode: UInt32, isFolder: Bool, in folder: NodeAccess, by caller: Caller)
        -> (mode: UInt32, uid: UInt32, gid: UInt32) {
        var permission = mode & 0o7777
        var gid = caller.gid
        if folder.mode & setGID != 0 {
            gid = folder.gid
            if isFolder { permission |= setGID }
        }
        if !isFolder, permission & setGID != 0, !caller.isRoot, !caller.isMember(of: gid) {
            permission &= ~setGID
        }
        return (permission, caller.uid, gid)
    }
}
