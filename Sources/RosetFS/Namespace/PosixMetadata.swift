// POSIX attributes kept in node metadata: `posix.mode`, `posix.uid`, `posix.gid` (numbers),
// `posix.mtime`, `posix.atime` ("seconds.nanoseconds" strings, so nanoseconds survive JSON's
// doubles), for symlinks `posix.type: "symlink"` + `posix.symlink: target`, and for special
// files (empty nodes) `posix.type: "fifo" | "socket" | "char" | "block"` + `posix.rdev`. Invariant: a key
// that is absent falls back to the mount's defaults (uid=, gid=, umask=, file_mode=, dir_mode=)
// and the node's own times.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import RosetClient

enum PosixMetadata {
    static let mode = "posix.mode"
    static let uid = "posix.uid"
    static let gid = "posix.gid"
    static let mtime = "posix.mtime"
    static let atime = "posix.atime"
    static let type = "posix.type"
    static let symlinkTarget = "posix.symlink"
    static let rdev = "posix.rdev"

    /// `posix.type` of the special files, by their S_IFMT type.
    static let specialTypes: [(name: String, format: UInt32)] = [
        ("fifo", UInt32(S_IFIFO)), ("socket", UInt32(S_IFSOCK)), ("char", UInt32(S_IFCHR)), ("block", UInt32(S_IFBLK)),
    ]

    /// S_IFIFO, S_IFSOCK, S_IFCHR or S_IFBLK for a special file's metadata, else nil.
    static func specialFormat(_ metadata: [String: JSONValue]) -> UInt32? {
        guard case .string(let name)? = metadata[type] else { return nil }
        return specialTypes.first { $0.name == name }?.format
    }

    static func specialTypeName(format: UInt32) -> String? {
        specialTypes.first { $0.format == format }?.name
    }

    /// The device number, kept as a string: a 64-bit dev_t does not survive JSON's doubles.
    static func deviceNumber(_ metadata: [String: JSONValue]) -> UInt64 {
        switch metadata[rdev] {
        case .string(let s)?: return UInt64(s) ?? 0
        case .number(let n)? where n >= 0: return UInt64(n)
        default: return 0
        }
    }

    static func number(_ value: JSONValue?) -> UInt32? {
        switch value {
        case .number(let n) where n >= 0 && n <= Double(UInt32.max): return UInt32(n)
        case .string(let s): return UInt32(s)
        default: return nil
        }
    }

    static func time(_ value: JSONValue?) -> timespec? {
        switch value {
        case .number(let n): return timespec(tv_sec: Int(n.rounded(.down)), tv_nsec: Int((n - n.rounded(.down)) * 1e9))
        case .string(let s):
            let parts = s.split(separator: ".", maxSplits: 1)
            guard let sec = Int(parts.first ?? "") else { return nil }
            var nsec = 0
            if parts.count == 2 {
                let digits = String(parts[1].prefix(9)).padding(toLength: 9, withPad: "0", startingAt: 0)
                nsec = Int(digits) ?? 0
            }
            return timespec(tv_sec: sec, tv_nsec: nsec)
        default: return nil
        }
    }

    static func encode(_ t: timespec) -> JSONValue {
        .string("\(t.tv_sec).\(String(format: "%09d", t.tv_nsec))")
    }

    static func isSymlink(_ metadata: [String: JSONValue]) -> Bool {
        metadata[type] == .string("symlink")
    }
}

func timespecOf(_ date: Date) -> timespec {
    let t = date.timeIntervalSince1970
    let sec = t.rounded(.down)
    return timespec(tv_sec: Int(sec), tv_nsec: min(999_999_999, Int((t - sec) * 1e9)))
}

func timespecOf(_ change: TimeChange, now: Date) -> timespec {
    switch change {
    case .now: return timespecOf(now)
    case .set(let s, let ns): return timespec(tv_sec: s, tv_nsec: ns)
    }
}
