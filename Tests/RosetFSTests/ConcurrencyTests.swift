// Many libfuse-like threads at once: no deadlock, no lost file, and a stuck request does not
// hold up unrelated operations.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import RosetFS
import RosetClient

@Suite struct ConcurrencyTests {
    @Test func parallelCreatesWritesRenamesAndUnlinksLoseNothing() throws {
        let h = try Harness { _, t in t.partSizeBytes = 2048 }
        let dirs = try (0..<4).map { try h.fs.mkdir(parent: rootInode, name: "d\($0)", mode: 0o755, context: h.ctx).attributes.inode }
        let failures = NSLock()
        var errors: [String] = []
        DispatchQueue.concurrentPerform(iterations: 16) { worker in
            let dir = dirs[worker % dirs.count]
            for i in 0..<10 {
                var step = "write"
                do {
                    let name = "w\(worker)-\(i)"
                    let content = pattern(500 + worker * 300 + i * 97, seed: UInt8(worker))
                    try h.writeFile(name + ".tmp", content, parent: dir)
                    step = "rename"
                    try h.fs.rename(parent: dir, name: name + ".tmp", newParent: dir, newName: name, flags: 0)
                    step = "lookup"
                    let inode = try h.fs.lookup(parent: dir, name: name).attributes.inode
                    step = "read"
                    let got = try h.readAll(inode)
                    if got != content { failures.withLock { errors.append("content of \(name): \(got.count) bytes, expected \(content.count), prefix match \(got.prefix(100) == content.prefix(100))") } }
                    step = "unlink"
                    if i % 3 == 0 { try h.fs.unlink(parent: dir, name: name) }
                    step = "list"
                    _ = try h.names(dir, plus: true)
                } catch {
                    failures.withLock { errors.append("\(worker)/\(i) \(step): \(error)") }
                }
            }
        }
        #expect(errors.isEmpty, "\(errors.prefix(5))")
        #expect(h.drain(timeout: 60))
        var total = 0
        for (n, _) in dirs.enumerated() {
            let folder = h.cloud.child("d\(n)")!
            let names = h.cloud.children(in: folder.id).map(\.name)
            #expect(!names.contains { $0.hasSuffix(".tmp") })
            total += names.count
        }
        #expect(total == 16 * 6)       // i = 1, 2, 4, 5, 7, 8 survive
        let sample = h.cloud.child("w5-7", in: h.cloud.child("d1")!.id)!
        #expect(h.cloud.content(of: sample.id) == pattern(500 + 5 * 300 + 7 * 97, seed: 5))
    }

    @Test func aStuckReadDoesNotHoldUpOtherFiles() throws {
        let h = try Harness()
        h.cloud.addFile("remote", content: pattern(1000))
        let remote = try h.fs.lookup(parent: rootInode, name: "remote").attributes.inode
        let open = try h.fs.open(inode: remote, flags: O_RDONLY, context: h.ctx)
        h.cloud.block("read")
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            _ = try? h.fs.read(inode: remote, handle: open.handle, offset: 0, size: 100)
            done.signal()
        }
        h.cloud.waitUntilBlocked("read")
        // Meanwhile: a pending file is written and read back (its upload held, so the read is
        // served from the spool, not by the blocked store), names are listed and looked up.
        h.cloud.block("initUpload")
        let local = try h.writeFile("local", bytes("spooled"))
        #expect(try h.readAll(local) == bytes("spooled"))
        #expect(try h.names().contains("remote"))
        _ = try h.fs.mkdir(parent: rootInode, name: "more", mode: 0o755, context: h.ctx)
        #expect(done.wait(timeout: .now()) == .timedOut)      // the stuck read is still stuck
        h.cloud.unblock("read")
        h.cloud.unblock("initUpload")
        done.wait()
        try h.fs.release(inode: remote, handle: open.handle)
    }

    @Test func repeatedSavesByRenameOverKeepOneNodeWithTheLastContent() throws {
        let h = try Harness { _, t in t.partSizeBytes = 1024 }
        let failures = NSLock()
        var errors: [String] = []
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for round in 0..<8 {
                var step = "write"
                do {
                    let content = pattern(300 + round * 400, seed: UInt8(worker * 8 + round))
                    try h.writeFile("doc\(worker).tmp", content)
                    step = "rename"
                    try h.fs.rename(parent: rootInode, name: "doc\(worker).tmp", newParent: rootInode, newName: "doc\(worker)", flags: 0)
                    if round % 3 == 2 {
                        step = "fsync"
                        let inode = try h.fs.lookup(parent: rootInode, name: "doc\(worker)").attributes.inode
                        let open = try h.fs.open(inode: inode, flags: O_RDONLY, context: h.ctx)
                        try h.fs.fsync(inode: inode, handle: open.handle, dataOnly: false)
                        try h.fs.release(inode: inode, handle: open.handle)
                    }
                } catch {
                    failures.withLock { errors.append("\(worker)/\(round) \(step): \(error)") }
                }
            }
        }
        #expect(errors.isEmpty, "\(errors.prefix(5))")
        #expect(h.drain(timeout: 60))
        let names = h.cloud.children().map(\.name)
        #expect(names.sorted() == (0..<8).map { "doc\($0)" }.sorted())
        for worker in 0..<8 {
            let node = h.cloud.child("doc\(worker)")!
            #expect(h.cloud.content(of: node.id) == pattern(300 + 7 * 400, seed: UInt8(worker * 8 + 7)))
            let inode = try h.fs.lookup(parent: rootInode, name: "doc\(worker)").attributes.inode
            #expect(try h.readAll(inode) == pattern(300 + 7 * 400, seed: UInt8(worker * 8 + 7)))
        }
    }
}
