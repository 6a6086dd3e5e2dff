// Fault injection settings, shared by every request and changed at run time through
// PUT /admin/faults. Invariant: readers take a consistent snapshot (`FaultSettings` is a value
// copied under the lock), so one request never sees half of an update.
import Foundation

public enum TrafficClass: String, CaseIterable, Sendable {
    /// /v1/* control-plane calls.
    case control
    /// Blob GETs on signed URLs.
    case download
    /// Blob PUTs (parts and single objects).
    case upload
}

public struct FaultSettings: Sendable, Equatable {
    public var latencyMs: [String: Int] = ["control": 0, "download": 0, "upload": 0]
    public var errorRate: [String: Double] = ["control": 0, "download": 0, "upload": 0]
    public var errorStatuses: [Int] = [500, 503, 429]
    public var retryAfterSeconds: Int = 1
    public var dropRate: [String: Double] = ["control": 0, "download": 0, "upload": 0]
    public var malformedRate: [String: Double] = ["control": 0]
    public var ignoreRange = false
    public var urlTTLSeconds = 3600

    public init() {}

    func latency(_ c: TrafficClass) -> Int { latencyMs[c.rawValue] ?? 0 }
    func error(_ c: TrafficClass) -> Double { errorRate[c.rawValue] ?? 0 }
    func drop(_ c: TrafficClass) -> Double { dropRate[c.rawValue] ?? 0 }
    func malformed(_ c: TrafficClass) -> Double { malformedRate[c.rawValue] ?? 0 }

    /// The injected error for this request, if the dice say so.
    func injectedError(_ c: TrafficClass) -> APIError? {
        guard error(c) > 0, Double.random(in: 0..<1) < error(c) else { return nil }
        let status = errorStatuses.randomElement() ?? 503
        return APIError(status, status == 429 ? "RATE_LIMITED" : "INJECTED_FAULT", "injected fault",
                        retryAfter: status == 429 || status == 503 ? retryAfterSeconds : nil)
    }

    func shouldDrop(_ c: TrafficClass) -> Bool { drop(c) > 0 && Double.random(in: 0..<1) < drop(c) }
    func shouldMalform(_ c: TrafficClass) -> Bool { malformed(c) > 0 && Double.random(in: 0..<1) < malformed(c) }

    public var json: [String: Any] {
        ["latencyMs": latencyMs, "errorRate": errorRate, "errorStatuses": errorStatuses,
         "retryAfterSeconds": retryAfterSeconds, "dropRate": dropRate, "malformedRate": malformedRate,
         "ignoreRange": ignoreRange, "urlTTLSeconds": urlTTLSeconds]
    }

    /// Merges the keys present in `json` (per-class maps merge per class). Throws on bad values.
    public mutating func merge(_ json: [String: Any]) throws {
        func classMap<T>(_ key: String, _ convert: (Any) -> T?, _ valid: (T) -> Bool) throws -> [String: T]? {
            guard let raw = json[key] else { return nil }
            guard let dict = raw as? [String: Any] else { throw APIError.invalid("\(key) must be an object") }
            var out: [String: T] = [:]
            for (k, v) in dict {
                guard TrafficClass(rawValue: k) != nil else { throw APIError.invalid("\(key): unknown class \(k)") }
                guard let t = convert(v), valid(t) else { throw APIError.invalid("\(key).\(k): bad value") }
                out[k] = t
            }
            return out
        }
        let rate: (Any) -> Double? = { ($0 as? NSNumber)?.doubleValue }
        let okRate: (Double) -> Bool = { $0 >= 0 && $0 <= 1 }
        if let m = try classMap("latencyMs", { ($0 as? NSNumber)?.intValue }, { $0 >= 0 }) { latencyMs.merge(m) { $1 } }
        if let m = try classMap("errorRate", rate, okRate) { errorRate.merge(m) { $1 } }
        if let m = try classMap("dropRate", rate, okRate) { dropRate.merge(m) { $1 } }
        if let m = try classMap("malformedRate", rate, okRate) { malformedRate.merge(m) { $1 } }
        if let raw = json["errorStatuses"] {
            guard let list = raw as? [Any], !list.isEmpty else { throw APIError.invalid("errorStatuses must be a non-empty array") }
            errorStatuses = try list.map {
                guard let s = ($0 as? NSNumber)?.intValue, (400...599).contains(s) else { throw APIError.invalid("bad status") }
                return s
            }
        }
        if let raw = json["retryAfterSeconds"] {
            guard let n = (raw as? NSNumber)?.intValue, n >= 0 else { throw APIError.invalid("bad retryAfterSeconds") }
            retryAfterSeconds = n
        }
        if let raw = json["ignoreRange"] {
            guard let b = raw as? Bool else { throw APIError.invalid("ignoreRange must be a boolean") }
            ignoreRange = b
        }
        if let raw = json["urlTTLSeconds"] {
            guard let n = (raw as? NSNumber)?.intValue, n >= 1 else { throw APIError.invalid("bad urlTTLSeconds") }
            urlTTLSeconds = n
        }
    }

    /// Parses `CLASS=VALUE` (or `all=VALUE`) from the command line into `(classes, value)`.
    public static func parseClassValue(_ text: String) throws -> ([String], Double) {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, let value = Double(parts[1]) else { throw APIError.invalid("expected CLASS=VALUE, got \(text)") }
        let classes = parts[0] == "all" ? TrafficClass.allCases.map(\.rawValue) : [parts[0]]
        for c in classes where TrafficClass(rawValue: c) == nil { throw APIError.invalid("unknown class \(c)") }
        return (classes, value)
    }
}

/// The live settings plus counters for /admin/stats.
public final class FaultController: @unchecked Sendable {
    private let lock = NSLock()
    private var settings: FaultSettings
    private var counters: [String: Int] = [:]

    public init(_ settings: FaultSettings) { self.settings = settings }

    public var current: FaultSettings { lock.withLock { settings } }

    public func merge(_ json: [String: Any]) throws -> FaultSettings {
        try lock.withLock {
            var copy = settings
            try copy.merge(json)
            settings = copy
            return copy
        }
    }

    public func count(_ name: String, by n: Int = 1) { lock.withLock { counters[name, default: 0] += n } }

    public var stats: [String: Int] { lock.withLock { counters } }
}
