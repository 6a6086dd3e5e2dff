// One journal record of the spool (format described in Spool.swift). Invariant: a record is
// self-checking: its file is the JSON body, a newline, and `sha256 <hex of the body>`, so a torn
// or truncated record is detected and never mistaken for a valid one.
import Foundation
import RosetClient

enum SpoolEntryState: String, Codable, Sendable {
    /// Still being written; the data is not fsynced. Recovered under a visible new name.
    case open
    /// Closed: the data file is fsynced and its checksum recorded. Uploaded as is.
    case sealed
    /// An upload session exists (`upload`); finished parts are listed.
    case uploading
    /// The control plane confirmed the upload; the entry only waits to be deleted.
    case complete
}

/// Where the entry's content goes.
struct SpoolTarget: Codable, Hashable, Sendable {
    var parentId: String
    var name: String
    /// Set: the upload is a new version of this node (an existing file, or the node our own
    /// init created). Nil: a new file (parentId, name).
    var nodeId: String?
    /// The node was created by this entry's init (not a pre-existing file).
    var createdByUpload: Bool = false
    /// The remote version the content was based on (conflict detection at recovery).
    var baseEtag: String?
    var baseVersionId: String?
    var baseSize: Int64?
}

struct UploadProgress: Codable, Hashable, Sendable {
    var token: String
    /// Seconds since the epoch.
    var expiresAt: Double
    var multipart: Bool
    var partSize: Int64
    var parts: [UploadedPart]
}

struct JournalRecord: Codable, Hashable, Sendable {
    /// 2: the data file's checksum is `crc32c`. 1 kept `sha256` instead; such records are still
    /// read, and verified by it.
    static let currentFormat = 2

    var format: Int = JournalRecord.currentFormat
    var entryId: String
    /// Grows with every record written for the entry; the highest valid one wins.
    var sequence: Int
    var state: SpoolEntryState
    var target: SpoolTarget
    var size: Int64
    /// CRC32C (8 hex digits) of the data file; set from `sealed` on (format 2).
    var crc32c: String?
    /// Hex sha256 of the data file, which format-1 records kept instead of `crc32c`.
    var sha256: String?
    /// Metadata for the node the upload creates (posix.*, xattr.*).
    var metadata: [String: JSONValue]?
    var upload: UploadProgress?
    /// Seconds since the epoch.
    var createdAt: Double
    var updatedAt: Double
    /// Local modification time of the content (seconds since the epoch).
    var modifiedAt: Double
    /// The data file holds content written through the mount (set at the first write or
    /// truncate). An `open` new version without it was never changed and is not recovered.
    var hasContent: Bool? = nil

    enum DecodeError: Error, CustomStringConvertible {
        case torn(String)
        case unsupportedFormat(Int)
        var description: String {
            switch self {
            case .torn(let why): return "torn journal record: \(why)"
            case .unsupportedFormat(let v): return "journal record format \(v) is newer than this program (\(JournalRecord.currentFormat))"
            }
        }
    }

    func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let body = Array(try encoder.encode(self))
        return body + Array("\nsha256 \(SHA256Hasher.hex(of: body))\n".utf8)
    }

    static func decode(_ bytes: [UInt8]) throws -> JournalRecord {
        guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) else { throw DecodeError.torn("no checksum line") }
        let body = Array(bytes[..<newline])
        let trailer = String(decoding: bytes[(newline + 1)...], as: UTF8.self)
        guard trailer.hasSuffix("\n"), trailer.hasPrefix("sha256 ") else { throw DecodeError.torn("checksum line incomplete") }
        let sum = trailer.dropFirst("sha256 ".count).dropLast()
        guard sum == SHA256Hasher.hex(of: body) else { throw DecodeError.torn("checksum mismatch") }
        let record: JournalRecord
        do { record = try JSONDecoder().decode(JournalRecord.self, from: Data(body)) }
        catch { throw DecodeError.torn("body does not decode: \(error)") }
        guard record.format <= currentFormat else { throw DecodeError.unsupportedFormat(record.format) }
        return record
    }
}
