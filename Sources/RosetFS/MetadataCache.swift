// The daemon's metadata cache: nodes by id, folder listings, and not-found answers, each with
// the mount's TTL; a committed folder's listing (and its children) never expires. Invariants:
// - nothing here does I/O; callers fetch outside any lock and store the result;
// - every change this mount makes is patched in at once (insertChild/removeChild/store), so a
//   cached listing never shows a stale view of our own changes (original bug §6.10 item 9);
// - a stored node clears the negative entry of its (parent, name).
import Foundation
import RosetClient

final class MetadataCache: @unchecked Sendable {
    private struct CachedNode { var node: Node; var fetchedAt: Date; var permanent: Bool }
    private struct Listing { var ids: [String: String]; var order: [String]; var fetchedAt: Date; var permanent: Bool }

    private let lock = NSLock()
    private var nodes: [String: CachedNode] = [:]
    private var listings: [String: Listing] = [:]
    private var negatives: [String: Date] = [:]
    private let ttl: Double
    private let now: @Sendable () -> Date

    init(ttl: Double, now: @escaping @Sendable () -> Date) {
        self.ttl = ttl
        self.now = now
    }

    private func fresh(_ at: Date, permanent: Bool) -> Bool {
        permanent || now().timeIntervalSince(at) < ttl
    }

    private static func negativeKey(_ parentId: String, _ name: String) -> String { parentId + "\u{0}" + name }

    // MARK: nodes

    /// A node fetched less than a TTL ago.
    func node(_ id: String) -> Node? {
        lock.withLock {
            guard let c = nodes[id], fresh(c.fetchedAt, permanent: c.permanent) else { return nil }
            return c.node
        }
    }

    /// The last known node, fresh or not (for attributes while a refresh fails, and for `..`).
    func lastKnownNode(_ id: String) -> Node? { lock.withLock { nodes[id]?.node } }

    func store(_ node: Node, permanent: Bool = false) {
        lock.withLock { storeLocked(node, permanent: permanent) }
    }

    private func storeLocked(_ node: Node, permanent: Bool) {
        let keep = permanent || (nodes[node.id]?.permanent ?? false) && nodes[node.id]?.node == node
        nodes[node.id] = CachedNode(node: node, fetchedAt: now(), permanent: keep)
        if let parent = node.parentId {
            negatives[Self.negativeKey(parent, node.name)] = nil
            if var listing = listings[parent] {
                if listing.ids[node.name] == nil { listing.order.append(node.name) }
                // A node renamed inside the same folder leaves its old name.
                if let old = listing.ids.first(where: { $0.value == node.id && $0.key != node.name })?.key {
                    listing.ids[old] = nil
                    listing.order.removeAll { $0 == old }
                }
                listing.ids[node.name] = node.id
                listings[parent] = listing
            }
        }
    }

    func removeNode(_ id: String) {
        lock.withLock {
            nodes[id] = nil
            listings[id] = nil
        }
    }

    // MARK: listings

    /// The children (name, id) of a folder whose listing is fresh, in server order.
    func listing(_ folderId: String) -> [(name: String, id: String)]? {
        lock.withLock {
            guard let l = listings[folderId], fresh(l.fetchedAt, permanent: l.permanent) else { return nil }
            return l.order.compactMap { name in l.ids[name].map { (name, $0) } }
        }
    }

    /// The id of `name` in a fresh listing: .some(nil) = the listing says absent.
    func childId(_ folderId: String, name: String) -> String?? {
        lock.withLock {
            guard let l = listings[folderId], fresh(l.fetchedAt, permanent: l.permanent) else { return nil }
            return .some(l.ids[name])
        }
    }

    func storeListing(_ folderId: String, children: [Node], permanent: Bool) {
        lock.withLock {
            var ids: [String: String] = [:]
            var order: [String] = []
            for child in children where ids[child.name] == nil {
                ids[child.name] = child.id
                order.append(child.name)
                let keep = permanent
                nodes[child.id] = CachedNode(node: child, fetchedAt: now(), permanent: keep)
            }
            listings[folderId] = Listing(ids: ids, order: order, fetchedAt: now(), permanent: permanent)
        }
    }

    /// `name` left `folderId` (unlink, rmdir, rename away): patched out and remembered as absent.
    func removeChild(_ folderId: String, name: String) {
        lock.withLock {
            if var l = listings[folderId], l.ids[name] != nil {
                l.ids[name] = nil
                l.order.removeAll { $0 == name }
                listings[folderId] = l
            }
            negatives[Self.negativeKey(folderId, name)] = now()
        }
    }

    /// Forgets a folder's listing (e.g. after an error that leaves its state unknown).
    func invalidateListing(_ folderId: String) {
        lock.withLock { listings[folderId] = nil }
    }

    // MARK: negative entries

    func isKnownAbsent(_ parentId: String, name: String) -> Bool {
        lock.withLock {
            guard let at = negatives[Self.negativeKey(parentId, name)] else { return false }
            if fresh(at, permanent: false) { return true }
            negatives[Self.negativeKey(parentId, name)] = nil
            return false
        }
    }

    func storeAbsent(_ parentId: String, name: String) {
        lock.withLock { negatives[Self.negativeKey(parentId, name)] = now() }
    }

    func clearAbsent(_ parentId: String, name: String) {
        lock.withLock { negatives[Self.negativeKey(parentId, name)] = nil }
    }
}
