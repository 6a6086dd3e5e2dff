// user.* xattrs as `xattr.<name>` metadata: flags, limits, namespaces, binary values, removal.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import RosetFS
import RosetClient

@Suite struct XattrTests {
    @Test func setGetListRemove() throws {
        let h = try Harness()
        let node = h.cloud.addFile("f")
        let inode = try h.fs.lookup(parent: rootInode, name: "f").attributes.inode
        try h.fs.setxattr(inode: inode, name: "user.owner", value: bytes("alice"), flags: 0)
        #expect(h.cloud.nodes[node.id]?.metadata["xattr.user.owner"] == .string("alice"))
        #expect(try h.fs.getxattr(inode: inode, name: "user.owner") == bytes("alice"))
        #expect(try h.fs.listxattr(inode: inode) == ["user.owner"])
        try h.fs.removexattr(inode: inode, name: "user.owner")
        #expect(h.cloud.nodes[node.id]?.metadata["xattr.user.owner"] == nil)
        #expect(h.errno { _ = try h.fs.getxattr(inode: inode, name: "user.owner") } == ENODATA)
        #expect(try h.fs.listxattr(inode: inode) == [])
        #expect(h.errno { try h.fs.removexattr(inode: inode, name: "user.owner") } == ENODATA)
    }

    @Test func createAndReplaceFlags() throws {
        let h = try Harness()
        h.cloud.addFile("f")
        let inode = try h.fs.lookup(parent: rootInode, name: "f").attributes.inode
        #expect(h.errno { try h.fs.setxattr(inode: inode, name: "user.a", value: [1], flags: 2) } == ENODATA)
        try h.fs.setxattr(inode: inode, name: "user.a", value: [1], flags: 1)
        #expect(h.errno { try h.fs.setxattr(inode: inode, name: "user.a", value: [2], flags: 1) } == EEXIST)
        try h.fs.setxattr(inode: inode, name: "user.a", value: [3], flags: 2)
        #expect(try h.fs.getxattr(inode: inode, name: "user.a") == [3])
    }

    @Test func limitsAndNamespaces() throws {
        let h = try Harness()
        h.cloud.addFile("f")
        let inode = try h.fs.lookup(parent: rootInode, name: "f").attributes.inode
        #expect(h.errno { try h.fs.setxattr(inode: inode, name: "user." + String(repeating: "n", count: 251), value: [], flags: 0) } == ERANGE)
        #expect(h.errno { try h.fs.setxattr(inode: inode, name: "user.big", value: [UInt8](repeating: 1, count: 65537), flags: 0) } == E2BIG)
        // The server keeps at most 64 KB of metadata per node: a 64 KiB value cannot fit it.
        #expect(h.errno { try h.fs.setxattr(inode: inode, name: "user.max", value: [UInt8](repeating: 65, count: 65536), flags: 0) } == E2BIG)
        try h.fs.setxattr(inode: inode, name: "user.large", value: [UInt8](repeating: 65, count: 60_000), flags: 0)
        for name in ["security.selinux", "trusted.x", "system.posix_acl_access"] {
            #expect(h.errno { try h.fs.setxattr(inode: inode, name: name, value: [1], flags: 0) } == ENOTSUP)
            #expect(h.errno { _ = try h.fs.getxattr(inode: inode, name: name) } == ENOTSUP)
        }
    }

    @Test func binaryValuesRoundTrip() throws {
        let h = try Harness()
        let node = h.cloud.addFile("f")
        let inode = try h.fs.lookup(parent: rootInode, name: "f").attributes.inode
        let binary: [UInt8] = [0, 0xff, 0xfe, 0x80, 10, 0]
        try h.fs.setxattr(inode: inode, name: "user.bin", value: binary, flags: 0)
        let stored = h.cloud.nodes[node.id]!.metadata["xattr.user.bin"]!.stringValue!
        #expect(stored.hasPrefix("base64:"))
        let tricky = bytes("base64:AAAA")
        try h.fs.setxattr(inode: inode, name: "user.tricky", value: tricky, flags: 0)
        try h.fs.setxattr(inode: inode, name: "user.empty", value: [], flags: 0)
        h.clock.advance(1000)   // read back from the server, not the cache
        #expect(try h.fs.getxattr(inode: inode, name: "user.bin") == binary)
        #expect(try h.fs.getxattr(inode: inode, name: "user.tricky") == tricky)
        #expect(try h.fs.getxattr(inode: inode, name: "user.empty") == [])
        #expect(XattrCodec.decode(XattrCodec.encode(bytes("plain"))) == bytes("plain"))
        #expect(XattrCodec.encode(bytes("plain")) == .string("plain"))
    }

    @Test func xattrsOnAPendingFileTravelWithTheUpload() throws {
        let h = try Harness()
        h.cloud.block("initUpload")
        let inode = try h.writeFile("p", bytes("x"))
        try h.fs.setxattr(inode: inode, name: "user.tag", value: bytes("v"), flags: 0)
        #expect(try h.fs.getxattr(inode: inode, name: "user.tag") == bytes("v"))
        h.cloud.unblock("initUpload")
        #expect(h.drain())
        #expect(h.cloud.child("p")?.metadata["xattr.user.tag"] == .string("v"))
        #expect(try h.fs.getxattr(inode: inode, name: "user.tag") == bytes("v"))
    }
}
