// Ranged GETs of plain-http signed URLs whose body goes from the socket into pipes with
// splice(2), never through this process's memory. The read path hands those pipes to the kernel
// (FUSE splice), so a byte read through the mount is copied once, by the kernel, instead of
// socket -> curl's buffer -> the block cache -> the kernel.
// Invariants:
// - only `http://` URLs are taken, and only when no proxy is configured in the environment
//   (`accepts`); https, proxies and anything else stay on the libcurl path;
// - a call fills the pipes in order, each with exactly its count, or throws; it fills nothing
//   past the first pipe that could not be filled;
// - a connection goes back to the pool only after a response was read to its end and the server
//   did not ask to close it; a reused connection that the server had closed is retried once;
// - every wait on a socket or a pipe is bounded by `timeout`.
import CPipes
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public final class PipeDownloader: @unchecked Sendable {
    /// One pipe to fill: its write end and how many bytes of the body go into it.
    public struct Target: Sendable {
        public let fd: Int32
        public let count: Int
        public init(fd: Int32, count: Int) { self.fd = fd; self.count = count }
    }

    let timeout: TimeInterval
    let userAgent: String
    private let lock = NSLock()
    /// Idle keep-alive connections by "host:port".
    private var idle: [String: [Int32]] = [:]
    static let idlePerHost = 8
    static let headLimit = 16 * 1024
    /// Bytes queued on the socket before a splice (SO_RCVLOWAT), fewer only at the body's end.
    static let spliceBatch = 256 * 1024

    public init(timeout: TimeInterval = 30, userAgent: String = "roset-fuse/\(RosetClientVersion.current)") {
        self.timeout = timeout
        self.userAgent = userAgent
    }

    deinit { for fds in idle.values { for fd in fds { close(fd) } } }

    /// True when `url` is one this downloader fetches: plain http with a host, and no proxy set.
    public static func accepts(_ url: String,
                               environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        guard ParsedURL(url) != nil else { return false }
        return ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"].allSatisfy { (environment[$0] ?? "").isEmpty }
    }

    /// GETs bytes [offset, offset + Σ counts) of `url` into the targets, in order; `filled(i)`
    /// runs once target i holds its count, and returning false from it stops the transfer (the
    /// connection is then closed, and the call returns without error).
    public func get(url: String, offset: Int64, into targets: [Target], filled: (Int) -> Bool) throws {
        guard let target = ParsedURL(url) else {
            throw RosetError(kind: .badRequest, endpoint: "GET <signed url>", message: "not a plain http URL")
        }
        let total = targets.reduce(0) { $0 + $1.count }
        guard total > 0 else { return }
        let request = "GET \(target.pathAndQuery) HTTP/1.1\r\nHost: \(target.hostHeader)\r\n"
            + "Range: bytes=\(offset)-\(offset + Int64(total) - 1)\r\nUser-Agent: \(userAgent)\r\n"
            + "Accept-Encoding: identity\r\n\r\n"
        let (pooled, reused) = try connection(to: target)
        var fd = pooled
        var head: ResponseHead
        do {
            head = try exchange(fd, request: request)
        } catch let error as RosetError where reused && error.kind == .network {
            // The server closed the idle connection meanwhile: once more on a new one.
            close(fd)
            fd = try connect(target)
            do { head = try exchange(fd, request: request) } catch { close(fd); throw error }
        } catch {
            close(fd)
            throw error
        }
        var keep = false
        defer {
            if keep {
                setOption(fd, SOL_SOCKET, SO_RCVLOWAT, 1)  // the next head must not wait for a low-water mark
                giveBack(fd, key: target.poolKey)
            } else {
                close(fd)
            }
        }
        try head.check(offset: offset, length: total)
        var leftover = head.bodyPrefix[...]
        var lowWater = 0
        var bodyLeft = total - leftover.count
        for (index, t) in targets.enumerated() {
            var remaining = t.count
            if !leftover.isEmpty {
                let n = min(remaining, leftover.count)
                try writeAll(t.fd, Array(leftover.prefix(n)))
                leftover = leftover.dropFirst(n)
                remaining -= n
            }
            while remaining > 0 {
                // Wake up only once a good part of the body is queued, not per arriving segment:
                // fewer poll and splice calls per byte.
                let wanted = min(Self.spliceBatch, bodyLeft)
                if wanted != lowWater {
                    setOption(fd, SOL_SOCKET, SO_RCVLOWAT, Int32(wanted))
                    lowWater = wanted
                }
                let n = try spliceSome(from: fd, to: t.fd, max: remaining)
                remaining -= n
                bodyLeft -= n
            }
            if !filled(index) { return }
        }
        keep = head.keepAlive
    }

    // MARK: Connections

    private func connection(to target: ParsedURL) throws -> (Int32, Bool) {
        if let fd = lock.withLock({ idle[target.poolKey]?.popLast() }) { return (fd, true) }
        return (try connect(target), false)
    }

    private func giveBack(_ fd: Int32, key: String) {
        let kept: Bool = lock.withLock {
            guard idle[key, default: []].count < Self.idlePerHost else { return false }
            idle[key, default: []].append(fd)
            return true
        }
        if !kept { close(fd) }
    }

    private func connect(_ target: ParsedURL) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(target.host, String(target.port), &hints, &list)
        guard rc == 0, let first = list else { throw network("cannot resolve the store's host") }
        defer { freeaddrinfo(first) }
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let ai = cursor {
            cursor = ai.pointee.ai_next
            let fd = socket(ai.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
                            | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard fd >= 0 else { continue }
            if Glibc.connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0
                || (errno == EINPROGRESS && waitFor(fd, events: Int16(POLLOUT)) && socketError(fd) == 0) {
                setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
                return fd
            }
            close(fd)
        }
        throw network("cannot connect to the store")
    }

    private func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) {
        var v = value
        setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size))
    }

    private func socketError(_ fd: Int32) -> Int32 {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &length) == 0 ? value : errno
    }

    /// Waits until `fd` is ready for `events`, at most `timeout`; false on timeout or error.
    private func waitFor(_ fd: Int32, events: Int16) -> Bool {
        var p = pollfd(fd: fd, events: events, revents: 0)
        while true {
            let rc = poll(&p, 1, Int32(timeout * 1000))
            if rc < 0 && errno == EINTR { continue }
            return rc > 0 && p.revents & events != 0
        }
    }

    // MARK: Request and response head

    /// Sends the request and reads the response head (and whatever body bytes came with it).
    private func exchange(_ fd: Int32, request: String) throws -> ResponseHead {
        let bytes = Array(request.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 { sent += n; continue }
            if n < 0 && (errno == EAGAIN || errno == EINTR) {
                guard waitFor(fd, events: Int16(POLLOUT)) else { throw network("timed out sending to the store") }
                continue
            }
            throw network("the store closed the connection")
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                received.append(contentsOf: buffer[0..<n])
                if let head = try ResponseHead(parsing: received) { return head }
                guard received.count < Self.headLimit else {
                    throw RosetError(kind: .decoding, endpoint: "GET <signed url>", message: "response head too long")
                }
                continue
            }
            if n < 0 && (errno == EAGAIN || errno == EINTR) {
                guard waitFor(fd, events: Int16(POLLIN)) else { throw network("timed out waiting for the store") }
                continue
            }
            throw network("the store closed the connection")
        }
    }

    // MARK: Body

    /// Moves up to `max` bytes of the body from the socket into the pipe; at least one.
    private func spliceSome(from socket: Int32, to pipe: Int32, max: Int) throws -> Int {
        var sawReadable = false
        while true {
            let n = roset_splice_nonblocking(socket, pipe, max)
            if n > 0 { return Int(n) }
            if n == 0 { throw network("the store closed the connection mid-body") }
            if errno == EINTR { continue }
            guard errno == EAGAIN else { throw network("splice failed (errno \(errno))") }
            // Nothing moved although the socket had data: the pipe is full before its count
            // (the body came in more small pieces than the pipe has slots). Give up, not spin.
            if sawReadable { throw network("the pipe filled before its count") }
            guard waitFor(socket, events: Int16(POLLIN)) else { throw network("timed out reading from the store") }
            sawReadable = true
        }
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes[done...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n > 0 { done += n; continue }
            if n < 0 && errno == EINTR { continue }
            throw network("cannot write to the pipe (errno \(errno))")
        }
    }

    private func network(_ message: String) -> RosetError {
        RosetError(kind: .network, endpoint: "GET <signed url>", message: message)
    }
}

/// The parts of an http:// URL a request needs. Nil for anything but plain http with a host.
struct ParsedURL {
    let host: String
    let port: Int
    let hostHeader: String
    let pathAndQuery: String
    var poolKey: String { "\(host):\(port)" }

    init?(_ url: String) {
        guard let c = URLComponents(string: url), c.scheme?.lowercased() == "http",
              let rawHost = c.percentEncodedHost, !rawHost.isEmpty, c.user == nil else { return nil }
        // URLComponents keeps IPv6 literals in brackets; getaddrinfo wants them bare.
        let bare = rawHost.hasPrefix("[") && rawHost.hasSuffix("]") ? String(rawHost.dropFirst().dropLast()) : rawHost
        let path = c.percentEncodedPath.isEmpty ? "/" : c.percentEncodedPath
        guard !path.contains(where: { $0 == " " || $0 == "\r" || $0 == "\n" }) else { return nil }
        host = bare
        port = c.port ?? 80
        hostHeader = c.port.map { "\(rawHost):\($0)" } ?? rawHost
        pathAndQuery = path + (c.percentEncodedQuery.map { "?" + $0 } ?? "")
    }
}

/// A parsed HTTP/1.1 response head, with the body bytes that arrived in the same reads.
struct ResponseHead {
    let status: Int
    let headers: [String: String]
    let bodyPrefix: [UInt8]

    /// Nil while `bytes` does not yet hold the whole head (up to the empty line).
    init?(parsing bytes: [UInt8]) throws {
        guard bytes.count >= 4, let end = (0...(bytes.count - 4)).first(where: { i in
            bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10
        }) else { return nil }
        guard let text = String(bytes: bytes[0..<end], encoding: .isoLatin1) else { return nil }
        let lines = text.components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ", maxSplits: 2)
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), let status = Int(statusParts[1]) else {
            throw RosetError(kind: .decoding, endpoint: "GET <signed url>", message: "not an HTTP/1.x response")
        }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            headers[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        self.status = status
        self.headers = headers
        self.bodyPrefix = Array(bytes[(end + 4)...])
    }

    /// True when the connection may carry another request after this body.
    var keepAlive: Bool { !(headers["connection"]?.lowercased().contains("close") ?? false) }

    /// Throws unless this is the 206 of exactly [offset, offset + length) with a plain body.
    func check(offset: Int64, length: Int) throws {
        let endpoint = "GET <signed url>"
        switch status {
        case 206: break
        case 403: throw RosetError(kind: .urlRejected, status: 403, endpoint: endpoint, message: "signed URL rejected")
        case 416: throw RosetError(kind: .rangeNotSatisfiable, status: 416, endpoint: endpoint, message: "range not satisfiable")
        default: throw RosetError(kind: .server, status: status, endpoint: endpoint, message: "unexpected status for a ranged GET")
        }
        if let coding = headers["transfer-encoding"], coding.lowercased() != "identity" {
            throw RosetError(kind: .decoding, status: status, endpoint: endpoint, message: "a ranged body with transfer-encoding \(coding)")
        }
        guard let declared = headers["content-length"].flatMap({ Int($0) }), declared == length,
              let range = TransferContext.parseContentRange(headers["content-range"]), range.0 == offset,
              range.1 == offset + Int64(length) - 1 else {
            throw RosetError(kind: .decoding, status: status, endpoint: endpoint, message: "the store answered another range")
        }
        guard bodyPrefix.count <= length else {
            throw RosetError(kind: .decoding, status: status, endpoint: endpoint, message: "more body than Content-Length")
        }
    }
}
