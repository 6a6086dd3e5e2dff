// The daemon's metadata cache: nodes by id, folder listings, and not-found answers. A node is
// trusted for the mount's TTL (cache_ttl); an absence (a not-found answer, or a name missing
// from a listing) and a listing's view of which names exist only for the shorter negative TTL
// (negative_ttl), so a name another machine created shows within it (docs/SEMANTICS.md). A
// committed folder's listing (and its children) never expires. Invariants:
// - nothing here does I/O; callers fetch outside any lock and store the result;
// - every change this mount makes is patched in at once (insertChild/removeChild/store), so a
//   cached listing never shows a stale view of our own changes (the original client listed a folder from a stale cache after its own create);
// - a stored node clears the negative entry of its (parent, name);
// - it does not grow without bound: once it holds more than `sweepAt` entries, the next store
//   drops every expired one (nodes the kernel still holds an inode for are kept, for
//   `lastKnownNode`), and the next sweep comes at twice what stayed. So it holds about what was
//   fetched within one TTL, not everything ever listed (a `find` over a million-file data set);
// - a listing's children were stored no earlier than the listing, so a fresh listing's nodes
//   are never swept.
import Foundation
import RosetClient

final class MetadataCache: @unchecked Sendable {
    private struct CachedNode { var node: Node; var fetchedAt: Date; var permanent: Bool }
    private struct Listing { var ids: [String: String]; var order: [String]; var fetchedAt: Date; var permanent: Bool }

    private let lock = NSLock()
    private var nodes: [String: CachedNode] = [:]
    private var listings: [String: Listing] = [:]
    private var negatives: [String: Date] = [:]
    /// Grows with every store/patch: a listing fetched while it changed may be stale and is
    /// used for that one answer but not cached.
    private var changes: UInt64 = 0
    private let ttl: Double
    /// How long an absence, and a listing as a whole, is trusted (at most `ttl`).
    private let negativeTTL: Double
    private let now: @Sendable () -> Date
    /// Whether the kernel still holds an inode for a node id (called under this cache's lock).
    private let isHeld: @Sendable (String) -> Bool
    private let minimumSweepAt: Int
    private var sweepAt: Int

    init(ttl: Double, negativeTTL: Double? = nil, now: @escaping @Sendable () -> Date, sweepAt: Int = 50_000,
         isHeld: @escaping @Sendable (String) -> Bool = { _ in false }) {
        self.ttl = ttl
        self.negativeTTL = min(ttl, negativeTTL ?? ttl)
        self.now = now
        self.isHeld = isHeld
        minimumSweepAt = sweepAt
        self.sweepAt = sweepAt
    }

    /// Nodes, listings and not-found answers held now, fresh or not.
    var entryCount: Int { lock.withLock { nodes.count + listings.count + negatives.count } }

    /// Drops expired entries once there are more than `sweepAt` (see the invariants).
    private func sweepIfLarge() {
        guard nodes.count + listings.count + negatives.count > sweepAt else { return }
        let t = now()
        func expired(_ at: Date) -> Bool { t.timeIntervalSince(at) >= ttl }
        nodes = nodes.filter { $0.value.permanent || !expired($0.value.fetchedAt) || isHeld($0.key) }
        listings = listings.filter { $0.value.permanent || !expired($0.value.fetchedAt) }
        negatives = negatives.filter { t.timeIntervalSince($0.value) < negativeTTL }
        sweepAt = max(minimumSweepAt, 2 * (nodes.count + listings.count + negatives.count))
    }

    private func fresh(_ at: Date, permanent: Bool) -> Bool {
        permanent || now().timeIntervalSince(at) < ttl
    }

    private func freshAbsence(_ at: Date, permanent: Bool) -> Bool {
        permanent || now().timeIntervalSince(at) < negativeTTL
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

    /// Seconds since a node was fetched (or patched), and whether it never expires (a
    /// committed folder's child); nil when it is not cached.
    func age(ofNode id: String) -> (seconds: Double, permanent: Bool)? {
        lock.withLock { nodes[id].map { (now().timeIntervalSince($0.fetchedAt), $0.permanent) } }
    }

    func store(_ node: Node, permanent: Bool = false) {
        lock.withLock { storeLocked(node, permanent: permanent) }
    }

    private func storeLocked(_ node: Node, permanent: Bool) {
        changes &+= 1
        sweepIfLarge()
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
            changes &+= 1
            nodes[id] = nil
            listings[id] = nil
        }
    }

    // MARK: listings

    /// The children (name, id) of a folder whose listing is younger than the negative TTL (it
    /// answers which names exist), in server order.
    func listing(_ folderId: String) -> [(name: String, id: String)]? {
        lock.withLock {
            guard let l = listings[folderId], freshAbsence(l.fetchedAt, permanent: l.permanent) else { return nil }
            return l.order.compactMap { name in l.ids[name].map { (name, $0) } }
        }
    }

    /// The id of `name` in a listing: .some(id) while the listing is within the TTL, .some(nil)
    /// (absent) only while it is within the negative TTL; nil = ask the control plane.
    func childId(_ folderId: String, name: String) -> String?? {
        lock.withLock {
            guard let l = listings[folderId], fresh(l.fetchedAt, permanent: l.permanent) else { return nil }
            if let id = l.ids[name] { return .some(id) }
            return freshAbsence(l.fetchedAt, permanent: l.permanent) ? .some(nil) : nil
        }
    }

    var changeCount: UInt64 { lock.withLock { changes } }

    /// Caches a listing fetched when `changeCount` was `observed`, unless something changed since.
    func storeListing(_ folderId: String, children: [Node], permanent: Bool, observed: UInt64) {
        lock.withLock {
            guard changes == observed else { return }
            sweepIfLarge()
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
            changes &+= 1
            if var l = listings[folderId], l.ids[name] != nil {
                l.ids[name] = nil
                l.order.removeAll { $0 == name }
                listings[folderId] = l
            }
            negatives[Self.negativeKey(folderId, name)] = now()
            sweepIfLarge()
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
            if freshAbsence(at, permanent: false) { return true }
            negatives[Self.negativeKey(parentId, name)] = nil
            return false
        }
    }

    func storeAbsent(_ parentId: String, name: String) {
        lock.withLock {
            negatives[Self.negativeKey(parentId, name)] = now()
            sweepIfLarge()
        }
    }

    func clearAbsent(_ parentId: String, name: String) {
        lock.withLock { negatives[Self.negativeKey(parentId, name)] = nil }
    }

    // MARK: invalidation

    /// Forgets what is cached about a node (`mount.roset invalidate`): the node itself and, for
    /// a folder, its listing, its children's nodes and the absences recorded in it. Committed
    /// folders too: the admin asked. The next use fetches everything again.
    /// Returns the names its listing held (whose kernel entries the caller drops too).
    func forget(_ id: String) -> [String] {
        lock.withLock {
            changes &+= 1
            var childNames: [String] = []
            if let l = listings[id] {
                childNames = l.order
                for childId in l.ids.values { forgetNodeLocked(childId) }
            }
            listings[id] = nil
            let prefix = id + "\u{0}"
            negatives = negatives.filter { !$0.key.hasPrefix(prefix) }
            forgetNodeLocked(id)
            return childNames
        }
    }

    /// A node the kernel still holds stays as the last known one (for `..` and attributes while
    /// a refresh fails) but expired; any other is dropped.
    private func forgetNodeLocked(_ id: String) {
        if isHeld(id) {
            nodes[id]?.fetchedAt = .distantPast
            nodes[id]?.permanent = false
        } else {
            nodes[id] = nil
        }
    }
}
