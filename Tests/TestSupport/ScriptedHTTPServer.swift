// A loopback HTTP/1.1 peer that answers each connection with the next scripted raw response and
// records every request it received. It lets tests see exactly which headers the client sends and
// feed it answers no well-behaved server would give (a wrong Content-Range, no ETag, a body cut
// short). One request per connection (`Connection: close`); stopped by `stop()` or deinit.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public final class ScriptedHTTPServer: @unchecked Sendable {
    public struct Request {
        public var head: String
        public var body: Data
        public var requestLine: String { head.components(separatedBy: "\r\n").first ?? "" }
        /// Header values by lowercased name (the last one wins).
        public var headers: [String: String] {
            var out: [String: String] = [:]
            for line in head.components(separatedBy: "\r\n").dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                out[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            return out
        }
        public func has(header name: String) -> Bool {
            head.components(separatedBy: "\r\n").dropFirst().contains { $0.lowercased().hasPrefix(name.lowercased() + ":") }
        }
    }

    private let listener: Int32
    public let port: Int
    private let lock = NSLock()
    private var responses: [Data]
    private var received: [Request] = []
    private let done = DispatchSemaphore(value: 0)
    private var running = true

    public var baseURL: String { "http://127.0.0.1:\(port)" }
    public var requests: [Request] { lock.withLock { received } }

    /// `responses` are raw HTTP responses, used in order; the last one repeats.
    public init(responses: [String]) throws {
        self.responses = responses.map { Data($0.utf8) }
        (listener, port) = try Self.bindLoopback(listening: true)
        startServing()
    }

    /// A TCP socket bound to a free port of 127.0.0.1, and the port. A socket that is not
    /// listening refuses every connection, and (without SO_REUSEADDR) no other socket can take
    /// the port while it is open.
    public static func bindLoopback(listening: Bool) throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        if listening {
            var yes: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, len) == 0 && (!listening || listen(fd, 16) == 0) && getsockname(fd, $0, &len) == 0
            }
        }
        guard ok else { close(fd); throw POSIXError(.EADDRINUSE) }
        return (fd, Int(UInt16(bigEndian: addr.sin_port)))
    }

    private func startServing() {
        Thread { self.serve() }.start()
    }

    deinit { stop() }

    public func stop() {
        let wasRunning: Bool = lock.withLock { defer { running = false }; return running }
        guard wasRunning else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        done.wait()
    }

    private func serve() {
        defer { done.signal() }
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 { return }
            handle(fd)
            close(fd)
        }
    }

    private func handle(_ fd: Int32) {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        var headEnd: Range<Data.Index>? = nil
        while headEnd == nil {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { return }
            data.append(buffer, count: n)
            headEnd = data.range(of: Data("\r\n\r\n".utf8))
        }
        guard let end = headEnd else { return }
        let head = String(decoding: data[..<end.lowerBound], as: UTF8.self)
        var request = Request(head: head, body: Data(data[end.upperBound...]))
        let length = Int(request.headers["content-length"] ?? "0") ?? 0
        while request.body.count < length {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            request.body.append(buffer, count: n)
        }
        let response: Data = lock.withLock {
            received.append(request)
            return responses.count > 1 ? responses.removeFirst() : (responses.first ?? Data())
        }
        response.withUnsafeBytes { raw in
            var sent = 0
            while sent < raw.count {
                let n = send(fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                if n <= 0 { break }
                sent += n
            }
        }
    }

    /// A complete response with Content-Length and `Connection: close`.
    public static func response(_ status: Int, headers: [String] = [], body: String = "") -> String {
        var lines = ["HTTP/1.1 \(status) Scripted", "Content-Length: \(body.utf8.count)", "Connection: close"]
        lines += headers
        return lines.joined(separator: "\r\n") + "\r\n\r\n" + body
    }
}
