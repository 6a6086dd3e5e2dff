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
