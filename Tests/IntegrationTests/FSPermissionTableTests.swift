// Permissions through a real mount that other users reach, checked against a folder on the local
// disk: every operation of the table runs as each caller (root, the file's owner, a member of
// the owner's group, another user) with setpriv, on a fresh copy of the same fixture on both
// sides, and the errno must be the same in every row. Mounts: `allow_other` as the man page's
// fstab line has it (default_permissions implied), and `allow_other,no_default_permissions`
// (the daemon's own checks alone). The table is printed.
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized, .timeLimit(.minutes(10)))
struct FSPermissionTableTests {
    struct Who {
        var name: String
        var uid: UInt32
        var gid: UInt32
        var groups: [UInt32]
    }

    static let ownerUID: UInt32 = 60001
    static let ownerGID: UInt32 = 60001
    static let callers = [
        Who(name: "root", uid: 0, gid: 0, groups: []),
        Who(name: "owner", uid: ownerUID, gid: ownerGID, groups: []),
        Who(name: "group", uid: 60002, gid: 60002, groups: [ownerGID]),
        Who(name: "other", uid: 65534, gid: 65534, groups: []),
    ]

    /// Row name → the Python statement run in the fixture folder `b` (`uid`: the caller's).
    static let operations: [(name: String, code: String)] = [
        ("open O_RDONLY 0640", "os.close(os.open(b+'/d/f', os.O_RDONLY))"),
        ("open O_WRONLY 0640", "os.close(os.open(b+'/d/f', os.O_WRONLY))"),
        ("open O_WRONLY 0660", "os.close(os.open(b+'/d/gw', os.O_WRONLY))"),
        ("open O_TRUNC 0640", "os.close(os.open(b+'/d/f', os.O_WRONLY | os.O_TRUNC))"),
        ("truncate 0640", "os.truncate(b+'/d/f', 1)"),
        ("create in 0755 dir", "os.close(os.open(b+'/d/new', os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))"),
        ("mkdir in 0755 dir", "os.mkdir(b+'/d/newdir')"),
        ("unlink in 0755 dir", "os.unlink(b+'/d/f')"),
        ("rmdir in 0755 dir", "os.rmdir(b+'/d/sub')"),
        ("rename in 0755 dir", "os.rename(b+'/d/f', b+'/d/g')"),
        ("create in 1777 dir", "os.close(os.open(b+'/s/new', os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))"),
        ("unlink in 1777 dir", "os.unlink(b+'/s/f')"),
        ("rename in 1777 dir", "os.rename(b+'/s/f', b+'/s/g')"),
        ("rename over in 1777", "os.rename(b+'/s/new2', b+'/s/f')"),
        ("chmod 0600", "os.chmod(b+'/d/f', 0o600)"),
        ("chown to self", "os.chown(b+'/d/f', uid, -1)"),
        ("chgrp to owner's grp", "os.chown(b+'/d/f', -1, 60001)"),
        ("utimensat explicit", "os.utime(b+'/d/f', (1, 1))"),
        ("utimensat now 0640", "os.utime(b+'/d/f', None)"),
        ("utimensat now 0660", "os.utime(b+'/d/gw', None)"),
        ("setxattr user.* 0640", "os.setxattr(b+'/d/f', 'user.k', b'v')"),
        ("write clears set-ID", "fd = os.open(b+'/d/suid', os.O_WRONLY); os.write(fd, b'x'); os.close(fd); "
            + "m = os.stat(b+'/d/suid').st_mode & 0o7777\nif m != 0o6777 and uid == 0: raise OSError(1000, 'root write cleared set-ID')\n"
            + "if m & 0o6000 and uid != 0: raise OSError(1001, 'set-ID kept after a write: %o' % m)"),
        ("chown clears set-ID", "os.chown(b+'/d/x', -1, 60001); m = os.stat(b+'/d/x').st_mode & 0o7777\n"
            + "if m & 0o4000: raise OSError(1002, 'set-uid kept after chown: %o' % m)"),
    ]

    /// One fixture per (operation, caller), made by root: `d` (0755, the owner's) with `f` 0640,
    /// `gw` 0660, `suid` 06777, `x` 04755 and `sub/`; `s` (01777, root's) with `f` and `new2`
    /// (0644, the owner's).
    static func makeFixture(_ base: String) throws {
        func check(_ rc: Int32, _ what: String) throws {
            if rc != 0 { throw FSError(errno: errno, what: "\(what) in \(base)") }
        }
        func file(_ path: String, _ mode: mode_t, uid: UInt32 = ownerUID, gid: UInt32 = ownerGID) throws {
            let fd = open(base + path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            if fd < 0 { throw FSError(errno: errno, what: "create \(base + path)") }
            _ = "secret\n".withCString { Glibc.write(fd, $0, 7) }
            close(fd)
            try check(chown(base + path, uid, gid), "chown \(path)")
            try check(chmod(base + path, mode), "chmod \(path)")
        }
        func folder(_ path: String, _ mode: mode_t, uid: UInt32 = ownerUID, gid: UInt32 = ownerGID) throws {
            try check(mkdir(base + path, 0o700), "mkdir \(path)")
            try check(chown(base + path, uid, gid), "chown \(path)")
            try check(chmod(base + path, mode), "chmod \(path)")
        }
        try folder("", 0o755, uid: 0, gid: 0)
        try folder("/d", 0o755)
        try file("/d/f", 0o640)
        try file("/d/gw", 0o660)
        try file("/d/suid", 0o6777)
        try file("/d/x", 0o4755)
        try folder("/d/sub", 0o755)
        try folder("/s", 0o1777, uid: 0, gid: 0)
        try file("/s/f", 0o644)
        try file("/s/new2", 0o644)
    }

    struct FSError: Error, CustomStringConvertible {
        var errno: Int32
        var what: String
        var description: String { "\(what): \(String(cString: strerror(errno)))" }
    }

    /// Runs every operation as `who`, each in its own fixture below `root`; the errno of each (0: success).
    static func run(as who: Who, in root: String) throws -> [Int32] {
        var script = "import os, sys, json\nuid = os.getuid()\nresults = []\n"
        for (i, op) in operations.enumerated() {
            let body = op.code.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n")
            script += "b = \(pythonString(root + "/\(i)-\(who.name)"))\ntry:\n\(body)\n    results.append(0)\n"
                + "except OSError as e:\n    results.append(e.errno)\n"
        }
        script += "print(json.dumps(results))\n"
        var arguments = ["--reuid=\(who.uid)", "--regid=\(who.gid)"]
        arguments += who.groups.isEmpty ? ["--clear-groups"] : ["--groups=" + who.groups.map(String.init).joined(separator: ",")]
        arguments += ["/usr/bin/python3", "-I", "-c", script]
        let r = try CapturedRun.run("/usr/bin/setpriv", arguments, environment: ["PATH": "/usr/bin:/bin", "LC_ALL": "C"])
        guard r.status == 0, let data = r.stdout.data(using: .utf8),
              let results = try JSONSerialization.jsonObject(with: data) as? [Int] else {
            throw FSError(errno: EIO, what: "python as \(who.name) failed (\(r.status)): \(r.stderr)")
        }
        return results.map(Int32.init)
    }

    static func pythonString(_ s: String) -> String {
        "'" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }

    /// errno per (operation, caller) on the folder `root` (fixtures made first, all of them).
    static func table(in root: String) throws -> [[Int32]] {
        if mkdir(root, 0o755) != 0 { throw FSError(errno: errno, what: "mkdir \(root)") }
        chmod(root, 0o755)
        for i in operations.indices {
            for who in callers { try makeFixture(root + "/\(i)-\(who.name)") }
        }
        let byCaller = try callers.map { try run(as: $0, in: root) }
        return operations.indices.map { i in byCaller.map { $0[i] } }
    }

    static func errnoName(_ e: Int32) -> String {
        switch e {
        case 0: return "ok"
        case EACCES: return "EACCES"
        case EPERM: return "EPERM"
        case ENOENT: return "ENOENT"
        case EEXIST: return "EEXIST"
        case 1000...1999: return "bad\(e)"
        default: return "errno\(e)"
        }
    }

    static func printTable(_ title: String, reference: [[Int32]], mounts: [(String, [[Int32]])]) {
        var out = "\n\(title)\noperation             caller | local    " + mounts.map { $0.0.padding(toLength: 10, withPad: " ", startingAt: 0) }.joined(separator: " ") + "\n"
        for (i, op) in operations.enumerated() {
            for (j, who) in callers.enumerated() {
                let name = op.name.padding(toLength: 22, withPad: " ", startingAt: 0) + who.name.padding(toLength: 6, withPad: " ", startingAt: 0)
                let cells = [reference[i][j]] + mounts.map { $0.1[i][j] }
                out += name + " | " + cells.map { errnoName($0).padding(toLength: 8, withPad: " ", startingAt: 0) }.joined(separator: " ")
                    + (cells.allSatisfy { $0 == cells[0] } ? "" : "  <-- differs") + "\n"
            }
        }
        print(out)
    }

    @Test func mountAgreesWithTheLocalDiskForEveryCaller() throws {
        guard MountedRoset.isAvailable, FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else {
            print("skipped: needs real mounts and /usr/bin/python3")
            return
        }
        let local = try TemporaryDirectory(prefix: "roset-perm-local")
        defer { local.remove() }
        chmod(local.path, 0o755)
        let reference = try Self.table(in: local.path + "/t")

        var results: [(String, [[Int32]])] = []
        for options in [["allow_other"], ["allow_other", "no_default_permissions"]] {
            try MountedRoset.with(options: options) { f in
                chmod(f.scratch.path, 0o755)
                let opts = Posix.mountOptions(MountProcess_resolved(f.mountpoint))
                #expect(opts.contains("default_permissions") == !options.contains("no_default_permissions"), "\(opts)")
                let table = try Self.table(in: f.path("t"))
                results.append((options.count == 1 ? "allow_oth" : "no_def_p", table))
            }
        }
        Self.printTable("errno per operation and caller (local disk = reference)", reference: reference, mounts: results)
        for (label, table) in results {
            for (i, op) in Self.operations.enumerated() {
                for (j, who) in Self.callers.enumerated() {
                    #expect(table[i][j] == reference[i][j],
                            "\(label): \(op.name) as \(who.name): \(Self.errnoName(table[i][j])), local disk \(Self.errnoName(reference[i][j]))")
                }
            }
        }
        // The table means something: group members and others meet both kinds of refusal and
        // some successes; root and the owner succeed in every row.
        for j in [2, 3] {
            #expect(reference.contains { $0[j] == EACCES } && reference.contains { $0[j] == EPERM }
                    && reference.contains { $0[j] == 0 }, "\(Self.callers[j].name)")
        }
        #expect(reference.allSatisfy { $0[0] == 0 && $0[1] == 0 })
    }

    /// The three commands of an admin's check, on a mount made as the man page's fstab line says.
    @Test func nobodyCannotReadAppendOrRemoveRootsPrivateFile() throws {
        try MountedRoset.with(options: ["_netdev", "nofail", "allow_other"]) { f in
            chmod(f.scratch.path, 0o755)
            let file = f.path("rootfile")
            #expect(Posix.write(file, Array("secret\n".utf8)) == .ok)
            #expect(Posix.chmod(file, 0o600) == .ok)
            let nobody: UInt32 = 65534
            for command in ["cat '\(file)'", "echo x >> '\(file)'", "rm '\(file)'"] {
                let (status, err) = Posix.runAs(uid: nobody, gid: nobody, command)
                #expect(status != 0 && err.contains("Permission denied"), "\(command): \(status) \(err)")
            }
            #expect(Posix.read(file).1 == Array("secret\n".utf8))
        }
    }
}
