// The metadata cache stays bounded: past its sweep threshold a store drops what has expired, but
// keeps nodes the kernel still holds, committed (permanent) entries, and fresh listings whose
// children are all still there.
import Foundation
import RosetClient
import Testing
@testable import RosetFS

@Suite struct MetadataCacheTests {
    final class Clock: @unchecked Sendable {
        private let lock = NSLock()
        private var t = Date(timeIntervalSince1970: 1_000_000)
        var now: Date { lock.withLock { t } }
        func advance(_ seconds: Double) { lock.withLock { t += seconds } }
    }

    func node(_ i: Int, parent: String = "root") -> Node {
        Node(id: "n\(i)", parentId: parent, name: "f\(i)", type: .file)
    }

    @Test func expiredEntriesAreSweptOnceTheCacheIsLarge() {
        let clock = Clock()
        let held: Set<String> = ["n7"]
        let cache = MetadataCache(ttl: 10, now: { clock.now }, sweepAt: 100, isHeld: { held.contains($0) })
        for i in 0..<1000 { cache.store(node(i)) }
        cache.store(Node(id: "committed", parentId: "root", name: "c", type: .folder), permanent: true)
        for i in 0..<500 { cache.storeAbsent("root", name: "gone\(i)") }
        #expect(cache.entryCount > 1000, "nothing has expired yet, so nothing is swept")

        clock.advance(11)
        // Sweeps come at twice what stayed last time (amortized), so 2,000 more stores cross it.
        for i in 5000..<7000 { cache.store(node(i)) }
        #expect(cache.entryCount <= 2000 + 2, "left: \(cache.entryCount)")
        #expect(cache.node("n5000") != nil && cache.node("n6999") != nil)
        #expect(cache.lastKnownNode("n7") != nil, "a node the kernel holds keeps its last known state")
        #expect(cache.lastKnownNode("n8") == nil)
        #expect(cache.node("committed") != nil, "committed entries never expire")
        #expect(!cache.isKnownAbsent("root", name: "gone1"))
    }

    @Test func aFreshListingKeepsItsChildren() {
        let clock = Clock()
        let cache = MetadataCache(ttl: 10, now: { clock.now }, sweepAt: 50)
        for i in 0..<200 { cache.store(node(i, parent: "old")) }
        clock.advance(5)
        let children = (1000..<1100).map { node($0, parent: "dir") }
        cache.storeListing("dir", children: children, permanent: false, observed: cache.changeCount)
        clock.advance(6)   // the first 200 expired; the listing is 6 s old
        cache.store(node(9999))
        let listing = cache.listing("dir")
        #expect(listing?.count == 100)
        #expect(listing?.allSatisfy { cache.lastKnownNode($0.id) != nil } == true)
        #expect(cache.lastKnownNode("n3") == nil)
    }

    @Test func sweepsAreAmortized() {
        let clock = Clock()
        let cache = MetadataCache(ttl: 1000, now: { clock.now }, sweepAt: 100)
        // Nothing expires: the threshold doubles instead of sweeping on every store.
        for i in 0..<10_000 { cache.store(node(i)) }
        #expect(cache.entryCount == 10_000)
    }
}

/// Misses and listings are trusted for the negative TTL, nodes for the whole TTL; `forget`
/// makes everything about a folder be asked for again.
@Suite struct NegativeCacheTests {
    func child(_ i: Int) -> Node { Node(id: "n\(i)", parentId: "dir", name: "f\(i)", type: .file) }

    @Test func aMissAndAListingLastTheNegativeTTLANodeTheTTL() {
        let clock = MetadataCacheTests.Clock()
        let cache = MetadataCache(ttl: 300, negativeTTL: 5, now: { clock.now })
        cache.storeListing("dir", children: [child(1)], permanent: false, observed: cache.changeCount)
        cache.storeAbsent("dir", name: "later")
        #expect(cache.isKnownAbsent("dir", name: "later"))
        #expect(cache.childId("dir", name: "f2") == .some(nil), "a fresh listing answers a miss")
        #expect(cache.listing("dir")?.map { $0.name } == ["f1"])

        clock.advance(5.5)
        #expect(!cache.isKnownAbsent("dir", name: "later"), "a miss is asked again after negative_ttl")
        #expect(cache.childId("dir", name: "f2") == nil, "an older listing no longer answers a miss")
        #expect(cache.childId("dir", name: "f1") == .some("n1"), "it still names what it listed")
        #expect(cache.listing("dir") == nil, "readdir fetches a listing older than negative_ttl again")
        #expect(cache.node("n1") != nil, "nodes keep the whole cache_ttl")

        clock.advance(300)
        #expect(cache.childId("dir", name: "f1") == nil)
        #expect(cache.node("n1") == nil)
    }

    @Test func theNegativeTTLIsAtMostTheTTL() {
        let clock = MetadataCacheTests.Clock()
        let cache = MetadataCache(ttl: 1, negativeTTL: 5, now: { clock.now })
        cache.storeAbsent("dir", name: "x")
        clock.advance(1.5)
        #expect(!cache.isKnownAbsent("dir", name: "x"))
    }

    @Test func forgetDropsAFoldersListingChildrenAndMisses() {
        let clock = MetadataCacheTests.Clock()
        let held: Set<String> = ["n1", "dir"]
        let cache = MetadataCache(ttl: 300, negativeTTL: 300, now: { clock.now }, isHeld: { held.contains($0) })
        cache.store(Node(id: "dir", parentId: "root", name: "d", type: .folder))
        cache.storeListing("dir", children: [child(1), child(2)], permanent: true, observed: cache.changeCount)
        cache.storeAbsent("dir", name: "missing")
        cache.storeAbsent("other", name: "missing")
        #expect(Set(cache.forget("dir")) == ["f1", "f2"])
        #expect(cache.listing("dir") == nil && cache.childId("dir", name: "f1") == nil)
        #expect(cache.node("n1") == nil && cache.lastKnownNode("n1") != nil, "a held node is kept but expired")
        #expect(cache.lastKnownNode("n2") == nil)
        #expect(cache.node("dir") == nil && cache.lastKnownNode("dir") != nil)
        #expect(!cache.isKnownAbsent("dir", name: "missing"))
        #expect(cache.isKnownAbsent("other", name: "missing"))
    }
}
