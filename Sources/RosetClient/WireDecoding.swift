// JSON bodies of both dialects (docs/PROTOCOL.md §2) to the model types. Invariants:
// unknown keys are ignored; tenant keys are never required; every failure is a thrown
// `WireDecodingError` (the client turns it into `RosetError(.decoding)` naming the endpoint),
// never a trap: no force unwraps or unchecked numeric conversions touch server data.
import Foundation

public struct WireDecodingError: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

public enum WireDecoding {
    /// Bodies larger than this are refused rather than parsed.
    static let maxBodyBytes = 256 << 20
    /// Deeper JSON is refused before parsing (protects recursive consumers from hostile input).
    static let maxDepth = 128

    // MARK: Parsing

    public static func parse(_ data: Data) throws -> Any {
        guard !data.isEmpty else { throw WireDecodingError("empty body") }
        guard data.count <= maxBodyBytes else { throw WireDecodingError("body too large (\(data.count) bytes)") }
        try checkDepth(data)
        do {
            return try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            throw WireDecodingError("invalid JSON")
        }
    }

    /// Rejects nesting deeper than `maxDepth` with a linear scan that skips string contents.
    static func checkDepth(_ data: Data) throws {
        var depth = 0
        var inString = false
        var escaped = false
        for byte in data {
            if inString {
                if escaped { escaped = false }
                else if byte == UInt8(ascii: "\\") { escaped = true }
                else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > maxDepth { throw WireDecodingError("JSON nested deeper than \(maxDepth)") }
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
    }

    // MARK: Scalars

    static func string(_ value: Any?) -> String? { value as? String }

    /// An integer from a JSON number (or a numeric string), nil if absent, null, fractional
    /// or out of Int64's range.
    static func int64(_ value: Any?) -> Int64? {
        switch value {
        case let n as NSNumber:
            if CFGetTypeIDIsBool(n) { return nil }
            let d = n.doubleValue
            guard d.isFinite, d == d.rounded(), d >= -9.2e18, d <= 9.2e18 else { return nil }
            // Exact for integers that fit; the guard above keeps the conversion in range.
            if let i = Int64(exactly: d) { return i }
            return n.int64Value
        case let s as String:
            return Int64(s)
        default:
            return nil
        }
    }

    private static func CFGetTypeIDIsBool(_ n: NSNumber) -> Bool {
        // On Linux JSONSerialization yields NSNumber for booleans too; tell them apart by type.
        let t = String(cString: n.objCType)
        return t == "c" || t == "B"
    }

    static func bool(_ value: Any?) -> Bool? {
        if let n = value as? NSNumber, CFGetTypeIDIsBool(n) { return n.boolValue }
        if let b = value as? Bool { return b }
        return nil
    }

    static func isNull(_ value: Any?) -> Bool { value == nil || value is NSNull }

    /// RFC 3339 (`2025-01-15T10:30:00Z`, `...00.123+02:00`), floored to whole seconds.
    public static func timestamp(_ value: Any?) -> Date? {
        if let seconds = int64(value) { return Date(timeIntervalSince1970: TimeInterval(seconds)) }
        guard let s = value as? String else { return nil }
        return RFC3339.parse(s)
    }

    // MARK: JSON values

    public static func jsonValue(_ value: Any?) -> JSONValue {
        switch value {
        case nil, is NSNull: return .null
        case let s as String: return .string(s)
        case let n as NSNumber:
            if CFGetTypeIDIsBool(n) { return .bool(n.boolValue) }
            return .number(n.doubleValue)
        case let a as [Any]: return .array(a.map { jsonValue($0) })
        case let o as [String: Any]: return .object(o.mapValues { jsonValue($0) })
        default: return .null
        }
    }

    public static func foundationValue(_ value: JSONValue) -> Any {
        switch value {
        case .null: return NSNull()
        case .bool(let b): return b
        case .number(let n):
            if n.isFinite, n == n.rounded(), abs(n) < 9e15 { return Int64(n) }
            return n.isFinite ? n : NSNull()
        case .string(let s): return s
        case .array(let a): return a.map { foundationValue($0) }
        case .object(let o): return o.mapValues { foundationValue($0) }
        }
    }

    // MARK: Node

    /// A bare node, or `{"node": N}`.
    public static func node(fromEnvelope value: Any) throws -> Node {
        guard let dict = value as? [String: Any] else { throw WireDecodingError("expected an object") }
        if let inner = dict["node"] as? [String: Any] { return try node(inner) }
        return try node(dict)
    }

    public static func node(_ value: Any?) throws -> Node {
        guard let n = value as? [String: Any] else { throw WireDecodingError("node is not an object") }
        guard let id = n["id"] as? String, !id.isEmpty else { throw WireDecodingError("node without a string id") }
        guard let typeName = n["type"] as? String else { throw WireDecodingError("node \(id) without a type") }
        guard let type = NodeType(rawValue: typeName) else {
            throw WireDecodingError("node \(id) has unknown type \"\(typeName.prefix(32))\"")
        }
        guard let name = n["name"] as? String else { throw WireDecodingError("node \(id) without a name") }
        var size: Int64 = 0
        if !isNull(n["size"]) {
            guard let s = int64(n["size"]), s >= 0 else { throw WireDecodingError("node \(id) has an invalid size") }
            size = s
        }
        var metadata: [String: JSONValue] = [:]
        if let m = n["metadata"] as? [String: Any] {
            metadata = m.mapValues { jsonValue($0) }
        } else if !isNull(n["metadata"]) {
            throw WireDecodingError("node \(id) has non-object metadata")
        }
        let epoch = Date(timeIntervalSince1970: 0)
        let created = timestamp(n["createdAt"]) ?? epoch
        let updated = timestamp(n["updatedAt"]) ?? created
        var etag: String? = nil
        var versionId: String? = nil
        if let version = n["version"] as? [String: Any] {
            etag = (version["etag"] as? String).map(stripQuotes)
            if let v = version["id"] as? String { versionId = v }
            else if let v = int64(version["id"]) { versionId = String(v) }
        }
        if etag == nil, let e = n["etag"] as? String { etag = stripQuotes(e) }
        return Node(id: id, parentId: n["parentId"] as? String, mountId: n["mountId"] as? String,
                    name: name, type: type, size: size, contentType: n["contentType"] as? String,
                    metadata: metadata, createdAt: created, updatedAt: updated, etag: etag,
                    versionId: versionId, commitStatus: n["commitStatus"] as? String)
    }

    public static func stripQuotes(_ s: String) -> String {
        var t = s.trimmingCharacters(in: .whitespaces)
        if t.hasPrefix("W/") { t.removeFirst(2) }
        if t.count >= 2, t.hasPrefix("\""), t.hasSuffix("\"") { t = String(t.dropFirst().dropLast()) }
        return t
    }

    // MARK: Endpoint envelopes

    /// `POST /v1/resolve` for one path: wrapped `{"nodes": {path: N|null}}` or flat `{path: N|null}`.
    public static func resolved(_ value: Any, path: String) throws -> Node? {
        guard let top = value as? [String: Any] else { throw WireDecodingError("expected an object") }
        let map: [String: Any]
        if let nodes = top["nodes"] as? [String: Any], isWrapped(top: top, nodes: nodes, path: path) {
            map = nodes
        } else {
            map = top
        }
        let entry: Any?
        if let exact = map[path] { entry = exact }
        else if map.count == 1, let only = map.first, lastComponent(only.key) == lastComponent(path) {
            entry = only.value  // the server echoed a normalised form of the path ("/a" for "a")
        } else { entry = nil }
        if isNull(entry) { return nil }
        return try node(entry)
    }

    private static func lastComponent(_ path: String) -> Substring {
        path.split(separator: "/", omittingEmptySubsequences: true).last ?? ""
    }

    private static func isWrapped(top: [String: Any], nodes: [String: Any], path: String) -> Bool {
        if path != "nodes" { return top[path] == nil || top.count == 1 }
        // Asked for a path literally named "nodes": flat if its value looks like a node.
        if nodes["id"] is String && nodes["type"] is String { return false }
        return true
    }

    /// One page of `GET /v1/nodes/{id}/children`.
    public struct ChildrenPage: Sendable {
        public var nodes: [Node]
        public var hasMore: Bool
        public var nextCursor: String?
    }

    public static func childrenPage(_ value: Any) throws -> ChildrenPage {
        if let array = value as? [Any] {
            return ChildrenPage(nodes: try array.map { try node($0) }, hasMore: false, nextCursor: nil)
        }
        guard let dict = value as? [String: Any] else { throw WireDecodingError("expected an object") }
        guard let list = (dict["children"] as? [Any]) ?? (dict["items"] as? [Any]) ?? (dict["nodes"] as? [Any]) else {
            throw WireDecodingError("no children or items array")
        }
        let nodes = try list.map { try node($0) }
        let cursor = (dict["nextCursor"] as? String).flatMap { $0.isEmpty ? nil : $0 }
        let hasMore = bool(dict["hasMore"]) ?? (cursor != nil)
        return ChildrenPage(nodes: nodes, hasMore: hasMore, nextCursor: hasMore ? cursor : nil)
    }

    /// `GET /v1/nodes/{id}/manifest`: an array of the immediate children, or the platform's map
    /// path → `{type, id, size}` (recursive; only the direct children of `folderId` are kept).
    public static func manifest(_ value: Any, folderId: String) throws -> [Node] {
        if let array = value as? [Any] { return try array.map { try node($0) } }
        guard var dict = value as? [String: Any] else { throw WireDecodingError("expected an array or object") }
        for key in ["nodes", "children", "items"] {
            if let array = dict[key] as? [Any] { return try array.map { try node($0) } }
        }
        if let inner = dict["manifest"] as? [String: Any] { dict = inner }
        var result: [Node] = []
        for (path, entry) in dict.sorted(by: { $0.key < $1.key }) {
            let components = path.split(separator: "/", omittingEmptySubsequences: true)
            guard components.count == 1, let name = components.first else { continue }
            guard let e = entry as? [String: Any] else { throw WireDecodingError("manifest entry \(path) is not an object") }
            if e["name"] is String, e["createdAt"] != nil, let full = try? node(e) { result.append(full); continue }
            guard let id = e["id"] as? String, let t = e["type"] as? String, let type = NodeType(rawValue: t) else {
                throw WireDecodingError("manifest entry \(path) without id or type")
            }
            let size = isNull(e["size"]) ? 0 : (int64(e["size"]) ?? -1)
            guard size >= 0 else { throw WireDecodingError("manifest entry \(path) has an invalid size") }
            result.append(Node(id: id, parentId: folderId, name: String(name), type: type, size: size,
                               createdAt: Date(timeIntervalSince1970: 0), updatedAt: Date(timeIntervalSince1970: 0)))
        }
        return result
    }

    /// `GET /v1/nodes/{id}/download`.
    public static func downloadGrant(_ value: Any, now: Date = Date()) throws -> DownloadGrant {
        guard let d = value as? [String: Any] else { throw WireDecodingError("expected an object") }
        guard let url = (d["url"] as? String) ?? (d["downloadUrl"] as? String), !url.isEmpty else {
            throw WireDecodingError("no url")
        }
        guard let size = int64(d["size"]), size >= 0 else { throw WireDecodingError("no valid size") }
        return DownloadGrant(url: url, size: size, contentType: d["contentType"] as? String,
                             expiresAt: expiry(d, now: now))
    }

    private static func expiry(_ d: [String: Any], now: Date) -> Date {
        if let seconds = int64(d["expiresIn"]), seconds >= 0 {
            return now.addingTimeInterval(TimeInterval(min(seconds, 10 * 365 * 86400)))
        }
        if let at = timestamp(d["expiresAt"]) { return at }
        return now.addingTimeInterval(900)  // unknown lifetime: assume the recommended minimum
    }

    /// `POST /v1/uploads/init`.
    public static func uploadGrant(_ value: Any, now: Date = Date()) throws -> UploadGrant {
        guard var d = value as? [String: Any] else { throw WireDecodingError("expected an object") }
        if d["uploadToken"] == nil, let inner = d["upload"] as? [String: Any] { d = inner }
        guard let token = d["uploadToken"] as? String, !token.isEmpty else { throw WireDecodingError("no uploadToken") }
        guard let nodeId = (d["nodeId"] as? String) ?? ((d["node"] as? [String: Any])?["id"] as? String) else {
            throw WireDecodingError("no nodeId")
        }
        let url = (d["uploadUrl"] as? String) ?? (d["url"] as? String)
        return UploadGrant(uploadToken: token, nodeId: nodeId, expiresAt: expiry(d, now: now), uploadURL: url)
    }

    /// `POST /v1/uploads/{token}/part`: `{"url"}` or `{"uploadUrl"}`.
    public static func partURL(_ value: Any) throws -> String {
        guard let d = value as? [String: Any] else { throw WireDecodingError("expected an object") }
        guard let url = (d["url"] as? String) ?? (d["uploadUrl"] as? String), !url.isEmpty else {
            throw WireDecodingError("no url or uploadUrl")
        }
        return url
    }
}

/// RFC 3339 timestamps without a formatter (formatters are slow and not thread-safe everywhere).
enum RFC3339 {
    static func parse(_ s: String) -> Date? {
        let b = Array(s.utf8)
        guard b.count >= 19, b.count <= 64 else { return nil }
        func num(_ from: Int, _ len: Int) -> Int? {
            guard from + len <= b.count else { return nil }
            var v = 0
            for i in from..<from + len {
                let c = b[i]
                guard c >= 48, c <= 57 else { return nil }
                v = v * 10 + Int(c - 48)
            }
            return v
        }
        guard let year = num(0, 4), b[4] == UInt8(ascii: "-"), let month = num(5, 2), b[7] == UInt8(ascii: "-"),
              let day = num(8, 2), b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t") || b[10] == UInt8(ascii: " "),
              let hour = num(11, 2), b[13] == UInt8(ascii: ":"), let minute = num(14, 2),
              b[16] == UInt8(ascii: ":"), let second = num(17, 2) else { return nil }
        guard (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second <= 60 else { return nil }
        var i = 19
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            let start = i
            while i < b.count, b[i] >= 48, b[i] <= 57 { i += 1 }
            guard i > start else { return nil }
        }
        var offsetSeconds = 0
        guard i < b.count else { return nil }
        switch b[i] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            i += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            guard let oh = num(i + 1, 2), i + 3 < b.count, b[i + 3] == UInt8(ascii: ":"), let om = num(i + 4, 2) else { return nil }
            offsetSeconds = (oh * 3600 + om * 60) * (b[i] == UInt8(ascii: "+") ? 1 : -1)
            i += 6
        default:
            return nil
        }
        guard i == b.count else { return nil }
        // Days since the epoch (proleptic Gregorian), Howard Hinnant's algorithm.
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146097 + doe - 719468
        let seconds = days * 86400 + hour * 3600 + minute * 60 + second - offsetSeconds
        return Date(timeIntervalSince1970: TimeInterval(seconds))
    }
}
