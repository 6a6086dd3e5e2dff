// A mount point whose topmost mount is autofs (systemd's x-systemd.automount, automount(8)) is
// accepted and the FUSE mount stacks on it; any other mount there is refused. The decision is
// tested on mountinfo text in the format systemd's automount points have; the stacking itself
// with a real FUSE mount made over a folder that already is a mount (a tmpfs, which the test's
// mountinfo calls autofs because this kernel may have no autofs to mount).
import Foundation
import Logging
@testable import RosetFUSE
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// /proc/self/mountinfo lines of an x-systemd.automount point (`/mnt/roset` in fstab with
/// `x-systemd.automount`): systemd's autofs trigger (source `systemd-1`, `direct`, `pgrp=1`),
/// then the same folder after the first access mounted fuse.roset on top of it.
private let systemdAutomountPoint = """
    22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
    25 22 0:23 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
    48 22 0:41 / /mnt/roset rw,relatime shared:25 - autofs systemd-1 rw,fd=61,pgrp=1,timeout=0,minproto=5,maxproto=5,direct,pipe_ino=18913
    49 22 0:42 / /mnt/other\\040place rw,relatime shared:26 - autofs systemd-1 rw,fd=64,pgrp=1,timeout=600,minproto=5,maxproto=5,direct,pipe_ino=18921
    51 22 0:44 / /mnt/scratch rw,nosuid,nodev shared:28 - tmpfs tmpfs rw,size=1024k,inode64
    """
private let afterFirstAccess = systemdAutomountPoint + """

    130 48 0:58 / /mnt/roset rw,nosuid,nodev,relatime shared:70 - fuse.roset m1 rw,user_id=0,group_id=0,allow_other
    """

private func canonical(_ path: String) -> String {
    guard let p = realpath(path, nil) else { return path }
    defer { free(p) }
    return String(cString: p)
}

@Suite(.serialized)
struct AutomountPointTests {
    @Test func autofsOnTopIsAnAutomountPointAnythingElseIsMounted() {
        #expect(MountTable.occupancy(of: "/mnt/roset", in: systemdAutomountPoint) == .automountPoint)
        #expect(MountTable.occupancy(of: "/mnt/other place", in: systemdAutomountPoint) == .automountPoint)
        #expect(MountTable.occupancy(of: "/mnt/scratch", in: systemdAutomountPoint) == .mounted(fsType: "tmpfs"))
        #expect(MountTable.occupancy(of: "/mnt/free", in: systemdAutomountPoint) == .free)
        #expect(MountTable.occupancy(of: "/mnt", in: systemdAutomountPoint) == .free)
        // Once the automount fired, the roset mount is on top: a second mount there is refused.
        #expect(MountTable.occupancy(of: "/mnt/roset", in: afterFirstAccess) == .mounted(fsType: "fuse.roset"))
    }

    /// The mount point check gives the same verdict from the same text: the automount point
    /// passes, the tmpfs is "already mounted".
    @Test func theMountpointCheckFollowsTheVerdict() throws {
        let dir = try TemporaryDirectory(prefix: "roset-automount")
        defer { dir.remove() }
        let path = canonical(dir.path)
        let asAutofs = "48 22 0:41 / \(path) rw,relatime shared:25 - autofs systemd-1 rw,fd=61,pgrp=1,direct\n"
        let asTmpfs = "51 22 0:44 / \(path) rw shared:28 - tmpfs tmpfs rw\n"
        #expect(try FUSESession.checkedMountpoint(path, mountinfo: { asAutofs }) == path)
        #expect(throws: FUSEMountError.alreadyMounted(path)) {
            try FUSESession.checkedMountpoint(path, mountinfo: { asTmpfs })
        }
        #expect(throws: FUSEMountError.alreadyMounted(path)) {
            try FUSESession.checkedMountpoint(path, mountinfo: { asAutofs + "130 48 0:58 / \(path) rw - fuse.roset m1 rw\n" })
        }
    }

    /// A real FUSE mount stacked on a folder that is already a mount: it serves, it hides the
    /// mount below while it lasts, and stopping it leaves the mount below as it was.
    @Test func fuseMountStacksOnAMountAndLeavesItWhenStopped() throws {
        guard geteuid() == 0, FileManager.default.fileExists(atPath: "/dev/fuse") else {
            print("skipped fuseMountStacksOnAMountAndLeavesItWhenStopped: needs root and /dev/fuse")
            return
        }
        let dir = try TemporaryDirectory(prefix: "roset-stack")
        defer { dir.remove() }
        let mnt = canonical(dir.path) + "/mnt"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        try #require(Glibc.mount("roset-test-below", mnt, "tmpfs", 0, "size=1m") == 0, "tmpfs: \(errno)")
        defer { _ = umount2(mnt, Int32(MNT_DETACH)) }
        try #require(FileManager.default.createFile(atPath: mnt + "/below", contents: Data([1])))

        let fs = InMemoryFileSystem()
        let session = FUSESession(fileSystem: fs, mountpoint: mnt, options: FUSEMountOptions(fsName: "roset:stacked"),
                                  shutdownGrace: 1, logger: Logger(label: "test.fuse"))
        // The real table says tmpfs: refused, as mount.roset refuses it.
        #expect(throws: FUSEMountError.alreadyMounted(mnt)) { try session.mount() }
        // The same table with the tmpfs standing in for an autofs trigger: mounted on top.
        let real = MountTable.currentText()
        try session.mount(mountinfo: {
            real.split(separator: "\n").map { line in
                line.contains(" \(mnt) ") ? line.replacingOccurrences(of: " - tmpfs ", with: " - autofs ") : String(line)
            }.joined(separator: "\n")
        })
        let finished = DispatchSemaphore(value: 0)
        Thread { _ = session.run(); finished.signal() }.start()

        #expect(MountProcess.fsType(of: mnt) == "fuse.roset")
        #expect(!FileManager.default.fileExists(atPath: mnt + "/below"), "the mount below shows through")
        #expect(FileManager.default.createFile(atPath: mnt + "/above", contents: Data([2])))
        #expect(FileManager.default.contents(atPath: mnt + "/above") == Data([2]))

        Thread { session.stop(grace: 1) }.start()
        if finished.wait(timeout: .now() + 20) != .success { _ = umount2(mnt, Int32(MNT_DETACH)) }
        #expect(MountProcess.fsType(of: mnt) == "tmpfs", "the mount below did not come back on top")
        #expect(FileManager.default.contents(atPath: mnt + "/below") == Data([1]))
        #expect(!FileManager.default.fileExists(atPath: mnt + "/above"))
    }
}
