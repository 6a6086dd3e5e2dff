// The Roset data model as RosetFS sees it, independent of which JSON dialect (docs/PROTOCOL.md
// §2) the server spoke. Decoding lives beside the HTTP client; these types
// carry no wire details. Sizes are bytes, times are whole seconds since the epoch (as the API).
import Foundation

public enum NodeType: String, Sendable, Codable, Hashable {
    case file
    case folder
}

/// Free-form JSON, used for node metadata (`metadata` in the API).
public enum JSONValue: Sendable, Hashable, Codable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let n): try c.encode(n)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
}

public struct Node: Sendable, Hashable {
    public var id: String
    public var parentId: String?
    public var mountId: String?
    public var name: String
    public var type: NodeType
    /// Bytes; folders and pending uploads report 0.
    public var size: Int64
    public var contentType: String?
    public var metadata: [String: JSONValue]
    public var createdAt: Date
    public var updatedAt: Date
    /// The current version's etag (platform `version.etag`), when the server sends one.
    public var etag: String?
    /// The current version's id (platform `version.id`), when the server sends one.
    public var versionId: String?
    /// Platform `commitStatus` (`active`, `committing`, `committed`).
    public var commitStatus: String?

    public init(id: String, parentId: String?, mountId: String? = nil, name: String, type: NodeType,
                size: Int64 = 0, contentType: String? = nil, metadata: [String: JSONValue] = [:],
                createdAt: Date = Date(), updatedAt: Date = Date(), etag: String? = nil,
                versionId: String? = nil, commitStatus: String? = nil) {
        self.id = id; self.parentId = parentId; self.mountId = mountId; self.name = name
        self.type = type; self.size = size; self.contentType = contentType; self.metadata = metadata
        self.createdAt = createdAt; self.updatedAt = updatedAt; self.etag = etag
        self.versionId = versionId; self.commitStatus = commitStatus
    }

    /// A sealed folder: its listing never changes, so it may be cached without expiry (docs/PROTOCOL.md §3.4).
    public var isCommitted: Bool {
        metadata["committed"] == .bool(true) || commitStatus == "committed"
    }
}

/// `GET /v1/nodes/{id}/download`: a signed URL for the node's current content.
public struct DownloadGrant: Sendable, Hashable {
    public var url: String
    /// Bounds reads on a handle opened with this grant (docs/PROTOCOL.md §3.5).
    public var size: Int64
    public var contentType: String?
    /// When the URL stops working, computed from `expiresIn` at receipt.
    public var expiresAt: Date

    public init(url: String, size: Int64, contentType: String? = nil, expiresAt: Date) {
        self.url = url; self.size = size; self.contentType = contentType; self.expiresAt = expiresAt
    }
}

/// `POST /v1/uploads/init` request. Either `parentId`+`name` (a new file) or `nodeId`
/// (a new version of an existing file).
public struct UploadRequest: Sendable, Hashable {
    public var parentId: String?
    public var name: String?
    public var nodeId: String?
    public var size: Int64
    public var multipart: Bool
    public var contentType: String?
    public var metadata: [String: JSONValue]?

    public init(parentId: String? = nil, name: String? = nil, nodeId: String? = nil, size: Int64,
                multipart: Bool, contentType: String? = nil, metadata: [String: JSONValue]? = nil) {
        self.parentId = parentId; self.name = name; self.nodeId = nodeId; self.size = size
        self.multipart = multipart; self.contentType = contentType; self.metadata = metadata
    }
}

/// `POST /v1/uploads/init` response.
public struct UploadGrant: Sendable, Hashable, Codable {
    public var uploadToken: String
    public var nodeId: String
    /// When the upload token stops working.
    public var expiresAt: Date
    /// Present for single-PUT uploads (`multipart: false`).
    public var uploadURL: String?

    public init(uploadToken: String, nodeId: String, expiresAt: Date, uploadURL: String? = nil) {
        self.uploadToken = uploadToken; self.nodeId = nodeId; self.expiresAt = expiresAt
        self.uploadURL = uploadURL
    }
}

/// One uploaded part, as `complete` wants it (ETag without quotes).
public struct UploadedPart: Sendable, Hashable, Codable {
    public var partNumber: Int
    public var etag: String

    public init(partNumber: Int, etag: String) { self.partNumber = partNumber; self.etag = etag }
}
