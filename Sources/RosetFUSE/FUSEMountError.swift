// Why a mount could not be made, in words an admin can act on (mount(8) prints them as they are).
#if canImport(Glibc)
import Glibc
#endif

public enum FUSEMountError: Error, Sendable, Equatable, CustomStringConvertible {
    case mountpointMissing(String)
    case mountpointNotAFolder(String)
    case alreadyMounted(String)
    /// A FUSE mount whose daemon is gone (whatever reaches it fails with ENOTCONN, "Transport
    /// endpoint is not connected"): it must be unmounted before anything can be mounted there.
    case deadMount(String)
    case permissionDenied(String, detail: String)
    case optionsRefused(String)
    case mountFailed(String, detail: String)

    public var description: String {
        switch self {
        case .mountpointMissing(let p): return "mount point \(p) does not exist"
        case .mountpointNotAFolder(let p): return "mount point \(p) is not a folder"
        case .alreadyMounted(let p): return "mount point \(p) is already mounted (unmount it first: umount \(p))"
        case .deadMount(let p): return "mount point \(p) is still mounted, but its daemon is gone (unmount it first: umount \(p))"
        case .permissionDenied(let p, let d):
            return "permission denied mounting on \(p)" + (d.isEmpty ? "" : ": \(d)")
        case .optionsRefused(let d): return "libfuse refused the mount options" + (d.isEmpty ? "" : ": \(d)")
        case .mountFailed(let p, let d): return "could not mount on \(p)" + (d.isEmpty ? "" : ": \(d)")
        }
    }
}
