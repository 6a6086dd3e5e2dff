// Removes secrets from text before it reaches a log line or an error message. Invariant: the
// API key never appears in output, and neither does the value of any query parameter that
// carries signature material (`sig`, `signature`, `X-Amz-Signature`, `X-Amz-Credential`,
// `X-Amz-Security-Token`, `token`, ...) nor a `Bearer` credential.
import Foundation

public struct Redaction: Sendable {
    public static let placeholder = "REDACTED"

    /// Query parameter names (lowercased) whose values are secret.
    static let secretParameters: Set<String> = [
        "sig", "signature", "x-amz-signature", "x-amz-credential", "x-amz-security-token",
        "x-goog-signature", "x-goog-credential", "token", "access_token", "apikey", "api_key",
        "key", "secret", "credential", "skoid", "sktid", "policy", "key-pair-id",
    ]

    /// `name=value` inside URLs or form text, for the names above and for any name that
    /// contains `signature`, `credential`, `token` or `secret`.
    private static let parameterPattern: NSRegularExpression = {
        // The name is captured so the replacement keeps it; the value stops at a delimiter.
        let pattern = #"(?i)([?&;])([A-Za-z0-9_.\-]+)=([^&\s"'<>#;]*)"#
        return try! NSRegularExpression(pattern: pattern)  // a literal pattern: cannot fail
    }()
    private static let bearerPattern: NSRegularExpression = {
        try! NSRegularExpression(pattern: #"(?i)(bearer\s+)[^\s"',;]+"#)  // literal pattern
    }()

    private let apiKey: String?

    public init(apiKey: String?) {
        self.apiKey = (apiKey?.isEmpty ?? true) ? nil : apiKey
    }

    static func isSecret(parameter name: String) -> Bool {
        let lower = name.lowercased()
        if secretParameters.contains(lower) { return true }
        return lower.contains("signature") || lower.contains("credential")
            || lower.contains("token") || lower.contains("secret")
    }

    /// Redacts an URL: the signature-carrying query values are replaced.
    public func url(_ url: String) -> String { text(url) }

    /// Redacts any text: the API key, Bearer credentials, and secret query values.
    public func text(_ input: String) -> String {
        var s = input
        if let key = apiKey { s = s.replacingOccurrences(of: key, with: Self.placeholder) }
        s = Self.replace(Self.bearerPattern, in: s) { m, ns in
            ns.substring(with: m.range(at: 1)) + Self.placeholder
        }
        s = Self.replace(Self.parameterPattern, in: s) { m, ns in
            let lead = ns.substring(with: m.range(at: 1))
            let name = ns.substring(with: m.range(at: 2))
            let value = ns.substring(with: m.range(at: 3))
            return lead + name + "=" + (Self.isSecret(parameter: name) ? Self.placeholder : value)
        }
        return s
    }

    private static func replace(_ regex: NSRegularExpression, in s: String,
                                _ transform: (NSTextCheckingResult, NSString) -> String) -> String {
        let ns = s as NSString
        let matches = regex.matches(in: s, range: NSRange(location: 0, length: ns.length))
        if matches.isEmpty { return s }
        var out = ""
        var last = 0
        for m in matches {
            out += ns.substring(with: NSRange(location: last, length: m.range.location - last))
            out += transform(m, ns)
            last = m.range.location + m.range.length
        }
        out += ns.substring(from: last)
        return out
    }
}
