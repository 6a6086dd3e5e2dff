// Blob backend (a): a local folder, served by this server under /blob/ with its own signed URLs.
// Layout under DATA/blobs:
//   objects/<mountId>/<nodeId>/<objectId>        object bytes (+ ".etag" sidecar: quoted-less MD5),
//                                                or, for a multipart object of several parts, a
//                                                folder of its part files `part-00001`, … in order
//   parts/<mountId>_<nodeId>_<objectId>/<n>      uploaded parts (+ ".etag" sidecars)
//   tmp/                                         in-flight writes, renamed into place when whole
// Invariants: an object or part file appears only complete (written to tmp/, then renamed); an
// object appears only whole (its folder is assembled in tmp/, then renamed). Complete moves the
// listed part files, it never copies them: concatenating a 1 GiB upload took this server 2.7 s
// of the 2 cores the client also runs on.
import Crypto
import Foundation

final class LocalBlobStore: BlobBackend, @unchecked Sendable {
    let root: URL
    let signer: URLSigner

    init(root: URL, signer: URLSigner) throws {
        self.root = root
        self.signer = signer
        for sub in ["objects", "parts", "tmp"] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
    }

    static func validKey(_ key: String) -> Bool {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        return parts.count == 3 && parts.allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." && !$0.contains("\0") }
    }

    func objectPath(_ key: String) -> String { root.appendingPathComponent("objects/\(key)").path }
    func partsDir(_ key: String) -> String { root.appendingPathComponent("parts/" + key.replacingOccurrences(of: "/", with: "_")).path }
    func partPath(_ key: String, _ n: Int) -> String { partsDir(key) + "/\(n)" }
    func tmpPath() -> String { root.appendingPathComponent("tmp/\(UUID().uuidString)").path }

    // MARK: URLs (resource "o/<key>" for objects, "p/<key>/<n>" for parts)

    func beginUpload(storageKey: String, multipart: Bool, contentType: String?) async throws -> String? { nil }

    func partURL(_ upload: UploadRecord, partNumber: Int, base: String, ttl: Int) -> String {
        signer.url(base: base, method: "PUT", resource: "p/\(upload.storageKey)/\(partNumber)", ttl: ttl)
    }

    func putURL(storageKey: String, base: String, ttl: Int) -> String {
        signer.url(base: base, method: "PUT", resource: "o/\(storageKey)", ttl: ttl)
    }

    func getURL(storageKey: String, base: String, ttl: Int) -> String {
        signer.url(base: base, method: "GET", resource: "o/\(storageKey)", ttl: ttl)
    }

    // MARK: Completion

    func completeMultipart(_ upload: UploadRecord, parts: [(number: Int, etag: String)]) async throws -> CompletedObject {
        let key = upload.storageKey
        let sorted = parts.sorted { $0.number < $1.number }
        guard !sorted.isEmpty else { throw APIError.invalid("parts must not be empty") }
        for (i, p) in sorted.enumerated() where i > 0 && sorted[i - 1].number == p.number {
            throw APIError.invalid("duplicate part \(p.number)")
        }
        return try await offload { [self] in
            var digests = Data()
            for p in sorted {
                let path = partPath(key, p.number)
                guard let stored = try? String(contentsOfFile: path + ".etag", encoding: .utf8),
                      FileManager.default.fileExists(atPath: path) else {
                    throw APIError(400, "INVALID_PART", "part \(p.number) was not uploaded")
                }
                if !p.etag.isEmpty && p.etag != stored {
                    throw APIError(400, "INVALID_PART", "part \(p.number) ETag does not match")
                }
                digests.append(Hex.decode(stored) ?? Data())
            }
            let tmp = tmpPath()
            var size: Int64 = 0
            if sorted.count == 1 {
                // One part is the object: move it.
                guard rename(partPath(key, sorted[0].number), tmp) == 0 else { throw APIError.storage("cannot move part") }
                size = Self.fileSize(tmp) ?? 0
            } else {
                guard mkdir(tmp, 0o755) == 0 else { throw APIError.storage("cannot create object") }
                var moved: [(from: String, to: String)] = []
                for (i, p) in sorted.enumerated() {
                    let to = tmp + "/" + Self.segmentName(i + 1)
                    guard rename(partPath(key, p.number), to) == 0 else {
                        // Put back what moved, so that a repeated complete finds every part.
                        for m in moved { rename(m.to, m.from) }
                        try? FileManager.default.removeItem(atPath: tmp)
                        throw APIError.storage("cannot move part \(p.number)")
                    }
                    moved.append((partPath(key, p.number), to))
                    size += Self.fileSize(to) ?? 0
                }
            }
            let etag = Hex.encode(Data(Insecure.MD5.hash(data: digests))) + "-\(sorted.count)"
            try publish(tmp: tmp, to: objectPath(key), etag: etag)
            try? FileManager.default.removeItem(atPath: partsDir(key))
            return CompletedObject(etag: etag, size: size)
        }
    }

    func statObject(storageKey: String) async throws -> CompletedObject? {
        let path = objectPath(storageKey)
        guard let segments = objectSegments(storageKey),
              let etag = try? String(contentsOfFile: path + ".etag", encoding: .utf8) else { return nil }
        return CompletedObject(etag: etag, size: segments.reduce(0) { $0 + $1.size })
    }

    /// The files an object is made of, in order (one for a plain object); nil if there is none.
    func objectSegments(_ key: String) -> [(path: String, size: Int64)]? {
        let path = objectPath(key)
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else { return nil }
        if !isFolder.boolValue { return Self.fileSize(path).map { [(path, $0)] } }
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else { return nil }
        var segments: [(path: String, size: Int64)] = []
        for name in names.filter({ $0.hasPrefix("part-") }).sorted() {
            guard let size = Self.fileSize(path + "/" + name) else { return nil }
            segments.append((path + "/" + name, size))
        }
        return segments
    }

    static func segmentName(_ index: Int) -> String {
        let digits = String(index)
        return "part-" + String(repeating: "0", count: max(0, 5 - digits.count)) + digits
    }

    static func fileSize(_ path: String) -> Int64? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Int64(st.st_size)
    }

    func abort(_ upload: UploadRecord) async {
        try? FileManager.default.removeItem(atPath: partsDir(upload.storageKey))
    }

    func deleteObject(storageKey: String) async {
        guard Self.validKey(storageKey) else { return }
        try? FileManager.default.removeItem(atPath: objectPath(storageKey))
        try? FileManager.default.removeItem(atPath: objectPath(storageKey) + ".etag")
    }

    /// Moves a finished temp file into place with its ETag sidecar (sidecar first, so a visible
    /// file always has its ETag).
    func publish(tmp: String, to path: String, etag: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data(etag.utf8).write(to: URL(fileURLWithPath: path + ".etag"), options: .atomic)
        guard rename(tmp, path) == 0 else { throw APIError.storage("cannot store object") }
    }
}
