// What the kernel says a mount's read-ahead window is, found through stat's st_dev rather than
// mountinfo (which the code under test reads), for tests of read_ahead_kb.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum KernelReadAheadProbe {
    /// /sys/class/bdi/MAJ:MIN/read_ahead_kb of the filesystem holding `path`; nil if unreadable.
    public static func kilobytes(of path: String) -> Int? {
        var st = Glibc.stat()
        guard fstatat(AT_FDCWD, path, &st, 0) == 0 else { return nil }
        // glibc's major()/minor() are macros Swift does not import.
        let dev = UInt64(st.st_dev)
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~UInt64(0xfff))
        let minor = (dev & 0xff) | ((dev >> 12) & ~UInt64(0xff))
        let file = "/sys/class/bdi/\(major):\(minor)/read_ahead_kb"
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return nil }
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
