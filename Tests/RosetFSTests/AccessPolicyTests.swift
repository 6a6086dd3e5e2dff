// AccessPolicy's rules, one caller class at a time, against what Linux does on a local disk.
import Testing
@testable import RosetFS
#if canImport(Glibc)
import Glibc
#endif

@Suite struct AccessPolicyTests {
    static let file = NodeAccess(mode: UInt32(S_IFREG) | 0o640, uid: 1000, gid: 100)
    static let folder = NodeAccess(mode: UInt32(S_IFDIR) | 0o755, uid: 1000, gid: 100)
    static let root = Caller(uid: 0, gid: 0, groups: { [] })
    static let owner = Caller(uid: 1000, gid: 1000, groups: { [] })
    static let member = Caller(uid: 2000, gid: 2000, groups: { [100] })
    static let other = Caller(uid: 3000, gid: 3000, groups: { [] })

    func errno(_ body: () throws -> Void) -> Int32 {
        do { try body(); return 0 } catch let e as FSError { return e.errno } catch { return -1 }
    }

    @Test func modeBitsPerCallerClass() {
        let f = Self.file
        #expect(errno { try AccessPolicy.check([.read, .write], on: f, by: Self.owner) } == 0)
        #expect(errno { try AccessPolicy.check(.read, on: f, by: Self.member) } == 0)
        #expect(errno { try AccessPolicy.check(.write, on: f, by: Self.member) } == EACCES)
        #expect(errno { try AccessPolicy.check(.read, on: f, by: Self.other) } == EACCES)
        #expect(errno { try AccessPolicy.check([.read, .write], on: f, by: Self.root) } == 0)
        // Root executes only what somebody may execute; it searches every folder.
        #expect(errno { try AccessPolicy.check(.execute, on: f, by: Self.root) } == EACCES)
        #expect(errno { try AccessPolicy.check(.execute, on: NodeAccess(mode: UInt32(S_IFDIR), uid: 1, gid: 1), by: Self.root) } == 0)
        // The owner class decides for the owner even where the group bits would allow more.
        let groupOnly = NodeAccess(mode: UInt32(S_IFREG) | 0o060, uid: 1000, gid: 1000)
        #expect(errno { try AccessPolicy.check(.read, on: groupOnly, by: Self.owner) } == EACCES)
        // Supplementary groups are asked for only when the uid and primary group do not decide.
        var asked = false
        let lazy = Caller(uid: 1000, gid: 7, groups: { asked = true; return [] })
        #expect(errno { try AccessPolicy.check(.read, on: f, by: lazy) } == 0)
        #expect(!asked)
    }

    @Test func stickyFolders() {
        let sticky = NodeAccess(mode: UInt32(S_IFDIR) | 0o1777, uid: 0, gid: 0)
        let victim = NodeAccess(mode: UInt32(S_IFREG) | 0o666, uid: 1000, gid: 100)
        #expect(errno { try AccessPolicy.checkRemove(victim, from: sticky, by: Self.owner) } == 0)
        #expect(errno { try AccessPolicy.checkRemove(victim, from: sticky, by: Self.other) } == EPERM)
        #expect(errno { try AccessPolicy.checkRemove(victim, from: sticky, by: Self.root) } == 0)
        let ownFolder = NodeAccess(mode: UInt32(S_IFDIR) | 0o1777, uid: 3000, gid: 0)
        #expect(errno { try AccessPolicy.checkRemove(victim, from: ownFolder, by: Self.other) } == 0)
        #expect(errno { try AccessPolicy.checkRemove(victim, from: Self.folder, by: Self.member) } == EACCES)
    }

    func change(_ node: NodeAccess = file, mode: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil,
                size: Int64? = nil, explicitTimes: Bool = false, timesNow: Bool = false, handle: Bool = false,
                by caller: Caller) -> (Int32, UInt32?) {
        do {
            let m = try AccessPolicy.checkChange(node: node, mode: mode, uid: uid, gid: gid, size: size,
                                                 explicitTimes: explicitTimes, timesNow: timesNow, hasHandle: handle, by: caller)
            return (0, m)
        } catch let e as FSError { return (e.errno, nil) } catch { return (-1, nil) }
    }

    @Test func ownershipRules() {
        #expect(change(mode: 0o600, by: Self.owner).0 == 0)
        #expect(change(mode: 0o600, by: Self.member).0 == EPERM)
        #expect(change(mode: 0o600, by: Self.root).0 == 0)
        #expect(change(uid: 3000, by: Self.owner).0 == EPERM)
        #expect(change(uid: 1000, by: Self.owner).0 == 0)
        #expect(change(uid: 2000, by: Self.member).0 == EPERM)
        #expect(change(uid: 3000, by: Self.root).0 == 0)
        #expect(change(gid: 1000, by: Self.owner).0 == 0)
        #expect(change(gid: 555, by: Self.owner).0 == EPERM)
        #expect(change(gid: 100, by: Self.member).0 == EPERM)
        #expect(change(explicitTimes: true, by: Self.member).0 == EPERM)
        #expect(change(explicitTimes: true, by: Self.owner).0 == 0)
        #expect(change(timesNow: true, by: Self.member).0 == EACCES)
        let groupWritable = NodeAccess(mode: UInt32(S_IFREG) | 0o660, uid: 1000, gid: 100)
        #expect(change(groupWritable, timesNow: true, by: Self.member).0 == 0)
        #expect(change(size: 0, by: Self.member).0 == EACCES)
        #expect(change(size: 0, handle: true, by: Self.member).0 == 0)
    }

    @Test func setIDBits() {
        let suid = NodeAccess(mode: UInt32(S_IFREG) | 0o6775, uid: 1000, gid: 100)
        // The kernel's set-ID clearing after a write comes as a chmod from the writer.
        #expect(change(suid, mode: 0o0775, by: Self.member) == (0, 0o0775))
        #expect(change(suid, mode: 0o0777, by: Self.member).0 == EPERM)
        #expect(change(suid, mode: 0o0775, by: Self.other).0 == EACCES)
        // chown/chgrp clears set-user-ID, and set-group-ID of a group-executable file.
        #expect(change(suid, gid: 1000, by: Self.owner) == (0, 0o0775))
        #expect(change(suid, uid: 1000, by: Self.root) == (0, 0o0775))
        let lockMarker = NodeAccess(mode: UInt32(S_IFREG) | 0o2644, uid: 1000, gid: 1000)
        #expect(change(lockMarker, gid: 1000, by: Self.owner) == (0, nil))
        // chmod g+s by an owner outside the group keeps the rest and drops g+s.
        #expect(change(Self.file, mode: 0o2755, by: Self.owner) == (0, 0o0755))
        #expect(change(Self.file, mode: 0o2755, by: Self.root) == (0, 0o2755))
        // truncation by anyone but root clears them as a write does.
        #expect(change(suid, size: 0, handle: true, by: Self.owner) == (0, 0o0775))
        #expect(change(suid, size: 0, by: Self.root) == (0, nil))
        #expect(AccessPolicy.clearedAfterWrite(0o2644) == 0o2644)
    }

    @Test func newNodes() {
        let plain = AccessPolicy.newNode(mode: 0o644, isFolder: false, in: Self.folder, by: Self.member)
        #expect(plain.uid == 2000 && plain.gid == 2000 && plain.mode == 0o644)
        let sgid = NodeAccess(mode: UInt32(S_IFDIR) | 0o2775, uid: 1000, gid: 100)
        let inherited = AccessPolicy.newNode(mode: 0o755, isFolder: true, in: sgid, by: Self.other)
        #expect(inherited.gid == 100 && inherited.mode == 0o2755)
        let file = AccessPolicy.newNode(mode: 0o2755, isFolder: false, in: sgid, by: Self.other)
        #expect(file.gid == 100 && file.mode == 0o0755)
    }
}
