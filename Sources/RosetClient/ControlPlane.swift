// The two seams RosetFS talks through: the control plane (namespace, metadata, upload
// sessions) and the object store (bytes over signed URLs). `RosetAPIClient` implements both over
// libcurl; RosetFS's unit tests implement them in memory. Every call is synchronous and blocking
// (it runs on a libfuse worker thread or an uploader thread) and throws `RosetError`.

public protocol ControlPlane: AnyObject, Sendable {
    /// `POST /v1/resolve {paths:["/"]}` for the configured mount. Fails if the key is refused.
    func resolveRoot() throws -> Node
    /// `POST /v1/resolve {paths:[name], baseId}`; nil when the name does not exist.
    func resolve(name: String, in parentId: String) throws -> Node?
    /// `GET /v1/nodes/{id}`.
    func node(id: String) throws -> Node
    /// `GET /v1/nodes/{id}/children`, every page until the end.
    func children(of folderId: String) throws -> [Node]
    /// `GET /v1/nodes/{id}/manifest`: the immediate children of a committed folder.
    func manifest(of folderId: String) throws -> [Node]
    /// `POST /v1/nodes {type:"folder"}`.
    func createFolder(name: String, parentId: String, metadata: [String: JSONValue]?) throws -> Node
    /// `PATCH /v1/nodes/{id}`. Nil fields are left out. Metadata merges; a `.null` value
    /// deletes that key.
    func updateNode(id: String, parentId: String?, name: String?, metadata: [String: JSONValue]?) throws -> Node
    /// `DELETE /v1/nodes/{id}` (a soft delete on the server).
    func deleteNode(id: String) throws
    /// `GET /v1/nodes/{id}/download`.
    func download(id: String) throws -> DownloadGrant
    /// `POST /v1/uploads/init`. The new node is visible (pending, size 0) as soon as this returns.
    func initUpload(_ request: UploadRequest) throws -> UploadGrant
    /// `POST /v1/uploads/{token}/part?partNumber=N`: a signed PUT URL for that part.
    func partUploadURL(token: String, partNumber: Int) throws -> String
    /// `POST /v1/uploads/{token}/complete`. Safe to repeat.
    func completeUpload(token: String, parts: [UploadedPart]) throws -> Node
    /// `POST /v1/uploads/commit`: finalises a single-PUT upload.
    func commitUpload(token: String, etag: String?, size: Int64) throws -> Node
    /// `DELETE /v1/uploads/{token}`.
    func abortUpload(token: String) throws
}

public protocol ObjectStore: AnyObject, Sendable {
    /// Ranged GET of a signed URL: reads bytes [offset, offset + buffer.count) into `buffer` and
    /// returns how many arrived (fewer only at the end of the object). A 200 carrying the whole
    /// body is sliced to the range. A 403 throws `RosetError` of kind `.urlRejected`.
    func read(url: String, offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// PUT of `length` bytes of the open file `fd` from `offset`, with Content-Length.
    /// Returns the ETag without quotes.
    func write(url: String, fileDescriptor fd: Int32, offset: Int64, length: Int64) throws -> String
    /// Ranged GET of a signed URL whose body goes into pipes (`PipeDownloader.get`). Returns
    /// false, having read nothing, when this store cannot do that for `url` (https, a proxy).
    func read(url: String, offset: Int64, intoPipes targets: [PipeDownloader.Target],
              filled: (Int) -> Bool) throws -> Bool
}

extension ObjectStore {
    public func read(url: String, offset: Int64, intoPipes targets: [PipeDownloader.Target],
                     filled: (Int) -> Bool) throws -> Bool { false }
}
