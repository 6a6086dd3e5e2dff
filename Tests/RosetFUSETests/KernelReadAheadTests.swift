// The kernel read-ahead window of a mount: found through mountinfo, raised after INIT on a real
// mount (the INIT reply alone cannot raise it), left alone when not asked for.
import Foundation
@testable import RosetFUSE
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized)
struct KernelReadAheadTests {
    @Test func deviceNumberComesFromTheMountsLine() {
        let mountinfo = """
        22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
        97 22 0:53 / /tmp/with\\040space rw,nosuid,nodev - fuse.roset roset:a rw,user_id=0,group_id=0
        98 22 0:54 / /tmp/stacked rw - fuse.roset roset:b rw
        99 98 0:61 / /tmp/stacked rw - fuse.roset roset:c rw
        100 22 0:70 / /tmp/stacked/inner rw - fuse.roset roset:d rw
        """
        let mounts = MountTable.entries(in: mountinfo)
        #expect(KernelReadAhead.deviceNumber(of: "/tmp/with space", in: mounts) == "0:53")
        #expect(KernelReadAhead.deviceNumber(of: "/tmp/stacked", in: mounts) == "0:61")   // the top one
        #expect(KernelReadAhead.deviceNumber(of: "/", in: mounts) == "8:1")
        #expect(KernelReadAhead.deviceNumber(of: "/tmp", in: mounts) == nil)
        #expect(KernelReadAhead.deviceNumber(of: "/x", in: MountTable.entries(in: "1 2 bad / /x rw - fuse a rw")) == nil)
    }

    @Test func theWindowIsRaisedOnceTheMountIsUp() throws {
        guard geteuid() == 0 else {
            print("note: not root; sysfs read_ahead_kb cannot be written, test skipped")
            return
        }
        try withMount(FUSEMountOptions(fsName: "roset:test", readAheadKB: 3072)) { m in
            #expect(eventually { KernelReadAheadProbe.kilobytes(of: m.mountpoint) == 3072 },
                    "read_ahead_kb is \(KernelReadAheadProbe.kilobytes(of: m.mountpoint) ?? -1)")
            // The mount still serves files afterwards.
            #expect(FileManager.default.createFile(atPath: m.path("f"), contents: Data([7])))
            #expect(FileManager.default.contents(atPath: m.path("f")) == Data([7]))
        }
    }

    @Test func withoutTheOptionTheKernelDefaultStays() throws {
        try withMount { m in
            #expect(FileManager.default.fileExists(atPath: m.path(".")))
            usleep(200_000)
            #expect(KernelReadAheadProbe.kilobytes(of: m.mountpoint) == 128)
        }
    }
}
