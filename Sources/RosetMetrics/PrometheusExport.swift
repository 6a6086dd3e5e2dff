// This process's swift-metrics in Prometheus' text format, through swift-prometheus. Invariants:
// `bootstrap` runs at most once per process and before any metric is recorded (swift-metrics
// objects made earlier stay no-ops); others' metrics get the names RosetMetricNames.exported
// gives them, and any other dot in a name or label becomes an underscore; every family in the output carries a HELP line, from RosetMetricNames.help or,
// for a family no one described, one naming it.
import Metrics
import Prometheus

public final class PrometheusExport: Sendable {
    public let registry = PrometheusCollectorRegistry()

    public init() {}

    /// Makes swift-metrics record into this export's registry (once per process).
    public func bootstrap() {
        var factory = PrometheusMetricsFactory(registry: registry)
        // FUSE requests answered from memory take microseconds, uploads seconds.
        factory.defaultDurationHistogramBuckets = [.microseconds(100), .microseconds(500), .milliseconds(1),
                                                   .microseconds(2500), .milliseconds(5), .milliseconds(10),
                                                   .milliseconds(25), .milliseconds(50), .milliseconds(100),
                                                   .milliseconds(250), .milliseconds(500), .seconds(1),
                                                   .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30)]
        factory.nameAndLabelSanitizer = { name, labels in
            (RosetMetricNames.exported[name] ?? Self.prometheusName(name), labels.map { (Self.prometheusName($0.0), $0.1) })
        }
        MetricsSystem.bootstrap(factory)
    }

    static func prometheusName(_ name: String) -> String {
        String(name.map { $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" ? $0 : "_" })
    }

    /// The exposition (text format 0.0.4).
    public func render() -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return Self.addingHelp(to: String(decoding: buffer, as: UTF8.self))
    }

    /// Puts a `# HELP` line before each `# TYPE` line of a family that has none.
    static func addingHelp(to text: String) -> String {
        var out: [Substring] = []
        var described = Set<Substring>()
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        for line in lines {
            if line.hasPrefix("# HELP ") {
                if let name = line.dropFirst(7).split(separator: " ").first { described.insert(name) }
            } else if line.hasPrefix("# TYPE "), let name = line.dropFirst(7).split(separator: " ").first,
                      !described.contains(name) {
                let help = RosetMetricNames.help[String(name)] ?? "\(name) (no description)."
                out.append(Substring("# HELP \(name) \(help)"))
                described.insert(name)
            }
            out.append(line)
        }
        return out.joined(separator: "\n")
    }
}
