// The Roset API key. Its description never shows the value, so a configuration, an error or a
// log line that interpolates it cannot leak it.
public struct APIKey: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    /// Where the key came from, for messages ("apikey_file=/etc/roset/key", "ROSET_API_KEY").
    public var source: String
    public var value: String

    public init(_ value: String, source: String) {
        self.value = value
        self.source = source
    }

    public var description: String { "<redacted key from \(source)>" }
    public var debugDescription: String { description }
}
