// Where file bytes live. The control plane only stores a storage key per version
// ("<mountId>/<nodeId>/<objectId>", a fresh objectId per upload so a new version never overwrites
// the bytes a reader of the old version may still be fetching) and asks the backend for signed URLs.
import Foundation

struct CompletedObject {
    var etag: String
    var size: Int64
}

protocol BlobBackend: Sendable {
    /// Prepares an upload; returns the backend's multipart upload id if it has one (S3).
    func beginUpload(storageKey: String, multipart: Bool, contentType: String?) async throws -> String?
    func partURL(_ upload: UploadRecord, partNumber: Int, base: String, ttl: Int) -> String
    func putURL(storageKey: String, base: String, ttl: Int) -> String
    func getURL(storageKey: String, base: String, ttl: Int) -> String
    /// Assembles the listed parts (ETags without quotes) into the object.
    func completeMultipart(_ upload: UploadRecord, parts: [(number: Int, etag: String)]) async throws -> CompletedObject
    /// The object uploaded by a single PUT, nil if it is not there.
    func statObject(storageKey: String) async throws -> CompletedObject?
    func abort(_ upload: UploadRecord) async
    /// Best effort: the bytes of a version nobody can reach any more.
    func deleteObject(storageKey: String) async
}

/// Runs blocking file work off the cooperative thread pool.
func offload<T>(_ work: @escaping () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { cont in
        DispatchQueue.global().async {
            do { cont.resume(returning: try work()) } catch { cont.resume(throwing: error) }
        }
    }
}
