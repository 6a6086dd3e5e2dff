// Loose JSON for the control plane: the API mixes two dialects and free-form metadata, so requests
// and answers are handled as JSONSerialization dictionaries rather than Codable types. Invariant:
// `JSONBody.encode` always yields valid JSON (NSNull for null, never NaN).
import Foundation

enum JSONBody {
    static func encode(_ value: Any) -> Data {
        (try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed])) ?? Data("{}".utf8)
    }

    /// Parses a request body; an empty body is an empty object.
    static func decodeObject(_ data: Data) throws -> [String: Any] {
        if data.isEmpty || data.allSatisfy({ $0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09 }) { return [:] }
        guard let obj = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else {
            throw APIError.invalid("request body is not valid JSON")
        }
        guard let dict = obj as? [String: Any] else { throw APIError.invalid("request body must be a JSON object") }
        return dict
    }

    static func decodeMetadata(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }

    static func string(_ value: Any?) -> String? {
        guard let value, !(value is NSNull) else { return nil }
        return value as? String
    }

    static func int(_ value: Any?) -> Int64? {
        guard let value, !(value is NSNull) else { return nil }
        if let n = value as? NSNumber { return n.int64Value }
        if let s = value as? String { return Int64(s) }
        return nil
    }

    static func bool(_ value: Any?) -> Bool? {
        guard let value, !(value is NSNull) else { return nil }
        if let b = value as? Bool { return b }
        return nil
    }

    /// A JSON `true` (how FUSE reads `metadata.committed`).
    static func isTrue(_ value: Any?) -> Bool {
        guard let value, !(value is NSNull) else { return false }
        return (value as? Bool) == true
    }
}

/// RFC 3339 in UTC with whole seconds, the form every Roset client parses.
enum Timestamp {
    static func format(_ seconds: Double) -> String {
        let t = time_t(seconds.rounded(.down))
        var tmv = tm()
        var tt = t
        gmtime_r(&tt, &tmv)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02dZ", Int(tmv.tm_year) + 1900, Int(tmv.tm_mon) + 1,
                      Int(tmv.tm_mday), Int(tmv.tm_hour), Int(tmv.tm_min), Int(tmv.tm_sec))
    }

    static var now: Double { Date().timeIntervalSince1970 }
}
