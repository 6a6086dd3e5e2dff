// One HTTP exchange on one pooled easy handle, with no retry and no interpretation beyond
// transport. Invariants: options are reset before every transfer (no option leaks from the
// previous request on that handle); every transfer has a connect timeout and a low-speed limit;
// response bytes go straight to their destination (a growing `Data` for small JSON bodies, the
// caller's buffer for ranged reads) and request bytes straight from `pread` on the caller's file.
import CCurl
import Foundation
#if canImport(Glibc)
import Glibc
#endif

enum RequestBody {
    case none
    case bytes(Data)
    /// `length` bytes of `fd` from `offset`, sent with Content-Length (never chunked).
    case file(fd: Int32, offset: Int64, length: Int64)
}

enum ResponseSink {
    /// Collect the body in memory, refusing more than `limit` bytes.
    case collect(limit: Int)
    /// A ranged GET of [offset, offset + buffer.count): a 206 must carry a matching
    /// Content-Range; a 200 (whole object) is sliced to the range.
    case range(buffer: UnsafeMutableRawBufferPointer, offset: Int64)
}

struct HTTPRequest {
    var method: String
    var url: String
    var headers: [String] = []
    var body: RequestBody = .none
    var sink: ResponseSink = .collect(limit: 64 << 20)
    /// Whole-transfer limit (control plane); nil for signed-URL transfers.
    var totalTimeout: TimeInterval?
}

struct HTTPOutcome {
    var status: Int
    /// Lowercased names; the last value of a repeated header wins.
    var headers: [String: String]
    /// The collected body, or for a ranged GET that did not succeed, the error body.
    var body: Data
    /// Bytes placed in the caller's buffer by a ranged GET.
    var rangeBytes: Int
    /// Set when a 2xx ranged answer does not match the request.
    var rangeFailure: String?
    /// Connections libcurl had to open for this transfer (0 when one was reused).
    var newConnections: Int
}

struct TransportFailure: Error {
    enum Kind {
        /// Connect, reset, timeout, a body cut short: worth another attempt.
        case network
        /// The answer was larger than the sink accepts: another attempt would be the same.
        case responseTooLarge
        /// Reading the caller's file failed: not the network's fault.
        case localFile
    }
    var kind: Kind = .network
    var message: String
}

struct TransportSettings {
    var userAgent: String
    var connectTimeout: TimeInterval
    var lowSpeedLimit: Int
    var lowSpeedTime: Int
}

/// Callback state of one transfer; passed to libcurl as an unretained pointer that outlives
/// `curl_easy_perform`.
final class TransferContext {
    enum RangeMode { case undecided, partial, whole(skip: Int64), error, done }

    var status = 0
    var headers: [String: String] = [:]
    var body = Data()
    var collectLimit = 64 << 20
    var bodyTooLarge = false

    var buffer: UnsafeMutableRawBufferPointer?
    var rangeOffset: Int64 = 0
    var rangeMode = RangeMode.undecided
    var written = 0
    var rangeFailure: String?

    var fd: Int32 = -1
    var uploadOffset: Int64 = 0
    var uploadLength: Int64 = 0
    var uploadPosition: Int64 = 0
    var uploadFailure: String?

    /// A single-range Content-Range (`bytes a-b/total`) as (a, b).
    static func parseContentRange(_ value: String?) -> (Int64, Int64)? {
        guard var v = value?.trimmingCharacters(in: .whitespaces), v.lowercased().hasPrefix("bytes") else { return nil }
        v = String(v.dropFirst(5)).trimmingCharacters(in: .whitespaces)
        let rangePart = v.split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
        let ends = rangePart.split(separator: "-", maxSplits: 1)
        guard ends.count == 2, let a = Int64(ends[0]), let b = Int64(ends[1]), a >= 0, b >= a else { return nil }
        return (a, b)
    }

    func receive(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard let buffer else {
            if body.count + bytes.count > collectLimit { bodyTooLarge = true; return 0 }
            body.append(contentsOf: bytes)
            return bytes.count
        }
        if case .undecided = rangeMode { decideRangeMode(capacity: buffer.count) }
        switch rangeMode {
        case .undecided, .done:
            return 0
        case .error:
            if body.count < 65536 { body.append(contentsOf: bytes.prefix(65536 - body.count)) }
            return bytes.count
        case .partial:
            let room = buffer.count - written
            guard bytes.count <= room else {
                rangeFailure = "206 body longer than the range asked for"
                rangeMode = .done
                return 0
            }
            copy(bytes, to: buffer)
            return bytes.count
        case .whole(let skip):
            var chunk = bytes
            if skip > 0 {
                let skipped = Int(min(skip, Int64(chunk.count)))
                chunk = UnsafeRawBufferPointer(rebasing: chunk[skipped...])
                rangeMode = .whole(skip: skip - Int64(skipped))
                if chunk.isEmpty { return bytes.count }
            }
            let take = min(chunk.count, buffer.count - written)
            copy(UnsafeRawBufferPointer(rebasing: chunk[..<take]), to: buffer)
            if written == buffer.count {
                // The range is filled: stop reading the rest of the object.
                rangeMode = .done
                return take == chunk.count ? bytes.count : 0
            }
            return bytes.count
        }
    }

    private func copy(_ bytes: UnsafeRawBufferPointer, to buffer: UnsafeMutableRawBufferPointer) {
        guard !bytes.isEmpty, let dst = buffer.baseAddress, let src = bytes.baseAddress else { return }
        memcpy(dst + written, src, bytes.count)
        written += bytes.count
    }

    private func decideRangeMode(capacity: Int) {
        switch status {
        case 206:
            guard let (a, b) = Self.parseContentRange(headers["content-range"]) else {
                rangeFailure = "206 without a valid Content-Range"
                rangeMode = .done
                return
            }
            guard a == rangeOffset, b - a + 1 <= Int64(capacity) else {
                rangeFailure = "Content-Range bytes \(a)-\(b) does not match the range asked for (from \(rangeOffset), \(capacity) bytes)"
                rangeMode = .done
                return
            }
            rangeMode = .partial
        case 200:
            rangeMode = .whole(skip: rangeOffset)
        default:
            rangeMode = .error
        }
    }

    /// True when the transfer was cut short by us because the range was already complete.
    var stoppedAfterFilling: Bool {
        if case .done = rangeMode, rangeFailure == nil, let buffer, written == buffer.count { return true }
        return false
    }

    func header(_ line: UnsafeRawBufferPointer) {
        guard let text = String(bytes: line, encoding: .utf8) ?? String(bytes: line, encoding: .isoLatin1) else { return }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("HTTP/") {
            // A new response (after 100 Continue or a redirect): start over.
            let parts = trimmed.split(separator: " ", maxSplits: 2)
            status = parts.count >= 2 ? Int(parts[1]) ?? 0 : 0
            headers = [:]
            return
        }
        guard let colon = trimmed.firstIndex(of: ":") else { return }
        let name = trimmed[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
        let value = trimmed[trimmed.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        headers[name] = value
    }

    func send(into destination: UnsafeMutableRawPointer, capacity: Int) -> Int {
        let want = Int(min(Int64(capacity), uploadLength - uploadPosition))
        if want <= 0 { return 0 }
        let n = pread(fd, destination, want, off_t(uploadOffset + uploadPosition))
        if n < 0 {
            uploadFailure = "reading the file failed: \(String(cString: strerror(errno)))"
            return Int(CURL_READFUNC_ABORT)
        }
        if n == 0 {
            uploadFailure = "the file is shorter than the \(uploadLength) bytes to send"
            return Int(CURL_READFUNC_ABORT)
        }
        uploadPosition += Int64(n)
        return n
    }
}

private let writeCallback: roset_curl_data_fn = { ptr, size, count, user in
    guard let user else { return 0 }
    let context = Unmanaged<TransferContext>.fromOpaque(user).takeUnretainedValue()
    let n = size * count
    guard n > 0, let ptr else { return 0 }
    return context.receive(UnsafeRawBufferPointer(start: ptr, count: n))
}

private let headerCallback: roset_curl_data_fn = { ptr, size, count, user in
    let n = size * count
    guard let user, let ptr else { return n }
    Unmanaged<TransferContext>.fromOpaque(user).takeUnretainedValue()
        .header(UnsafeRawBufferPointer(start: ptr, count: n))
    return n
}

private let readCallback: roset_curl_data_fn = { ptr, size, count, user in
    guard let user, let ptr else { return Int(CURL_READFUNC_ABORT) }
    return Unmanaged<TransferContext>.fromOpaque(user).takeUnretainedValue()
        .send(into: UnsafeMutableRawPointer(ptr), capacity: size * count)
}

private let seekCallback: roset_curl_seek_fn = { user, offset, origin in
    guard let user, origin == SEEK_SET, offset >= 0 else { return 2 }  // CURL_SEEKFUNC_CANTSEEK
    let context = Unmanaged<TransferContext>.fromOpaque(user).takeUnretainedValue()
    guard Int64(offset) <= context.uploadLength else { return 1 }  // CURL_SEEKFUNC_FAIL
    context.uploadPosition = Int64(offset)
    return 0  // CURL_SEEKFUNC_OK
}

final class HTTPTransport: @unchecked Sendable {
    let pool = CurlHandlePool()
    let settings: TransportSettings
    /// Buffer sizes for bulk transfers: large, so that a 256 MiB transfer costs few callbacks.
    static let downloadBufferSize = 1 << 20
    static let uploadBufferSize = 512 << 10

    init(settings: TransportSettings) { self.settings = settings }

    func perform(_ request: HTTPRequest) -> Result<HTTPOutcome, TransportFailure> {
        guard let easy = pool.acquire() else { return .failure(TransportFailure(message: "curl_easy_init failed")) }
        defer { pool.release(easy) }
        let h = easy.handle
        curl_easy_reset(h)
        easy.errorBuffer[0] = 0

        let context = TransferContext()
        var slist: UnsafeMutablePointer<curl_slist>? = nil
        defer { if let slist { curl_slist_free_all(slist) } }
        var headers = request.headers

        var code = CURLE_OK
        func set(_ c: CURLcode) { if code == CURLE_OK { code = c } }

        set(roset_curl_setopt_string(h, CURLOPT_URL, request.url))
        set(roset_curl_setopt_long(h, CURLOPT_NOSIGNAL, 1))
        set(roset_curl_setopt_pointer(h, CURLOPT_ERRORBUFFER, easy.errorBuffer))
        if let share = pool.share.share { set(roset_curl_setopt_share(h, share)) }
        set(roset_curl_setopt_string(h, CURLOPT_PROTOCOLS_STR, "http,https"))
        set(roset_curl_setopt_string(h, CURLOPT_USERAGENT, settings.userAgent))
        set(roset_curl_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, Int(settings.connectTimeout * 1000)))
        set(roset_curl_setopt_long(h, CURLOPT_LOW_SPEED_LIMIT, settings.lowSpeedLimit))
        set(roset_curl_setopt_long(h, CURLOPT_LOW_SPEED_TIME, settings.lowSpeedTime))
        if let total = request.totalTimeout { set(roset_curl_setopt_long(h, CURLOPT_TIMEOUT_MS, Int(total * 1000))) }
        set(roset_curl_setopt_long(h, CURLOPT_TCP_KEEPALIVE, 1))
        set(roset_curl_setopt_long(h, CURLOPT_TCP_NODELAY, 1))

        let user = Unmanaged.passUnretained(context).toOpaque()
        set(roset_curl_setopt_data_fn(h, CURLOPT_WRITEFUNCTION, writeCallback))
        set(roset_curl_setopt_pointer(h, CURLOPT_WRITEDATA, user))
        set(roset_curl_setopt_data_fn(h, CURLOPT_HEADERFUNCTION, headerCallback))
        set(roset_curl_setopt_pointer(h, CURLOPT_HEADERDATA, user))

        switch request.sink {
        case .collect(let limit):
            context.collectLimit = limit
        case .range(let buffer, let offset):
            context.buffer = buffer
            context.rangeOffset = offset
            let last = offset + Int64(buffer.count) - 1
            set(roset_curl_setopt_string(h, CURLOPT_RANGE, "\(offset)-\(last)"))
            set(roset_curl_setopt_long(h, CURLOPT_BUFFERSIZE, Self.downloadBufferSize))
        }

        switch (request.method, request.body) {
        case ("GET", _):
            set(roset_curl_setopt_long(h, CURLOPT_HTTPGET, 1))
        case (let method, .file(let fd, let offset, let length)):
            context.fd = fd
            context.uploadOffset = offset
            context.uploadLength = length
            set(roset_curl_setopt_long(h, CURLOPT_UPLOAD, 1))
            set(roset_curl_setopt_off(h, CURLOPT_INFILESIZE_LARGE, curl_off_t(length)))
            set(roset_curl_setopt_data_fn(h, CURLOPT_READFUNCTION, readCallback))
            set(roset_curl_setopt_pointer(h, CURLOPT_READDATA, user))
            set(roset_curl_setopt_seek_fn(h, seekCallback))
            set(roset_curl_setopt_pointer(h, CURLOPT_SEEKDATA, user))
            set(roset_curl_setopt_long(h, CURLOPT_UPLOAD_BUFFERSIZE, Self.uploadBufferSize))
            if method != "PUT" { set(roset_curl_setopt_string(h, CURLOPT_CUSTOMREQUEST, method)) }
            // No 100-continue round trip: the URL is already authorised by its signature.
            headers.append("Expect:")
        case (let method, .bytes(let data)):
            set(roset_curl_setopt_long(h, CURLOPT_POST, 1))
            set(roset_curl_setopt_off(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(data.count)))
            data.withUnsafeBytes { raw in
                let empty: [CChar] = [0]
                if let base = raw.baseAddress {
                    set(roset_curl_setopt_pointer(h, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: base)))
                } else {
                    empty.withUnsafeBufferPointer { set(roset_curl_setopt_pointer(h, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: $0.baseAddress))) }
                }
            }
            if method != "POST" { set(roset_curl_setopt_string(h, CURLOPT_CUSTOMREQUEST, method)) }
            headers.append("Expect:")
        case (let method, .none):
            if method == "POST" {
                // A POST without a body: Content-Length 0 and no form Content-Type.
                set(roset_curl_setopt_long(h, CURLOPT_POST, 1))
                set(roset_curl_setopt_off(h, CURLOPT_POSTFIELDSIZE_LARGE, 0))
                set(roset_curl_setopt_string(h, CURLOPT_POSTFIELDS, ""))
                if !headers.contains(where: { $0.lowercased().hasPrefix("content-type:") }) {
                    headers.append("Content-Type:")
                }
            } else if method == "HEAD" {
                set(roset_curl_setopt_long(h, CURLOPT_NOBODY, 1))
            } else {
                set(roset_curl_setopt_string(h, CURLOPT_CUSTOMREQUEST, method))
            }
        }

        for header in headers { slist = curl_slist_append(slist, header) }
        if let slist { set(roset_curl_setopt_slist(h, CURLOPT_HTTPHEADER, slist)) }

        guard code == CURLE_OK else {
            return .failure(TransportFailure(message: "curl option error: \(String(cString: curl_easy_strerror(code)))"))
        }

        let result = curl_easy_perform(h)
        var connects = 0
        _ = roset_curl_getinfo_long(h, CURLINFO_NUM_CONNECTS, &connects)
        var status = 0
        _ = roset_curl_getinfo_long(h, CURLINFO_RESPONSE_CODE, &status)
        if status == 0 { status = context.status }

        if result != CURLE_OK {
            let cutShortOnPurpose = result == CURLE_WRITE_ERROR
                && (context.stoppedAfterFilling || context.rangeFailure != nil)
            if !cutShortOnPurpose {
                if context.bodyTooLarge {
                    return .failure(TransportFailure(kind: .responseTooLarge,
                                                     message: "response body larger than \(context.collectLimit) bytes"))
                }
                if let failure = context.uploadFailure { return .failure(TransportFailure(kind: .localFile, message: failure)) }
                let detail = String(cString: easy.errorBuffer)
                let text = detail.isEmpty ? String(cString: curl_easy_strerror(result)) : detail
                return .failure(TransportFailure(message: "\(text) (curl \(result.rawValue))"))
            }
        }
        return .success(HTTPOutcome(status: status, headers: context.headers, body: context.body,
                                    rangeBytes: context.written, rangeFailure: context.rangeFailure,
                                    newConnections: connects))
    }
}
