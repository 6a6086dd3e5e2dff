// roset-bench: uploads and downloads one large object through RosetClient and, in the same run,
// through the `curl` command line on the very same signed URLs, and prints MiB/s for both with
// the ratio client/curl. It prints numbers only and asserts nothing (method in docs/PERFORMANCE.md).
//
// Fairness rules: both sides move the same bytes over the same URLs with the same parallelism;
// both read the source from the page cache (curl from per-part files, the client with pread
// from one file); curl writes downloads to /dev/null, the client into memory; both skip the
// `Expect: 100-continue` round trip; control-plane calls are outside the timed sections.
import ArgumentParser
import Foundation
import Logging
import RosetClient
#if canImport(Glibc)
import Glibc
#endif

@main
struct RosetBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "roset-bench",
        abstract: "Transfer benchmark of RosetClient against the curl command line on the same signed URLs.")

    @Option(help: "Base URL of the Roset API (without /v1).") var apiURL: String
    @Option(help: "File whose first line is the API key.") var apiKeyFile: String
    @Option(help: "Mount id, if not the default mount.") var mountId: String?
    @Option(help: "Object size in MiB.") var sizeMb: Int = 256
    @Option(help: "Multipart part size in MiB.") var partSizeMb: Int = 16
    @Option(help: "Ranged GET size in MiB for downloads.") var rangeMb: Int = 16
    @Option(help: "Transfers in flight at once (both sides).") var parallel: Int = 8
    @Option(help: "Rounds; each side's best round is reported.") var rounds: Int = 2
    @Option(help: "The curl binary.") var curl: String = "curl"
    @Option(help: "Label printed with the results (e.g. the backend).") var label: String = "roset-server"
    @Option(help: "Scratch folder for the source file and its parts.") var scratch: String = NSTemporaryDirectory()

    mutating func run() throws {
        let keyText = try String(contentsOfFile: apiKeyFile, encoding: .utf8)
        guard let key = keyText.split(whereSeparator: \.isNewline).first?.split(separator: " ").first.map(String.init) else {
            throw ValidationError("the key file is empty")
        }
        var logger = Logger(label: "roset-bench")
        logger.logLevel = .warning
        let client = RosetAPIClient(configuration: ClientConfiguration(
            apiURL: apiURL, apiKey: key, mountId: mountId, requestTimeout: 60, logger: logger))

        let size = sizeMb << 20
        let partSize = partSizeMb << 20
        let work = try Scratch(folder: scratch, size: size, partSize: partSize)
        defer { work.remove() }

        let root = try client.resolveRoot()
        let folder = try client.createFolder(name: "roset-bench-\(UUID().uuidString.prefix(8))", parentId: root.id, metadata: nil)
        defer { try? client.deleteNode(id: folder.id) }

        // Upload: the same part URLs for both sides; the client's ETags complete the upload.
        let grant = try client.initUpload(UploadRequest(parentId: folder.id, name: "bench.bin", size: Int64(size), multipart: true))
        let partURLs = try (1...work.partCount).map { try client.partUploadURL(token: grant.uploadToken, partNumber: $0) }
        var bestClientUp = Double.infinity, bestCurlUp = Double.infinity
        var cpu = CPU()
        var etags: [UploadedPart] = []
        for _ in 0..<max(1, rounds) {
            bestCurlUp = min(bestCurlUp, try timed(cpu: &cpu.curlUp) { try curlUpload(urls: partURLs, files: work.partFiles) })
            bestClientUp = min(bestClientUp, try timed(cpu: &cpu.clientUp) { etags = try clientUpload(client, urls: partURLs, work: work) })
        }
        let node = try client.completeUpload(token: grant.uploadToken, parts: etags)
        guard node.size == Int64(size) else { throw ValidationError("completed node has size \(node.size), expected \(size)") }

        // Download: the same signed URL and the same ranges for both sides.
        let download = try client.download(id: node.id)
        let ranges = stride(from: 0, to: size, by: rangeMb << 20).map { ($0, min(rangeMb << 20, size - $0)) }
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 4096)
        defer { memory.deallocate() }
        memset(memory.baseAddress!, 0, size)  // fault the pages in outside the timed section
        var bestClientDown = Double.infinity, bestCurlDown = Double.infinity
        for _ in 0..<max(1, rounds) {
            bestCurlDown = min(bestCurlDown, try timed(cpu: &cpu.curlDown) { try curlDownload(url: download.url, ranges: ranges) })
            bestClientDown = min(bestClientDown, try timed(cpu: &cpu.clientDown) { try clientDownload(client, url: download.url, ranges: ranges, into: memory) })
        }
        let identical = memcmp(memory.baseAddress!, work.sourceMapping, size) == 0

        let mib = Double(size) / 1_048_576
        let r = Double(max(1, rounds))
        func line(_ what: String, _ c: Double, _ k: Double, _ cc: Double, _ kc: Double) -> String {
            String(format: "%@ %-8@ client %8.1f MiB/s   curl %8.1f MiB/s   ratio %.2f   (CPU s/round: client %.2f, curl %.2f)",
                   label, what, mib / c, mib / k, k / c, cc / r, kc / r)
        }
        print("roset-bench: \(sizeMb) MiB, parts \(partSizeMb) MiB, ranges \(rangeMb) MiB, \(parallel) in flight, best of \(max(1, rounds))")
        print(line("upload", bestClientUp, bestCurlUp, cpu.clientUp, cpu.curlUp))
        print(line("download", bestClientDown, bestCurlDown, cpu.clientDown, cpu.curlDown))
        print("\(label) download content identical to the source: \(identical)")
    }

    /// Wall-clock seconds of `body`; adds the CPU seconds it cost (this process for the client,
    /// reaped children for curl) to `cpu`.
    private func timed(cpu: inout Double, _ body: () throws -> Void) throws -> Double {
        let cpuBefore = cpuSeconds()
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        let wall = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let after = cpuSeconds()
        cpu += (after.selfSeconds - cpuBefore.selfSeconds) + (after.children - cpuBefore.children)
        return wall
    }

    private func cpuSeconds() -> (selfSeconds: Double, children: Double) {
        func seconds(_ who: Int32) -> Double {
            var u = rusage()
            getrusage(__rusage_who_t(who), &u)
            return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6
                + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6
        }
        return (seconds(RUSAGE_SELF.rawValue), seconds(RUSAGE_CHILDREN.rawValue))
    }

    private func clientUpload(_ client: RosetAPIClient, urls: [String], work: Scratch) throws -> [UploadedPart] {
        let results = Results<UploadedPart>(count: urls.count)
        try inParallel(count: urls.count, width: parallel) { i in
            let offset = i * work.partSize
            let length = min(work.partSize, work.size - offset)
            let etag = try client.write(url: urls[i], fileDescriptor: work.sourceFD, offset: Int64(offset), length: Int64(length))
            results.set(i, UploadedPart(partNumber: i + 1, etag: etag))
        }
        return try results.all()
    }

    private func clientDownload(_ client: RosetAPIClient, url: String, ranges: [(Int, Int)],
                                into memory: UnsafeMutableRawBufferPointer) throws {
        let target = SharedBuffer(memory)
        try inParallel(count: ranges.count, width: parallel) { i in
            let (offset, length) = ranges[i]
            // Each thread writes only its own range of the shared buffer.
            let slice = UnsafeMutableRawBufferPointer(rebasing: target.buffer[offset..<(offset + length)])
            let n = try client.read(url: url, offset: Int64(offset), into: slice)
            guard n == length else { throw ValidationError("range \(i): \(n) of \(length) bytes") }
        }
    }

    private func curlUpload(urls: [String], files: [String]) throws {
        var args = ["--no-progress-meter", "-Z", "--parallel-max", String(parallel)]
        for (i, url) in urls.enumerated() {
            if i > 0 { args.append("--next") }
            args += ["-sS", "-f", "-H", "Expect:", "-o", "/dev/null", "-T", files[i], url]
        }
        try runCurl(args)
    }

    private func curlDownload(url: String, ranges: [(Int, Int)]) throws {
        var args = ["--no-progress-meter", "-Z", "--parallel-max", String(parallel)]
        for (i, (offset, length)) in ranges.enumerated() {
            if i > 0 { args.append("--next") }
            args += ["-sS", "-f", "-r", "\(offset)-\(offset + length - 1)", "-o", "/dev/null", url]
        }
        try runCurl(args)
    }

    private func runCurl(_ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: curl.hasPrefix("/") ? curl : "/usr/bin/env")
        p.arguments = curl.hasPrefix("/") ? args : [curl] + args
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw ValidationError("curl exited with \(p.terminationStatus)") }
    }
}

/// Runs `body(0..<count)` on `width` threads; rethrows the first error.
func inParallel(count: Int, width: Int, _ body: @escaping @Sendable (Int) throws -> Void) throws {
    let queue = WorkQueue(count: count)
    let group = DispatchGroup()
    for _ in 0..<max(1, min(width, count)) {
        group.enter()
        let t = Thread {
            defer { group.leave() }
            while let i = queue.take() {
                do { try body(i) } catch { queue.fail(error) }
            }
        }
        t.stackSize = 1 << 20
        t.start()
    }
    group.wait()
    if let error = queue.firstError { throw error }
}

struct CPU { var clientUp = 0.0, curlUp = 0.0, clientDown = 0.0, curlDown = 0.0 }

struct SharedBuffer: @unchecked Sendable {
    let buffer: UnsafeMutableRawBufferPointer
    init(_ buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }
}

/// Hands out indices 0..<count until done or until something failed.
final class WorkQueue: @unchecked Sendable {
    private let lock = NSLock()
    private let count: Int
    private var next = 0
    private var error: Error?
    init(count: Int) { self.count = count }
    func take() -> Int? {
        lock.withLock {
            guard error == nil, next < count else { return nil }
            defer { next += 1 }
            return next
        }
    }
    func fail(_ e: Error) { lock.withLock { if error == nil { error = e } } }
    var firstError: Error? { lock.withLock { error } }
}

final class Results<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [T?]
    init(count: Int) { items = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ v: T) { lock.withLock { items[i] = v } }
    func all() throws -> [T] {
        try lock.withLock { try items.map { guard let v = $0 else { throw ValidationError("missing result") }; return v } }
    }
}

/// The random source file (also mapped, to verify the download) and one file per part for curl.
final class Scratch {
    let folder: String
    let size: Int
    let partSize: Int
    let sourcePath: String
    let sourceFD: Int32
    let sourceMapping: UnsafeMutableRawPointer
    let partFiles: [String]
    var partCount: Int { partFiles.count }

    init(folder: String, size: Int, partSize: Int) throws {
        self.folder = (folder as NSString).appendingPathComponent("roset-bench-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(atPath: self.folder, withIntermediateDirectories: true)
        self.size = size
        self.partSize = partSize
        sourcePath = (self.folder as NSString).appendingPathComponent("source.bin")
        let fd = open(sourcePath, O_RDWR | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw ValidationError("cannot create \(sourcePath)") }
        sourceFD = fd
        // Random bytes, written in 8 MiB blocks.
        var generator = SystemRandomNumberGenerator()
        let block = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: 1 << 20)
        defer { block.deallocate() }
        var written = 0
        while written < size {
            for i in 0..<block.count { block[i] = generator.next() }
            let n = min(block.count * 8, size - written)
            guard pwrite(fd, UnsafeRawPointer(block.baseAddress!), n, off_t(written)) == n else { throw ValidationError("write failed") }
            written += n
        }
        guard let map = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), map != MAP_FAILED else {
            throw ValidationError("mmap failed")
        }
        sourceMapping = map
        var parts: [String] = []
        var offset = 0
        repeat {
            let path = (self.folder as NSString).appendingPathComponent("part-\(parts.count + 1)")
            let length = min(partSize, size - offset)
            guard FileManager.default.createFile(atPath: path, contents: Data(bytes: map + offset, count: length)) else {
                throw ValidationError("cannot write \(path)")
            }
            parts.append(path)
            offset += length
        } while offset < size
        partFiles = parts
    }

    func remove() {
        munmap(sourceMapping, size)
        close(sourceFD)
        try? FileManager.default.removeItem(atPath: folder)
    }
}
