// placeholder, replaced below
import Foundation
final class S3BlobStore: BlobBackend, @unchecked Sendable {
    let settings: S3Settings
    init(settings: S3Settings) { self.settings = settings }
    func ensureBucket() async throws {}
    func beginUpload(storageKey: String, multipart: Bool, contentType: String?) async throws -> String? { nil }
    func partURL(_ upload: UploadRecord, partNumber: Int, base: String, ttl: Int) -> String { "" }
    func putURL(storageKey: String, base: String, ttl: Int) -> String { "" }
    func getURL(storageKey: String, base: String, ttl: Int) -> String { "" }
    func completeMultipart(_ upload: UploadRecord, parts: [(number: Int, etag: String)]) async throws -> CompletedObject { throw APIError.storage("todo") }
    func statObject(storageKey: String) async throws -> CompletedObject? { nil }
    func abort(_ upload: UploadRecord) async {}
}
