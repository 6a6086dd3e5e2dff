// Signed URLs for the local blob store. A signature is HMAC-SHA256 (secret kept in the data
// folder) over "METHOD\nRESOURCE\nEXPIRES", so a URL is good for one method, one object or part,
// until one instant. Invariant: verification is constant-time and rejects expired URLs before
// looking at the signature, so both answers are 403.
import Crypto
import Foundation

struct URLSigner: Sendable {
    let key: SymmetricKey

    init(secret: Data) { key = SymmetricKey(data: secret) }

    func signature(method: String, resource: String, expires: Int) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data("\(method)\n\(resource)\n\(expires)".utf8), using: key)
        return Hex.encode(Data(mac))
    }

    /// `base` + "/blob/" + resource + "?expires=…&sig=…"
    func url(base: String, method: String, resource: String, ttl: Int) -> String {
        let expires = Int(Date().timeIntervalSince1970) + ttl
        return "\(base)/blob/\(resource)?expires=\(expires)&sig=\(signature(method: method, resource: resource, expires: expires))"
    }

    func isValid(method: String, resource: String, expires: String?, sig: String?) -> Bool {
        guard let expires, let e = Int(expires), e >= Int(Date().timeIntervalSince1970),
              let sig, let given = Hex.decode(sig) else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(given, authenticating: Data("\(method)\n\(resource)\n\(e)".utf8), using: key)
    }
}

enum Hex {
    static func encode<D: Sequence>(_ bytes: D) -> String where D.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: String) -> Data? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out = Data(capacity: chars.count / 2)
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 97...102: return c - 87
            case 65...70: return c - 55
            default: return nil
            }
        }
        var i = 0
        while i < chars.count {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    static func random(bytes: Int) -> String {
        var g = SystemRandomNumberGenerator()
        return encode((0..<bytes).map { _ in UInt8.random(in: 0...255, using: &g) })
    }
}
