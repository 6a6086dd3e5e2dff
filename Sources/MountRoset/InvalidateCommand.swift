// `mount.roset invalidate PATH...`: reads the reserved extended attribute `user.roset.invalidate`
// of each path; the daemon serving it drops its cached node, listing and blocks for it and the
// kernel's attributes, pages and entries (see mount.roset(8)). Nothing is sent to the control
// plane. Exit status: 0 when every path was invalidated, 1 otherwise (each failure on stderr).
import Foundation
import RosetFUSE
#if canImport(Glibc)
import Glibc
#endif

enum InvalidateCommand {
    static func run(_ paths: [String]) -> Int32 {
        var status: Int32 = 0
        for path in paths {
            let err = MountInvalidation.request(path: path)
            if err == 0 { continue }
            let reason: String
            switch err {
            case ENODATA, ENOTSUP: reason = "not on a roset mount (or a mount.roset too old to invalidate)"
            default: reason = String(cString: strerror(err))
            }
            FileHandle.standardError.write(Data("mount.roset: invalidate \(path): \(reason)\n".utf8))
            status = 1
        }
        return status
    }
}
