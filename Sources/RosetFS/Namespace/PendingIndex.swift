// Which pending (spooled, not yet uploaded) file answers to a name, an inode key or an entry id,
// and what a spool key became once its upload got a node id.
//
// Invariants (all under `lock`, a leaf: callers may hold an entry's `cond` while calling in,
// never the other way round, and no method calls out while holding it):
// - A registered entry answers to its id, its spool key (`spool:<id>`), every key it was rekeyed
//   to, and exactly one location (parentId/name); `unregister` drops all of them at once.
// - At most one entry answers to a key: `register` hands back the entry already there instead.
// - A spool key's alias (the node id its upload became) outlives the entry, so an inode bound to
//   the spool key in a race with the upload's init still finds its file afterwards.
// - An open signature is remembered per inode until the kernel forgets the inode; an open whose
//   signature matches the last one may keep the kernel's page cache.
//
// Generic over the entry so the bookkeeping is tested without a spool; RosetFileSystem uses
// `PendingIndex<SpoolEntry>`.
import Foundation

final class PendingIndex<Entry: AnyObject>: @unchecked Sendable {
    private let lock = NSLock()
    private var byId: [String: Entry] = [:]
    private var byKey: [String: Entry] = [:]
    private var byLocation: [String: Entry] = [:]
    private var aliases: [String: String] = [:]
    private var signatures: [InodeNumber: String] = [:]

    init() {}

    private static func location(_ parentId: String, _ name: String) -> String { parentId + "/" + name }

    // MARK: entries

    /// The live entry answering to an inode key (spool key or node id).
    func entry(key: String) -> Entry? { lock.withLock { byKey[key] } }

    /// The live entry that sits at `name` in `parentId`.
    func entry(at parentId: String, _ name: String) -> Entry? {
        lock.withLock { byLocation[Self.location(parentId, name)] }
    }

    /// Every live entry, in no particular order.
    var entries: [Entry] { lock.withLock { Array(byId.values) } }

    /// Registers `entry` under its id, `key`, its spool key and its location unless another
    /// entry already answers to `key`; returns the one that answers (the winner).
    func register(_ entry: Entry, id: String, key: String, parentId: String, name: String) -> Entry {
        lock.withLock {
            if let existing = byKey[key] { return existing }
            byId[id] = entry
            byKey[key] = entry
            byKey[InodeTable.spoolKey(id)] = entry
            byLocation[Self.location(parentId, name)] = entry
            return entry
        }
    }

    /// Drops every key and the location of `entry`; with `nodeId`, its spool key now means that node.
    func unregister(_ entry: Entry, id: String, aliasTo nodeId: String? = nil) {
        lock.withLock {
            if let nodeId { aliases[InodeTable.spoolKey(id)] = nodeId }
            byId[id] = nil
            for (k, v) in byKey where v === entry { byKey[k] = nil }
            for (k, v) in byLocation where v === entry { byLocation[k] = nil }
        }
    }

    /// Moves `entry` to a new location (rename, or a target fixed up after a race); a known
    /// node id becomes one more key it answers to.
    func move(_ entry: Entry, toParent parentId: String, name: String, nodeId: String?) {
        lock.withLock {
            for (k, v) in byLocation where v === entry { byLocation[k] = nil }
            byLocation[Self.location(parentId, name)] = entry
            if let nodeId { byKey[nodeId] = entry }
        }
    }

    /// The entry's inode key changed from `oldKey` to `newKey`: a live entry answers to `newKey`
    /// too, and a spool key becomes an alias of `newKey` (live or not).
    func rekey(_ entry: Entry, from oldKey: String, to newKey: String, isLive: Bool = true) {
        lock.withLock {
            if isLive { byKey[newKey] = entry }
            if InodeTable.isSpoolKey(oldKey) { aliases[oldKey] = newKey }
        }
    }

    /// The node id a spool key's upload became, if it got one.
    func alias(of spoolKey: String) -> String? { lock.withLock { aliases[spoolKey] } }

    // MARK: open signatures

    /// Records `signature` as the inode's latest open; true when it equals the previous one
    /// (the content did not change between the two opens).
    func recordOpen(inode: InodeNumber, signature: String) -> Bool {
        lock.withLock {
            let same = signatures[inode] == signature
            signatures[inode] = signature
            return same
        }
    }

    /// The kernel forgot the inode: its next open starts without a previous signature.
    func forgetOpens(inode: InodeNumber) {
        lock.withLock { signatures[inode] = nil }
    }
}
