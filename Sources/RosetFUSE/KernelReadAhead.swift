// The kernel's read-ahead window of one FUSE mount (/sys/class/bdi/MAJ:MIN/read_ahead_kb).
//
// Why it is set from outside: FUSE starts every mount at the VM default of 128 KiB, and the
// INIT reply's max_readahead can only lower that (the kernel takes the minimum). A buffered
// reader then gets FUSE_READ requests of 128 KiB, eight round trips per MiB, however large
// max_read is. Writing the bdi's read_ahead_kb raises the window, and the kernel then sends
// requests of up to max_read. Invariants: the write happens only after INIT has been processed
// (the INIT reply would clamp an earlier value back), and never touches the mount's files;
// without the right to write sysfs (a non-root mount, a read-only /sys) the kernel's default
// stays and the mount works as before.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging

enum KernelReadAhead {
    /// The "MAJ:MIN" of the mount at `mountpoint` among `mounts` (the last one if stacked).
    static func deviceNumber(of mountpoint: String, in mounts: [MountTable.Entry]) -> String? {
        guard let device = mounts.last(where: { $0.mountPoint == mountpoint })?.device else { return nil }
        let parts = device.split(separator: ":")
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isNumber) }) else { return nil }
        return device
    }

    /// The sysfs file holding the window of the mount at `mountpoint`, if it is mounted.
    static func controlFile(of mountpoint: String) -> String? {
        guard let device = deviceNumber(of: mountpoint, in: MountTable.entries()) else { return nil }
        return "/sys/class/bdi/\(device)/read_ahead_kb"
    }

    /// Sets the window to `kilobytes`. Call once the mount has answered a request (INIT is done).
    /// Returns whether the kernel took it; logs why not.
    @discardableResult
    static func apply(kilobytes: Int, mountpoint: String, logger: Logger) -> Bool {
        guard let file = controlFile(of: mountpoint) else {
            logger.info("kernel read-ahead left at its default: \(mountpoint) is not in /proc/self/mountinfo")
            return false
        }
        let fd = open(file, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            logger.info("kernel read-ahead left at its default: cannot open \(file): \(reason)")
            return false
        }
        defer { close(fd) }
        let text = Array("\(kilobytes)\n".utf8)
        guard write(fd, text, text.count) == text.count else {
            let reason = String(cString: strerror(errno))
            logger.warning("kernel read-ahead left at its default: writing \(kilobytes) to \(file) failed: \(reason)")
            return false
        }
        logger.debug("kernel read-ahead of \(mountpoint): \(kilobytes) KiB (\(file))")
        return true
    }
}
