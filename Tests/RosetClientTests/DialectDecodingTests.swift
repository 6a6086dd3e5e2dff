// Both JSON dialects (docs/PROTOCOL.md §2) decode to the same model; malformed bodies fail as
// `WireDecodingError`, never a trap.
import Foundation
import Testing
@testable import RosetClient

private func json(_ text: String) throws -> Any { try WireDecoding.parse(Data(text.utf8)) }

private let fuseNode = #"{"id":"n1","tenant_id":"t","mountId":"m","parentId":"p","name":"a.txt","type":"file","size":12,"contentType":"text/plain","metadata":{"xattr.user.k":"v","committed":true},"createdAt":"2025-12-30T10:00:00Z","updatedAt":"2025-12-30T10:05:00.123Z"}"#
private let platformNode = #"{"id":"n1","tenantId":"t","mountId":"m","parentId":"p","name":"a.txt","type":"file","size":12,"contentType":"text/plain","metadata":{"xattr.user.k":"v","committed":true},"createdAt":"2025-12-30T10:00:00+00:00","updatedAt":"2025-12-30T11:05:00+01:00","isImmutable":false,"commitStatus":"active","deletedAt":null,"version":{"id":7,"etag":"\"abc\"","sha256":"x"},"somethingNew":[1,2,3]}"#

@Suite struct DialectDecodingTests {
    @Test func nodeBothDialectsDecodeAlike() throws {
        let wrapped = try WireDecoding.node(fromEnvelope: json(#"{"node":\#(fuseNode)}"#))
        let bare = try WireDecoding.node(fromEnvelope: json(platformNode))
        for n in [wrapped, bare] {
            #expect(n.id == "n1" && n.parentId == "p" && n.mountId == "m" && n.name == "a.txt")
            #expect(n.type == .file && n.size == 12 && n.contentType == "text/plain")
            #expect(n.metadata["xattr.user.k"] == .string("v"))
            #expect(n.isCommitted)
            #expect(n.createdAt == Date(timeIntervalSince1970: 1_767_088_800))
            #expect(n.updatedAt == Date(timeIntervalSince1970: 1_767_089_100))
        }
        #expect(bare.etag == "abc" && bare.versionId == "7" && bare.commitStatus == "active")
        #expect(wrapped.etag == nil && wrapped.versionId == nil)
    }

    @Test func compatProfileBareNodePlusNodeCopy() throws {
        let n = try WireDecoding.node(fromEnvelope: json(#"{"id":"outer","name":"x","type":"folder","node":{"id":"inner","name":"x","type":"folder"}}"#))
        #expect(n.id == "inner")
    }

    @Test func optionalKeysMayBeMissingOrNull() throws {
        let n = try WireDecoding.node(json(#"{"id":"f","name":"d","type":"folder","size":null,"metadata":null,"parentId":null}"#))
        #expect(n.size == 0 && n.metadata.isEmpty && n.parentId == nil && n.mountId == nil)
        #expect(n.createdAt == Date(timeIntervalSince1970: 0))
    }

    @Test func timestampsWithAndWithoutFraction() {
        #expect(WireDecoding.timestamp("2025-01-15T10:30:00Z") == Date(timeIntervalSince1970: 1_736_937_000))
        #expect(WireDecoding.timestamp("2025-01-15T10:30:00.999999Z") == Date(timeIntervalSince1970: 1_736_937_000))
        #expect(WireDecoding.timestamp("2025-01-15T12:30:00+02:00") == Date(timeIntervalSince1970: 1_736_937_000))
        #expect(WireDecoding.timestamp("2025-01-15 10:30:00") == nil)
        #expect(WireDecoding.timestamp("not a date") == nil)
    }

    @Test(arguments: [
        #"{"id":"x","name":"n","type":"symlink"}"#,   // unknown type
        #"{"id":5,"name":"n","type":"file"}"#,        // id of the wrong type
        #"{"id":"x","type":"file"}"#,                 // no name
        #"{"id":"x","name":"n","type":"file","size":"big"}"#,
        #"{"id":"x","name":"n","type":"file","size":1e300}"#,
        #"{"id":"x","name":"n","type":"file","size":123456789012345678901234567890}"#,
        #"{"id":"x","name":"n","type":"file","size":18446744073709551615}"#,
        #"{"id":"x","name":"n","type":"file","size":-1}"#,
        #"{"id":"x","name":"n","type":"file","size":1.5}"#,
        #"{"id":"x","name":"n","type":"file","size":true}"#,
        #"{"id":"x","name":"n","type":"file","metadata":[1]}"#,
        #"[1,2]"#, #""just a string""#,
    ])
    func malformedNodesFail(_ text: String) throws {
        #expect(throws: WireDecodingError.self) { try WireDecoding.node(fromEnvelope: try json(text)) }
    }

    @Test func largeButValidSizesDecodeExactly() throws {
        let n = try WireDecoding.node(json(#"{"id":"x","name":"n","type":"file","size":9007199254740993}"#))
        #expect(n.size == 9_007_199_254_740_993 || n.size == 9_007_199_254_740_992)
        let m = try WireDecoding.node(json(#"{"id":"x","name":"n","type":"file","size":1099511627776}"#))
        #expect(m.size == 1 << 40)
    }

    @Test func invalidJSONAndHostileNestingFail() {
        #expect(throws: WireDecodingError.self) { try WireDecoding.parse(Data("{\"id\":".utf8)) }
        #expect(throws: WireDecodingError.self) { try WireDecoding.parse(Data()) }
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: WireDecodingError.self) { try WireDecoding.parse(Data(deep.utf8)) }
        // Brackets inside strings do not count as nesting.
        let quoted = #"{"s":"\#(String(repeating: "[", count: 1000))"}"#
        #expect((try? WireDecoding.parse(Data(quoted.utf8))) != nil)
    }

    @Test func resolveWrappedFlatAndNull() throws {
        let node = #"{"id":"r","name":"","type":"folder"}"#
        #expect(try WireDecoding.resolved(json(#"{"nodes":{"/":\#(node)}}"#), path: "/")?.id == "r")
        #expect(try WireDecoding.resolved(json(#"{"/":\#(node)}"#), path: "/")?.id == "r")
        #expect(try WireDecoding.resolved(json(#"{"nodes":{"a":null}}"#), path: "a") == nil)
        #expect(try WireDecoding.resolved(json(#"{"a":null}"#), path: "a") == nil)
        #expect(try WireDecoding.resolved(json(#"{"nodes":{}}"#), path: "a") == nil)
        #expect(try WireDecoding.resolved(json(#"{}"#), path: "a") == nil)
        // Wrapped with an extra key, and the server normalising the path it echoes.
        #expect(try WireDecoding.resolved(json(#"{"nodes":{"/a":\#(node)},"requestId":"q"}"#), path: "a")?.id == "r")
        #expect(try WireDecoding.resolved(json(#"{"/":\#(node)}"#), path: "")?.id == "r")
        // A different name is never taken for the one asked for.
        #expect(try WireDecoding.resolved(json(#"{"nodes":{"b":\#(node)}}"#), path: "a") == nil)
        #expect(try WireDecoding.resolved(json(#"{"b":\#(node)}"#), path: "a") == nil)
        // A path literally named "nodes", flat and wrapped.
        #expect(try WireDecoding.resolved(json(#"{"nodes":\#(node)}"#), path: "nodes")?.id == "r")
        #expect(try WireDecoding.resolved(json(#"{"nodes":{"nodes":\#(node)}}"#), path: "nodes")?.id == "r")
        #expect(try WireDecoding.resolved(json(#"{"nodes":null}"#), path: "nodes") == nil)
        #expect(throws: WireDecodingError.self) { try WireDecoding.resolved(json("[]"), path: "a") }
        #expect(throws: WireDecodingError.self) { try WireDecoding.resolved(json(#"{"nodes":{"a":{"id":"x"}}}"#), path: "a") }
    }

    @Test func childrenBothKeySets() throws {
        let a = #"{"id":"a","name":"a","type":"file"}"#
        let fuse = try WireDecoding.childrenPage(json(#"{"children":[\#(a)],"total":3,"hasMore":true}"#))
        #expect(fuse.nodes.map(\.id) == ["a"] && fuse.hasMore && fuse.nextCursor == nil)
        let platform = try WireDecoding.childrenPage(json(#"{"items":[\#(a),\#(a)],"total":2,"page":1,"pageSize":500,"hasMore":false,"nextCursor":null}"#))
        #expect(platform.nodes.count == 2 && !platform.hasMore)
        let cursor = try WireDecoding.childrenPage(json(#"{"items":[\#(a)],"nextCursor":"c2"}"#))
        #expect(cursor.hasMore && cursor.nextCursor == "c2")
        #expect(throws: WireDecodingError.self) { try WireDecoding.childrenPage(json(#"{"total":0}"#)) }
        #expect(throws: WireDecodingError.self) { try WireDecoding.childrenPage(json(#"{"children":{"a":1}}"#)) }
    }

    @Test func manifestArrayAndPathMap() throws {
        let array = try WireDecoding.manifest(json(#"[{"id":"a","name":"a","type":"file","size":3}]"#), folderId: "d")
        #expect(array.map(\.id) == ["a"])
        let map = try WireDecoding.manifest(json(#"{"/":{"type":"folder","id":"d"},"/x.csv":{"type":"file","id":"x","size":10},"/sub":{"type":"folder","id":"s"},"/sub/deep":{"type":"file","id":"z","size":1}}"#), folderId: "d")
        #expect(map.map(\.name) == ["sub", "x.csv"])
        #expect(map.first { $0.name == "x.csv" }?.size == 10 && map.allSatisfy { $0.parentId == "d" })
        #expect(throws: WireDecodingError.self) { try WireDecoding.manifest(json(#"{"/x":{"type":"file"}}"#), folderId: "d") }
    }

    @Test func downloadInitAndPartShapes() throws {
        let now = Date(timeIntervalSince1970: 1000)
        let g = try WireDecoding.downloadGrant(json(#"{"url":"http://s/o?sig=1","contentType":null,"size":42,"expiresIn":3600,"extra":1}"#), now: now)
        #expect(g.url == "http://s/o?sig=1" && g.size == 42 && g.expiresAt == Date(timeIntervalSince1970: 4600))
        #expect(throws: WireDecodingError.self) { try WireDecoding.downloadGrant(json(#"{"size":1}"#)) }
        #expect(throws: WireDecodingError.self) { try WireDecoding.downloadGrant(json(#"{"url":"u","size":-4}"#)) }

        let u = try WireDecoding.uploadGrant(json(#"{"uploadToken":"tok","nodeId":"n","expiresIn":60,"uploadUrl":"http://s/put"}"#), now: now)
        #expect(u.uploadToken == "tok" && u.nodeId == "n" && u.uploadURL == "http://s/put" && u.expiresAt == Date(timeIntervalSince1970: 1060))
        #expect(try WireDecoding.uploadGrant(json(#"{"uploadToken":"tok","nodeId":"n"}"#)).uploadURL == nil)
        #expect(throws: WireDecodingError.self) { try WireDecoding.uploadGrant(json(#"{"nodeId":"n"}"#)) }

        #expect(try WireDecoding.partURL(json(#"{"url":"a"}"#)) == "a")
        #expect(try WireDecoding.partURL(json(#"{"uploadUrl":"b"}"#)) == "b")
        #expect(try WireDecoding.partURL(json(#"{"url":"a","uploadUrl":"a"}"#)) == "a")
        #expect(throws: WireDecodingError.self) { try WireDecoding.partURL(json(#"{"href":"a"}"#)) }
    }

    @Test func contentRangeParsing() {
        #expect(TransferContext.parseContentRange("bytes 0-9/100")! == (0, 9))
        #expect(TransferContext.parseContentRange("bytes 5-5/*")! == (5, 5))
        #expect(TransferContext.parseContentRange("bytes */100") == nil)
        #expect(TransferContext.parseContentRange("bytes 9-3/100") == nil)
        #expect(TransferContext.parseContentRange(nil) == nil)
    }

    @Test func metadataRoundTripsThroughFoundation() throws {
        let meta: [String: JSONValue] = ["s": .string("v"), "n": .number(3), "f": .number(1.5), "b": .bool(true),
                                         "z": .null, "a": .array([.number(1)]), "o": .object(["k": .string("x")])]
        let data = try JSONSerialization.data(withJSONObject: meta.mapValues(WireDecoding.foundationValue))
        let back = try #require(WireDecoding.parse(data) as? [String: Any]).mapValues { WireDecoding.jsonValue($0) }
        #expect(back == meta)
    }
}
