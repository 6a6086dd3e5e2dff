// Reads /proc/self/mountinfo: to tell whether a path is already a mount point (FUSE would happily
// mount over an existing mount, hiding it, which is never what an admin wants), and to find a
// mount's device number (its kernel read-ahead window is set through it).
import Foundation

enum MountTable {
    typealias Entry = (mountPoint: String, fsType: String, device: String)

    /// Mount points (field 5 of mountinfo, octal escapes decoded) with their fstype and "MAJ:MIN"
    /// (field 3), in mount order.
    static func entries() -> [Entry] {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return [] }
        return entries(in: text)
    }

    static func entries(in mountinfo: String) -> [Entry] {
        mountinfo.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count > 7, let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count else { return nil }
            return (decode(String(fields[4])), String(fields[dash + 1]), String(fields[2]))
        }
    }

    static func isMountPoint(_ path: String) -> Bool {
        entries().contains { $0.mountPoint == path }
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
