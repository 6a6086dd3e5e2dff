// Inode numbers ↔ node keys. A key is a node id, or "spool:<entryId>" for a new file that exists
// only in the spool until its upload creates the node. Invariants:
// - the root is inode 1 and never forgotten;
// - a key keeps its inode number while the kernel holds lookups on it; every EntryReply handed
//   to the kernel adds one lookup, `forget` removes them, and the mapping is dropped at zero,
//   never before;
// - rekeying (a spool file got its node id, or a rename made a file a new version of another
//   node) keeps the inode number; an inode displaced from its key stays valid until forgotten.
import Foundation

final class InodeTable: @unchecked Sendable {
    private struct Record {
        var key: String
        var lookups: UInt64
    }

    private let lock = NSLock()
    private var records: [UInt64: Record] = [:]
    private var byKey: [String: UInt64] = [:]
    private var next: UInt64 = 2

    init(rootKey: String) {
        records[rootInode] = Record(key: rootKey, lookups: 1)
        byKey[rootKey] = rootInode
    }

    static func spoolKey(_ entryId: String) -> String { "spool:" + entryId }
    static func isSpoolKey(_ key: String) -> Bool { key.hasPrefix("spool:") }

    /// The inode for `key`, counting one kernel lookup.
    func bind(_ key: String) -> UInt64 { lock.withLock { numberLocked(key, counting: 1) } }

    /// The inode for `key` without counting a lookup (plain readdir, `..`).
    func peek(_ key: String) -> UInt64 { lock.withLock { numberLocked(key, counting: 0) } }

    private func numberLocked(_ key: String, counting: UInt64) -> UInt64 {
        if let n = byKey[key] {
            records[n]!.lookups += counting
            return n
        }
        let n = next
        next += 1
        records[n] = Record(key: key, lookups: counting)
        byKey[key] = n
        return n
    }

    func key(of inode: UInt64) -> String? { lock.withLock { records[inode]?.key } }

    func lookups(of inode: UInt64) -> UInt64 { lock.withLock { records[inode]?.lookups ?? 0 } }

    func existingInode(for key: String) -> UInt64? { lock.withLock { byKey[key] } }

    var count: Int { lock.withLock { records.count } }

    func forget(_ inode: UInt64, lookups: UInt64) {
        guard inode != rootInode else { return }
        lock.withLock {
            guard var r = records[inode] else { return }
            r.lookups = r.lookups > lookups ? r.lookups - lookups : 0
            if r.lookups == 0 {
                records[inode] = nil
                if byKey[r.key] == inode { byKey[r.key] = nil }
            } else {
                records[inode] = r
            }
        }
    }

    /// Moves the inode of `old` (if any) to `new`; `new`'s previous inode, if another, is displaced.
    func rekey(from old: String, to new: String) {
        lock.withLock {
            guard let n = byKey[old] else { return }
            byKey[old] = nil
            records[n]?.key = new
            byKey[new] = n
        }
    }
}
