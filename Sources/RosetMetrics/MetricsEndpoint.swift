// A small HTTP server for Prometheus' scrapes: `GET /metrics` answers `render()` in the text
// format; anything else under GET is 404 and other methods 405. One thread accepts and answers
// one connection at a time (a scrape every few seconds needs no more). Invariants: the socket is
// bound when `init` returns, so a taken port or a bad address fails the caller at once with a
// message; the thread starts only in `start()`, which a daemon calls after it forked (threads do
// not survive a fork); a client that sends nothing is dropped after two seconds.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct MetricsEndpointError: Error, CustomStringConvertible {
    public let description: String
}

public final class MetricsEndpoint: @unchecked Sendable {
    public let host: String
    /// The bound port (the one asked for, or the one the system chose for 0).
    public let port: UInt16
    private let listener: Int32
    private let render: @Sendable () -> String

    public init(host: String, port: UInt16, render: @escaping @Sendable () -> String) throws {
        self.host = host
        self.render = render
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE
        var found: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &found)
        guard rc == 0, let info = found else {
            throw MetricsEndpointError(description: "metrics=\(host):\(port): cannot resolve \(host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(found) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw MetricsEndpointError(description: "metrics: socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0, listen(fd, 16) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw MetricsEndpointError(description: "metrics=\(host):\(port): cannot listen there: \(reason)")
        }
        var bound = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let boundPort: UInt16 = withUnsafeMutablePointer(to: &bound) { pointer in
            _ = pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            if pointer.pointee.ss_family == sa_family_t(AF_INET6) {
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
            }
            return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
        self.port = boundPort
        listener = fd
    }

    /// Starts answering on a thread of its own (for the life of the process).
    public func start() {
        let thread = Thread { [self] in
            while true {
                let client = accept(listener, nil, nil)
                if client < 0 {
                    if errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE {
                        if errno != EINTR { usleep(100_000) }
                        continue
                    }
                    return
                }
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                answer(client)
                close(client)
            }
        }
        thread.name = "roset-metrics"
        thread.start()
    }

    private func answer(_ client: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        _ = setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var head: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while head.count < 8192 {
            let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            head += chunk[0..<n]
            if head.count >= 4, head.suffix(4).elementsEqual([13, 10, 13, 10]) || String(decoding: head, as: UTF8.self).contains("\r\n\r\n") { break }
        }
        let requestLine = String(decoding: head, as: UTF8.self).split(separator: "\r\n", maxSplits: 1).first ?? ""
        let parts = requestLine.split(separator: " ")
        let (status, body): (String, String)
        if parts.count < 2 {
            (status, body) = ("400 Bad Request", "bad request\n")
        } else if parts[0] != "GET" && parts[0] != "HEAD" {
            (status, body) = ("405 Method Not Allowed", "only GET\n")
        } else if parts[1] == "/metrics" || parts[1].hasPrefix("/metrics?") {
            (status, body) = ("200 OK", render())
        } else {
            (status, body) = ("404 Not Found", "the metrics are at /metrics\n")
        }
        let payload = Array(body.utf8)
        let contentType = status.hasPrefix("200") ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8"
        var response = Array("HTTP/1.1 \(status)\r\nContent-Type: \(contentType)\r\nContent-Length: \(payload.count)\r\nConnection: close\r\n\r\n".utf8)
        if parts.first != "HEAD" { response += payload }
        var sent = 0
        while sent < response.count {
            let n = response[sent...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }
}
