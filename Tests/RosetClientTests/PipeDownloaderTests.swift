// PipeDownloader against a scripted loopback peer: the request it sends, the bytes it puts into
// each pipe, and every answer it must refuse (another range, a 200, a 403, a cut body, chunked).
import Foundation
import Testing
import TestSupport
@testable import RosetClient
#if canImport(Glibc)
import Glibc
#endif

/// A pipe whose read end the test drains after the download.
private final class TestPipe {
    let readFD: Int32
    let writeFD: Int32
    init() throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw POSIXError(.EMFILE) }
        (readFD, writeFD) = (fds[0], fds[1])
        _ = fcntl(readFD, F_SETFL, O_NONBLOCK)  // drain() stops at an empty pipe
    }
    deinit { close(readFD); close(writeFD) }
    /// Everything in the pipe now.
    func drain() -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(readFD, $0.baseAddress, $0.count) }
            if n <= 0 { return out }
            out += buffer[0..<n]
        }
    }
}

@Suite struct PipeDownloaderTests {
    /// 40 KiB of printable bytes (the scripted peer's bodies are strings).
    static let object: String = {
        var bytes: [UInt8] = []
        for i in 0..<40_960 { bytes.append(UInt8(33 + (i * 7 + i / 97) % 90)) }
        return String(decoding: bytes, as: UTF8.self)
    }()

    static func partial(_ from: Int, _ count: Int, extra: [String] = []) -> String {
        let body = String(decoding: Array(object.utf8)[from..<(from + count)], as: UTF8.self)
        return ScriptedHTTPServer.response(206, headers: ["Content-Range: bytes \(from)-\(from + count - 1)/40960"] + extra,
                                           body: body)
    }

    @Test func aRangeGoesIntoThePipesInOrderWithExactCounts() throws {
        let server = try ScriptedHTTPServer(responses: [Self.partial(1000, 30_000)])
        defer { server.stop() }
        let pipes = try [TestPipe(), TestPipe(), TestPipe()]
        let counts = [10_000, 15_000, 5_000]
        var filled: [Int] = []
        try PipeDownloader(timeout: 5).get(url: server.baseURL + "/blob/o/x?expires=9&sig=s", offset: 1000,
                                           into: zip(pipes, counts).map { .init(fd: $0.writeFD, count: $1) }) { i in
            filled.append(i)
            return true
        }
        #expect(filled == [0, 1, 2])
        let bytes = Array(Self.object.utf8)
        #expect(pipes[0].drain().elementsEqual(bytes[1000..<11_000]))
        #expect(pipes[1].drain().elementsEqual(bytes[11_000..<26_000]))
        #expect(pipes[2].drain().elementsEqual(bytes[26_000..<31_000]))
        let request = try #require(server.requests.first)
        #expect(request.requestLine == "GET /blob/o/x?expires=9&sig=s HTTP/1.1")
        #expect(request.headers["range"] == "bytes=1000-30999")
        #expect(request.headers["host"] == "127.0.0.1:\(server.port)")
        #expect(!request.has(header: "Authorization"))
    }

    @Test func stoppingAfterAPipeLeavesTheRestEmpty() throws {
        let server = try ScriptedHTTPServer(responses: [Self.partial(0, 20_000)])
        defer { server.stop() }
        let pipes = try [TestPipe(), TestPipe()]
        try PipeDownloader(timeout: 5).get(url: server.baseURL + "/o", offset: 0,
                                           into: pipes.map { .init(fd: $0.writeFD, count: 10_000) }) { _ in false }
        #expect(pipes[0].drain().count == 10_000)
        #expect(pipes[1].drain().isEmpty)
    }

    @Test func answersThatAreNotExactlyTheRangeAreRefusedAndWriteNothing() throws {
        let cases: [(String, RosetError.Kind)] = [
            (ScriptedHTTPServer.response(403, body: "denied"), .urlRejected),
            (ScriptedHTTPServer.response(200, body: String(Self.object.prefix(4000))), .server),   // range ignored
            (ScriptedHTTPServer.response(416, headers: ["Content-Range: bytes */40960"]), .rangeNotSatisfiable),
            (Self.partial(10, 4000), .decoding),                                                 // another range
            (ScriptedHTTPServer.response(206, headers: ["Content-Range: bytes 0-3999/40960", "Transfer-Encoding: chunked"],
                                         body: "fa0\r\n"), .decoding),
            ("HTTP/1.1 206 Partial\r\nContent-Range: bytes 0-3999/40960\r\nContent-Length: 4000\r\nConnection: close\r\n\r\nshort",
             .network),                                                                          // body cut short
            ("SSH-2.0-not-http\r\n\r\n", .decoding),
        ]
        for (answer, kind) in cases {
            let server = try ScriptedHTTPServer(responses: [answer])
            defer { server.stop() }
            let pipe = try TestPipe()
            var filled = 0
            let error = #expect(throws: RosetError.self) {
                try PipeDownloader(timeout: 5).get(url: server.baseURL + "/o?sig=secret", offset: 0,
                                                   into: [.init(fd: pipe.writeFD, count: 4000)]) { _ in filled += 1; return true }
            }
            #expect(error?.kind == kind, "\(answer.prefix(40))")
            #expect(error.map { !"\($0)".contains("secret") } ?? true, "the signature stays out of the error")
            #expect(filled == 0)
            if kind != .network { #expect(pipe.drain().isEmpty) }
        }
    }

    @Test func anUnreachableStoreFailsWithinTheTimeout() throws {
        let (fd, port) = try ScriptedHTTPServer.bindLoopback(listening: false)
        defer { close(fd) }
        let pipe = try TestPipe()
        let started = Date()
        let error = #expect(throws: RosetError.self) {
            try PipeDownloader(timeout: 2).get(url: "http://127.0.0.1:\(port)/o", offset: 0,
                                               into: [.init(fd: pipe.writeFD, count: 10)]) { _ in true }
        }
        #expect(error?.kind == .network)
        #expect(Date().timeIntervalSince(started) < 10)
    }

    @Test func onlyPlainHTTPWithoutAProxyIsTaken() {
        #expect(PipeDownloader.accepts("http://127.0.0.1:8787/blob/o/a?sig=1", environment: [:]))
        #expect(PipeDownloader.accepts("http://[::1]:9000/b/k", environment: [:]))
        #expect(!PipeDownloader.accepts("https://s3.amazonaws.com/b/k?X-Amz-Signature=1", environment: [:]))
        #expect(!PipeDownloader.accepts("http://user:pw@host/k", environment: [:]))
        #expect(!PipeDownloader.accepts("ftp://host/k", environment: [:]))
        #expect(!PipeDownloader.accepts("http://127.0.0.1/k", environment: ["http_proxy": "http://proxy:3128"]))
        #expect(!PipeDownloader.accepts("http://127.0.0.1/k", environment: ["ALL_PROXY": "socks5://p"]))
    }
}
