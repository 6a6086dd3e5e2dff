// PendingIndex keeps one answer per key and location: a registered entry is found by its id's
// spool key, its node id and its location until it is unregistered; a spool key's alias outlives
// the entry; open signatures tell a repeated open of unchanged content.
import Foundation
import Testing
@testable import RosetFS

@Suite struct PendingIndexTests {
    final class Entry: @unchecked Sendable {
        let id: String
        init(_ id: String) { self.id = id }
    }

    @Test func aRegisteredEntryAnswersToItsKeysAndLocation() {
        let index = PendingIndex<Entry>()
        let a = Entry("a")
        #expect(index.register(a, id: "a", key: "node-1", parentId: "root", name: "x") === a)
        #expect(index.entry(key: "node-1") === a)
        #expect(index.entry(key: InodeTable.spoolKey("a")) === a, "the spool key answers too")
        #expect(index.entry(at: "root", "x") === a)
        #expect(index.entry(at: "root", "y") == nil)
        #expect(index.entry(at: "other", "x") == nil)
        #expect(index.entries.count == 1)
    }

    @Test func aSecondEntryForATakenKeyLosesToTheFirst() {
        let index = PendingIndex<Entry>()
        let a = Entry("a"), b = Entry("b")
        _ = index.register(a, id: "a", key: "node-1", parentId: "root", name: "x")
        #expect(index.register(b, id: "b", key: "node-1", parentId: "root", name: "x") === a)
        #expect(index.entries.count == 1, "the loser is not indexed at all")
        #expect(index.entry(key: InodeTable.spoolKey("b")) == nil)
    }

    @Test func unregisterDropsEveryKeyAndLeavesOthersAlone() {
        let index = PendingIndex<Entry>()
        let a = Entry("a"), b = Entry("b")
        _ = index.register(a, id: "a", key: InodeTable.spoolKey("a"), parentId: "root", name: "x")
        _ = index.register(b, id: "b", key: "node-2", parentId: "root", name: "y")
        index.rekey(a, from: InodeTable.spoolKey("a"), to: "node-1")
        index.unregister(a, id: "a")
        #expect(index.entry(key: "node-1") == nil)
        #expect(index.entry(key: InodeTable.spoolKey("a")) == nil)
        #expect(index.entry(at: "root", "x") == nil)
        #expect(index.entry(key: "node-2") === b)
        #expect(index.entry(at: "root", "y") === b)
        #expect(index.entries.map(\.id) == ["b"])
    }

    @Test func aSpoolKeyAliasOutlivesItsEntry() {
        let index = PendingIndex<Entry>()
        let a = Entry("a")
        let spoolKey = InodeTable.spoolKey("a")
        _ = index.register(a, id: "a", key: spoolKey, parentId: "root", name: "x")
        #expect(index.alias(of: spoolKey) == nil)
        index.unregister(a, id: "a", aliasTo: "node-9")
        #expect(index.alias(of: spoolKey) == "node-9")
        #expect(index.entry(key: spoolKey) == nil)
    }

    @Test func rekeyAddsTheNewKeyOnlyForALiveEntryButAlwaysRecordsTheAlias() {
        let index = PendingIndex<Entry>()
        let a = Entry("a"), b = Entry("b")
        _ = index.register(a, id: "a", key: InodeTable.spoolKey("a"), parentId: "root", name: "x")
        _ = index.register(b, id: "b", key: InodeTable.spoolKey("b"), parentId: "root", name: "y")
        index.rekey(a, from: InodeTable.spoolKey("a"), to: "node-1")
        index.rekey(b, from: InodeTable.spoolKey("b"), to: "node-2", isLive: false)
        #expect(index.entry(key: "node-1") === a)
        #expect(index.entry(key: InodeTable.spoolKey("a")) === a, "the old key still answers while live")
        #expect(index.entry(key: "node-2") == nil)
        #expect(index.alias(of: InodeTable.spoolKey("a")) == "node-1")
        #expect(index.alias(of: InodeTable.spoolKey("b")) == "node-2")
        // A node id rekeyed to another node id is not a spool key: no alias.
        index.rekey(a, from: "node-1", to: "node-3")
        #expect(index.alias(of: "node-1") == nil)
    }

    @Test func moveLeavesTheOldLocationAndKeepsOneLocation() {
        let index = PendingIndex<Entry>()
        let a = Entry("a")
        _ = index.register(a, id: "a", key: InodeTable.spoolKey("a"), parentId: "root", name: "x")
        index.move(a, toParent: "dir", name: "z", nodeId: nil)
        #expect(index.entry(at: "root", "x") == nil)
        #expect(index.entry(at: "dir", "z") === a)
        index.move(a, toParent: "dir", name: "w", nodeId: "node-5")
        #expect(index.entry(at: "dir", "z") == nil)
        #expect(index.entry(at: "dir", "w") === a)
        #expect(index.entry(key: "node-5") === a, "a known node id becomes a key")
        index.unregister(a, id: "a")
        #expect(index.entry(at: "dir", "w") == nil && index.entry(key: "node-5") == nil)
    }

    @Test func locationsDoNotCollideAcrossFolders() {
        let index = PendingIndex<Entry>()
        let a = Entry("a"), b = Entry("b")
        _ = index.register(a, id: "a", key: InodeTable.spoolKey("a"), parentId: "p", name: "q")
        _ = index.register(b, id: "b", key: InodeTable.spoolKey("b"), parentId: "q", name: "p")
        #expect(index.entry(at: "p", "q") === a)
        #expect(index.entry(at: "q", "p") === b)
    }

    @Test func anOpenKeepsTheCacheOnlyWhenTheSignatureRepeats() {
        let index = PendingIndex<Entry>()
        #expect(!index.recordOpen(inode: 7, signature: "v1"), "the first open has nothing to compare with")
        #expect(index.recordOpen(inode: 7, signature: "v1"))
        #expect(!index.recordOpen(inode: 7, signature: "v2"), "the content changed")
        #expect(!index.recordOpen(inode: 8, signature: "v2"), "signatures are per inode")
        index.forgetOpens(inode: 7)
        #expect(!index.recordOpen(inode: 7, signature: "v2"), "a forgotten inode starts afresh")
    }

    @Test func concurrentRegistrationsOfOneKeyHaveOneWinner() async {
        let index = PendingIndex<Entry>()
        let winners = await withTaskGroup(of: ObjectIdentifier.self) { group in
            for i in 0..<32 {
                group.addTask {
                    let e = Entry("e\(i)")
                    return ObjectIdentifier(index.register(e, id: e.id, key: "node-1", parentId: "root", name: "x"))
                }
            }
            var seen = Set<ObjectIdentifier>()
            for await w in group { seen.insert(w) }
            return seen
        }
        #expect(winners.count == 1)
        #expect(index.entries.count == 1)
    }
}
