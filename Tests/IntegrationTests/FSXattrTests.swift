// Extended attributes through a real mount: user.* stored as `xattr.user.*` node metadata,
// binary-safe, with the flags, sizes and limits and errnos of setxattr(2)/getxattr(2).
import Foundation
import RosetClient
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized, .timeLimit(.minutes(10)))
struct FSXattrTests {
    @Test func userAttributesAreNodeMetadata() throws {
        try MountedRoset.with { f in
            #expect(Posix.write(f.path("f"), [1]) == .ok)
            #expect(f.eventually { (try? f.remoteContent("f")) == [1] && f.spoolEntryFiles().isEmpty })
            #expect(Posix.mkdir(f.path("d")) == .ok)
            let text = Array("hello wörld".utf8)
            #expect(Posix.setxattr(f.path("f"), "user.text", text) == .ok)
            #expect(Posix.setxattr(f.path("d"), "user.on-folder", Array("yes".utf8)) == .ok)
            #expect(Posix.getxattr(f.path("f"), "user.text").1 == text)
            #expect(Posix.getxattr(f.path("d"), "user.on-folder").1 == Array("yes".utf8))
            #expect(f.remoteMetadataIfAny("f", "xattr.user.text") == .string("hello wörld"))
            #expect(f.remoteMetadataIfAny("d", "xattr.user.on-folder") == .string("yes"))

            // Binary values round-trip (stored encoded with a marker).
            let binary: [UInt8] = [0xff, 0x00, 0xfe, 0x80, 0x41, 0x00, 0xc3]
            #expect(Posix.setxattr(f.path("f"), "user.bin", binary) == .ok)
            #expect(Posix.getxattr(f.path("f"), "user.bin").1 == binary)
            let stored = try f.remoteMetadata("f", "xattr.user.bin")?.stringValue ?? ""
            #expect(stored.hasPrefix("base64:"), "\(stored)")
            // A text value that looks like the marker is binary-safe too.
            let tricky = Array("base64:AAAA".utf8)
            #expect(Posix.setxattr(f.path("f"), "user.tricky", tricky) == .ok)
            #expect(Posix.getxattr(f.path("f"), "user.tricky").1 == tricky)
            // Empty value.
            #expect(Posix.setxattr(f.path("f"), "user.empty", []) == .ok)
            let (erc, empty, elen) = Posix.getxattr(f.path("f"), "user.empty")
            #expect(erc == .ok && empty.isEmpty && elen == 0)

            let (lrc, names) = Posix.listxattr(f.path("f"))
            #expect(lrc == .ok)
            #expect(Set(names) == ["user.text", "user.bin", "user.tricky", "user.empty"])

            #expect(Posix.removexattr(f.path("f"), "user.text") == .ok)
            #expect(Posix.getxattr(f.path("f"), "user.text").0 == .failed(ENODATA))
            #expect(f.remoteMetadataIfAny("f", "xattr.user.text") == nil)
            #expect(Posix.removexattr(f.path("f"), "user.text") == .failed(ENODATA))
            #expect(!Posix.listxattr(f.path("f")).1.contains("user.text"))

            // Kept across a remount (it is server state).
            f.unmount()
            try f.mountAgain()
            #expect(Posix.getxattr(f.path("f"), "user.bin").1 == binary)
            #expect(Posix.getxattr(f.path("d"), "user.on-folder").1 == Array("yes".utf8))
        }
    }

    @Test func xattrOnAPendingFileReachesTheServer() throws {
        try MountedRoset.with { f in
            #expect(Posix.write(f.path("p"), [9, 9]) == .ok)
            #expect(Posix.setxattr(f.path("p"), "user.k", Array("v".utf8)) == .ok)
            #expect(Posix.getxattr(f.path("p"), "user.k").1 == Array("v".utf8))
            #expect(f.eventually { (try? f.remoteContent("p")) == [9, 9] && f.spoolEntryFiles().isEmpty })
            #expect(f.remoteMetadataIfAny("p", "xattr.user.k") == .string("v"))
        }
    }

    @Test func flagsSizesLimitsAndNamespaces() throws {
        try MountedRoset.with { f in
            #expect(Posix.write(f.path("f"), [1]) == .ok)
            let p = f.path("f")
            #expect(Posix.setxattr(p, "user.a", Array("12345".utf8), flags: 1 /* XATTR_CREATE */) == .ok)
            #expect(Posix.setxattr(p, "user.a", Array("x".utf8), flags: 1) == .failed(EEXIST))
            #expect(Posix.setxattr(p, "user.b", Array("x".utf8), flags: 2 /* XATTR_REPLACE */) == .failed(ENODATA))
            #expect(Posix.setxattr(p, "user.a", Array("678".utf8), flags: 2) == .ok)
            #expect(Posix.getxattr(p, "user.a").1 == Array("678".utf8))

            let (qrc, _, length) = Posix.getxattr(p, "user.a", size: 0)
            #expect(qrc == .ok && length == 3)
            #expect(Posix.getxattr(p, "user.a", size: 2).0 == .failed(ERANGE))
            #expect(Posix.getxattr(p, "user.missing").0 == .failed(ENODATA))

            // Over the kernel's 64 KiB cap: E2BIG. A binary 64 KiB value cannot fit the server's
            // 64 KB of metadata once encoded: E2BIG too, not EIO. Large text values fit one at a
            // time; a second that does not fit beside the first finds no space.
            #expect(Posix.setxattr(p, "user.huge", [UInt8](repeating: 65, count: 65_537)) == .failed(E2BIG))
            #expect(Posix.setxattr(p, "user.binary64k", PatternBytes.make(count: 65_536, seed: 5)) == .failed(E2BIG))
            let big = [UInt8](repeating: UInt8(ascii: "b"), count: 40_000)
            #expect(Posix.setxattr(p, "user.big", big) == .ok)
            let bigBack = Posix.getxattr(p, "user.big", size: 70_000).1 == big
            #expect(bigBack)
            #expect(Posix.setxattr(p, "user.big2", big) == .failed(ENOSPC))
            #expect(Posix.getxattr(p, "user.big2").0 == .failed(ENODATA))

            let longName = "user." + String(repeating: "n", count: 251)
            #expect(Posix.setxattr(p, longName, [1]) == .failed(ERANGE))
            #expect(Posix.getxattr(p, longName).0 == .failed(ERANGE))

            #expect(Posix.setxattr(p, "trusted.x", [1]) == .failed(ENOTSUP))
            #expect(Posix.getxattr(p, "trusted.x").0 == .failed(ENOTSUP))
            #expect(Posix.setxattr(p, "security.x", [1]) == .failed(ENOTSUP))
            #expect(Posix.getxattr(p, "system.posix_acl_access").0 == .failed(ENOTSUP))

            // listxattr size query.
            let (lrc, names) = Posix.listxattr(p)
            #expect(lrc == .ok && Set(names) == ["user.a", "user.big"])
        }
    }
}
