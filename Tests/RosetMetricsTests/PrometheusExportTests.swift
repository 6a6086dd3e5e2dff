// The exposition as Prometheus reads it, without a mount: every family gets one HELP line (ours
// from RosetMetricNames, others a generic one), dotted names become Prometheus names, and the
// endpoint answers GET /metrics with the text format and anything else with 404/405.
import Foundation
import Metrics
import Testing
@testable import RosetMetrics

@Suite struct PrometheusExportTests {
    @Test func everyFamilyGetsExactlyOneHelpLine() {
        let text = """
        # TYPE roset_fuse_requests_total counter
        roset_fuse_requests_total{op="open"} 3
        # HELP already_described Said before.
        # TYPE already_described gauge
        already_described 1
        # TYPE someone_elses counter
        someone_elses 2
        """
        let out = PrometheusExport.addingHelp(to: text)
        let lines = out.split(separator: "\n").map(String.init)
        #expect(lines.contains("# HELP roset_fuse_requests_total \(RosetMetricNames.help[RosetMetricNames.fuseRequests]!)"))
        #expect(lines.filter { $0.hasPrefix("# HELP already_described") }.count == 1)
        #expect(lines.contains("# HELP someone_elses someone_elses (no description)."))
        #expect(lines.firstIndex { $0.hasPrefix("# HELP roset_fuse") }! < lines.firstIndex { $0.hasPrefix("# TYPE roset_fuse") }!)
    }

    @Test func everyNameIsAPrometheusNameWithHelp() {
        for (name, help) in RosetMetricNames.help {
            #expect(PrometheusExport.prometheusName(name) == name)
            #expect(!help.isEmpty && !help.contains("\n"))
        }
        #expect(PrometheusExport.prometheusName("http.server.request.duration") == "http_server_request_duration")
    }

    @Test func theEndpointServesMetricsAndOnlyMetrics() throws {
        let endpoint = try MetricsEndpoint(host: "127.0.0.1", port: 0, render: { "# TYPE x counter\nx 1\n" })
        endpoint.start()
        func get(_ path: String, method: String = "GET") throws -> String {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = endpoint.port.bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard rc == 0 else { throw POSIXError(.ECONNREFUSED) }
            let request = Array("\(method) \(path) HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
            _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            var response: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                response += buffer[0..<n]
            }
            return String(decoding: response, as: UTF8.self)
        }
        let metrics = try get("/metrics")
        #expect(metrics.hasPrefix("HTTP/1.1 200 OK"))
        #expect(metrics.contains("Content-Type: text/plain; version=0.0.4"))
        #expect(metrics.hasSuffix("x 1\n"))
        #expect(try get("/").hasPrefix("HTTP/1.1 404"))
        #expect(try get("/metrics", method: "POST").hasPrefix("HTTP/1.1 405"))
        #expect(throws: MetricsEndpointError.self) {
            _ = try MetricsEndpoint(host: "127.0.0.1", port: endpoint.port, render: { "" })
        }
    }
}
