// user.* extended attributes ↔ node metadata. Invariant: any byte string round-trips: a value
// is stored as a JSON string when it is valid UTF-8 and does not itself start with the marker;
// otherwise as "base64:" + base64 of the bytes.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import RosetClient

enum XattrCodec {
    static let metadataPrefix = "xattr."
    static let binaryMarker = "base64:"
    static let maxNameBytes = 255
    static let maxValueBytes = 64 * 1024
    /// The server's limit on a node's metadata as serialized JSON (docs/PROTOCOL.md §7: 64 KiB).
    static let maxMetadataBytes = 64 * 1024

    /// The size of `metadata` as JSON, as the server measures it (slashes escaped, an upper bound).
    static func jsonBytes(_ metadata: [String: JSONValue]) -> Int {
        (try? JSONEncoder().encode(metadata).count) ?? Int.max
    }

    /// The metadata key of an xattr name, or the errno the name deserves.
    static func key(for name: String) throws -> String {
        guard name.utf8.count <= maxNameBytes else { throw FSError(ERANGE) }
        guard name.hasPrefix("user."), name.utf8.count > "user.".utf8.count else { throw FSError(ENOTSUP) }
        return metadataPrefix + name
    }

    static func encode(_ value: [UInt8]) -> JSONValue {
        if let text = String(validatingUTF8: value.map { CChar(bitPattern: $0) } + [0]),
           text.utf8.count == value.count, !text.hasPrefix(binaryMarker) {
            return .string(text)
        }
        return .string(binaryMarker + Data(value).base64EncodedString())
    }

    static func decode(_ stored: JSONValue) -> [UInt8] {
        switch stored {
        case .string(let s):
            if s.hasPrefix(binaryMarker), let data = Data(base64Encoded: String(s.dropFirst(binaryMarker.count))) {
                return Array(data)
            }
            return Array(s.utf8)
        case .number(let n): return Array(String(n).utf8)
        case .bool(let b): return Array(String(b).utf8)
        default: return []
        }
    }

    /// The user.* names present in `metadata`.
    static func names(in metadata: [String: JSONValue]) -> [String] {
        metadata.keys.filter { $0.hasPrefix(metadataPrefix + "user.") && metadata[$0] != .null }
            .map { String($0.dropFirst(metadataPrefix.count)) }.sorted()
    }
}
