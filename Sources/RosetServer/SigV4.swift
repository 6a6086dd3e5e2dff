// AWS Signature Version 4 for S3 (path-style): query-string presigning for the URLs handed to
// clients, and header signing for the server's own bucket calls. Invariant: the canonical URI
// and query used for signing are exactly the ones put into the URL that is sent.
import Crypto
import Foundation

struct SigV4: Sendable {
    let accessKey: String
    let secretKey: String
    let region: String
    let service = "s3"

    static func encode(_ s: String, keepSlash: Bool = false) -> String {
        var out = ""
        for b in s.utf8 {
            let c = Character(UnicodeScalar(b))
            if (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || (b >= 48 && b <= 57) || "-_.~".contains(c) || (keepSlash && c == "/") {
                out.append(c)
            } else {
                out += String(format: "%%%02X", b)
            }
        }
        return out
    }

    static func canonicalQuery(_ items: [(String, String)]) -> String {
        let encoded: [(String, String)] = items.map { (encode($0.0), encode($0.1)) }
        let sorted = encoded.sorted { (a: (String, String), b: (String, String)) -> Bool in
            a.0 == b.0 ? a.1 < b.1 : a.0 < b.0
        }
        return sorted.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    static func stamps(_ date: Date) -> (amz: String, day: String) {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let amz = f.string(from: date)
        return (amz, String(amz.prefix(8)))
    }

    static func sha256Hex(_ data: Data) -> String { Hex.encode(SHA256.hash(data: data)) }

    private func hmac(_ key: Data, _ text: String) -> Data {
        Data(HMAC<SHA256>.authenticationCode(for: Data(text.utf8), using: SymmetricKey(data: key)))
    }

    private func signature(day: String, stringToSign: String) -> String {
        var key = hmac(Data("AWS4\(secretKey)".utf8), day)
        key = hmac(key, region)
        key = hmac(key, service)
        key = hmac(key, "aws4_request")
        return Hex.encode(hmac(key, stringToSign))
    }

    private func stringToSign(amz: String, scope: String, canonicalRequest: String) -> String {
        "AWS4-HMAC-SHA256\n\(amz)\n\(scope)\n\(Self.sha256Hex(Data(canonicalRequest.utf8)))"
    }

    /// A presigned URL (`X-Amz-*` query parameters, UNSIGNED-PAYLOAD, only `host` signed).
    func presign(method: String, endpoint: String, host: String, path: String, query: [(String, String)],
                 expires: Int, now: Date = Date()) -> String {
        let (amz, day) = Self.stamps(now)
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        var items = query
        items += [("X-Amz-Algorithm", "AWS4-HMAC-SHA256"), ("X-Amz-Credential", "\(accessKey)/\(scope)"),
                  ("X-Amz-Date", amz), ("X-Amz-Expires", String(expires)), ("X-Amz-SignedHeaders", "host")]
        let canonicalPath = Self.encode(path, keepSlash: true)
        let q = Self.canonicalQuery(items)
        let request = "\(method)\n\(canonicalPath)\n\(q)\nhost:\(host)\n\nhost\nUNSIGNED-PAYLOAD"
        let sig = signature(day: day, stringToSign: stringToSign(amz: amz, scope: scope, canonicalRequest: request))
        return "\(endpoint)\(canonicalPath)?\(q)&X-Amz-Signature=\(sig)"
    }

    /// Headers for a header-signed request (host, x-amz-date, x-amz-content-sha256 signed).
    func signedHeaders(method: String, host: String, path: String, query: [(String, String)], body: Data,
                       now: Date = Date()) -> [String: String] {
        let (amz, day) = Self.stamps(now)
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let payload = Self.sha256Hex(body)
        let canonicalHeaders = "host:\(host)\nx-amz-content-sha256:\(payload)\nx-amz-date:\(amz)\n"
        let signed = "host;x-amz-content-sha256;x-amz-date"
        let request = "\(method)\n\(Self.encode(path, keepSlash: true))\n\(Self.canonicalQuery(query))\n\(canonicalHeaders)\n\(signed)\n\(payload)"
        let sig = signature(day: day, stringToSign: stringToSign(amz: amz, scope: scope, canonicalRequest: request))
        return ["x-amz-date": amz, "x-amz-content-sha256": payload,
                "Authorization": "AWS4-HMAC-SHA256 Credential=\(accessKey)/\(scope), SignedHeaders=\(signed), Signature=\(sig)"]
    }
}
