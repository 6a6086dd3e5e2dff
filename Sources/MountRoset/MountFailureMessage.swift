// What mount(8) prints when a mount fails: the wording a user or admin reads, in one place.
// Each message names what was tried (the control plane's URL, the mount id, the mount point) and
// what to do next; none carries the API key.
import Foundation
import MountHelper
import RosetClient
import RosetFS
import RosetFUSE

enum MountFailureMessage {
    /// The control plane refused or could not be reached while mounting.
    static func startup(_ error: RosetError, config: MountConfiguration) -> String {
        let url = config.apiURL.absoluteString
        switch error.kind {
        case .unauthorized:
            return "the control plane at \(url) refused the API key (HTTP 401): check the key file or ROSET_API_KEY"
        case .forbidden:
            return "the API key is not allowed to use mount \(config.mountId ?? "default") at \(url) (HTTP 403)"
        case .notFound:
            return "mount \(config.mountId ?? "default") does not exist at \(url) (\(error.code ?? "HTTP 404"))"
        case .network:
            return "cannot reach the control plane at \(url): \(error.message)"
        default:
            return "the control plane at \(url) failed while mounting: \(error)"
        }
    }

    /// The mount point is unusable. A dead mount there is most often this program's own daemon
    /// after a crash (kill -9, OOM): its unsent files wait in the spool, and the admin about to
    /// unmount and mount again is told where to see them. The kernel answers a stat of a dead
    /// mount's root from its attribute cache (cache_ttl), so a dead roset mount can look alive
    /// (`alreadyMounted`); the mount registry names the spool of the daemon that mounted it, and
    /// the spool's lock says whether that daemon still runs.
    static func mountpoint(_ error: Error) -> String {
        guard let mountError = error as? FUSEMountError else { return "\(error)" }
        switch mountError {
        case .deadMount(let dir) where isRosetMount(dir),
             .alreadyMounted(let dir) where isRosetMount(dir) && registeredDaemonIsGone(dir):
            return "\(FUSEMountError.deadMount(dir)); `mount.roset status \(dir)` shows what its spool holds for the next mount"
        default:
            return "\(mountError)"
        }
    }

    private static func isRosetMount(_ dir: String) -> Bool {
        FUSESession.mountType(at: MountRegistry.canonical(dir)) == "fuse.roset"
    }

    /// Nobody holds the lock of the spool registered for `dir`: a killed daemon's descriptors close
    /// when it dies, while its pid stays taken until init reaps the zombie.
    private static func registeredDaemonIsGone(_ dir: String) -> Bool {
        guard let registered = MountRegistry.lookup(mountpoint: dir) else { return false }
        return SpoolReport.lockHolder(folder: registered.spoolFolder) == nil
    }
}
