// Reads /proc/self/mountinfo: to tell whether a path is already a mount point (FUSE would happily
// mount over an existing mount, hiding it, which is never what an admin wants), and to find a
// mount's device number (its kernel read-ahead window is set through it).
// One exception to "already a mount": an automount point. systemd's x-systemd.automount (and
// automount(8)) put an `autofs` mount on the folder and run the mount helper on first access,
// expecting the real mount to stack on top of it (mount.roset(8), x-systemd.automount). The
// topmost mount on a path is its last line in mountinfo (lines are in mount order).
import Foundation

enum MountTable {
    typealias Entry = (mountPoint: String, fsType: String, device: String)

    /// What is on a mount point, as far as mounting there goes.
    enum Occupancy: Equatable {
        /// Nothing is mounted there.
        case free
        /// The topmost mount is an automount trigger (`autofs`): mounting on top is the point.
        case automountPoint
        /// Something else is mounted there (its fstype): mounting would hide it.
        case mounted(fsType: String)
    }

    static func occupancy(of path: String, in mountinfo: String) -> Occupancy {
        guard let top = entries(in: mountinfo).last(where: { $0.mountPoint == path }) else { return .free }
        return top.fsType == "autofs" ? .automountPoint : .mounted(fsType: top.fsType)
    }

    /// This process's mountinfo text ("" when unreadable: then nothing counts as mounted).
    static func currentText() -> String {
        (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
    }

    /// Mount points (field 5 of mountinfo, octal escapes decoded) with their fstype and "MAJ:MIN"
    /// (field 3), in mount order.
    static func entries() -> [Entry] {
        entries(in: currentText())
    }

    static func entries(in mountinfo: String) -> [Entry] {
        mountinfo.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count > 7, let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count else { return nil }
            return (decode(String(fields[4])), String(fields[dash + 1]), String(fields[2]))
        }
    }

    /// mountinfo escapes space, tab, newline and backslash as \ooo.
    static func decode(_ s: String) -> String {
        guard s.contains("\\") else { return s }
        var out = [UInt8]()
        let bytes = Array(s.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\\"), i + 3 < bytes.count,
               let v = UInt8(String(decoding: bytes[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                out.append(v); i += 4
            } else {
                out.append(bytes[i]); i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
